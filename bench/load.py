"""Load check: 14 browser sessions open a freshly started app at once, each running 20 runs, against a loopback server.

Every session's prompt boxes must hold the defaults before Run; the server must never see more requests in flight
than the cap (REPRO_GLOBAL_CONCURRENCY), even though some visitors click Run again (refused while their batch runs; a
second batch once it has ended) and some leave mid-run (their cancelled requests keep their slots). The requests the
server received are accounted per role. It prints the time from clicking Run to the results on the page (median, 95th
percentile). With `--replicas 2` the sessions alternate between two app processes sharing one throwaway PostgreSQL
(tests/pgserver.py), so the cap is the one they share. Drives Debian's chromium through Playwright. Last line: JSON;
exit status 1 when a check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.async_api import TimeoutError as PageTimeout
from playwright.async_api import async_playwright, expect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import pgserver  # noqa: E402
from tests.fakeserver import FakeChatServer  # noqa: E402
from ui.prompts import CLASSIC  # noqa: E402

SESSIONS, RUNS, CAP, LATENCY_S = int(os.environ.get("LOAD_SESSIONS", 14)), 20, 8, 0.2
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
CLICKS_AGAIN, LEAVES = 3, 5  # session k clicks Run twice when k % 7 == 3, leaves mid-run when k % 7 == 5
REFUSED_WITHIN_MS = 15_000  # a second click while the batch runs is refused by the script run it starts
# The batches each role may send: a re-click after the first batch ended legitimately sends a second one.
BATCHES = {"stays": (1, 1), "clicks again": (1, 2), "leaves": (0, 1)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ok(url: str) -> None:
    for _ in range(200):
        try:
            if urllib.request.urlopen(url, timeout=1).status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} never answered")


def role(k: int) -> str:
    return {CLICKS_AGAIN: "clicks again", LEAVES: "leaves"}.get(k % 7, "stays")


async def check_prompts(page, when: str, errors: list[str]) -> None:
    """The boxes hold the defaults (within a few seconds: a box the browser draws late is empty for an instant)."""
    for label, text in zip(("System prompt", "User prompt"), CLASSIC):
        try:
            await expect(page.get_by_label(label)).to_have_value(text, timeout=10_000)
        except AssertionError:
            errors.append(f"{label} {when}: {await page.get_by_label(label).input_value()!r}, not the default")


async def set_runs(page) -> None:
    """Press the runs slider up to RUNS at once, while the first script run is still going (each press interrupts
    it); then correct it, as a visitor would, if the page was redrawn under the presses and lost some."""
    slider = page.get_by_role("slider", name="Runs (identical requests)")
    await slider.focus()
    for _ in range(RUNS - 5):
        await slider.press("ArrowRight")
    deadline = time.monotonic() + 120
    while not await page.get_by_text(f"This run: {RUNS} requests").count():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the runs slider never showed {RUNS}")
        await asyncio.sleep(1)
        now = int(await slider.input_value())
        if now != RUNS:
            await slider.focus()
            await slider.press("ArrowRight" if now < RUNS else "ArrowLeft")


async def click_again(page, run) -> str:
    """Click Run again: "refused" while the batch runs; "sent again" when it had ended, once the second batch has."""
    await run.click()
    try:
        await page.get_by_text("still running").wait_for(timeout=REFUSED_WITHIN_MS)
        return "refused"
    except PageTimeout:
        await page.locator("[data-testid=stProgress]").wait_for(state="detached", timeout=120_000)
        return "sent again"


async def session(browser, url: str, who: str, times: list[float], errors: list[str],
                  second_clicks: list[str]) -> None:
    """One visitor: open the app, set the runs to RUNS, click Run (again, or leave, as `who` says), time the results."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    run = page.get_by_role("button", name="Run", exact=True)
    try:
        await page.goto(url + "/experiment")  # the app opens on Seed vs no seed
        await run.wait_for(timeout=120_000)  # the page is still being drawn: the presses below interrupt it
        await set_runs(page)
        await check_prompts(page, "before Run", errors)
        started = time.perf_counter()
        await run.click()
        running, refused = page.locator("[data-testid=stProgress], .rl-card[data-run]"), page.get_by_text("Nothing was sent")
        await running.or_(refused).first.wait_for(timeout=120_000)
        if await refused.count():
            errors.append(f"{who}: {await refused.inner_text()}")
            return
        if who == "leaves":
            return
        second = await click_again(page, run) if who == "clicks again" else None
        if second:
            second_clicks.append(second)
        await page.get_by_text("Side by side").wait_for(timeout=int(os.environ.get("LOAD_TIMEOUT_MS", 300_000)))
        if second != "sent again":  # two batches in a row are not one time to results
            times.append(time.perf_counter() - started)
        verdict = await page.locator("[data-verdict]").first.inner_text()  # identical runs share one card
        if f"{RUNS} of {RUNS} identical" not in verdict:
            errors.append(f"a session's verdict does not count {RUNS} identical runs: {verdict!r}")
    except Exception as exc:  # noqa: BLE001 - report every session's failure, do not stop the others
        errors.append(f"{who}: {type(exc).__name__}: {exc}")
    finally:
        await context.close()


async def visitors(urls: list[str], roles: list[str], times: list[float], errors: list[str],
                   second_clicks: list[str]) -> float:
    """Every role's session at once, session k on replica k % len(urls); the seconds until all are done."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        started = time.perf_counter()
        await asyncio.gather(*(session(browser, urls[k % len(urls)], who, times, errors, second_clicks)
                               for k, who in enumerate(roles)))
        wall = time.perf_counter() - started
        await browser.close()
    return wall


def stats(server_url: str) -> dict:
    return json.loads(urllib.request.urlopen(server_url + "/stats").read())


def expected_requests(roles: list[str]) -> tuple[int, int]:
    """The fewest and most requests the roles may send, each role within its BATCHES."""
    return (sum(BATCHES[who][0] * RUNS for who in roles), sum(BATCHES[who][1] * RUNS for who in roles))


def start_app(folder: Path, env: dict[str, str]) -> tuple[str, subprocess.Popen]:
    """`streamlit run app.py` in `folder` on a free loopback port: its URL and process."""
    (folder / ".streamlit").mkdir(parents=True)
    shutil.copy(ROOT / ".streamlit" / "config.toml", folder / ".streamlit")
    port = free_port()
    app = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address",
                            "127.0.0.1", "--server.port", str(port)], cwd=folder,
                           env={**env, "REPRO_HISTORY_PATH": str(folder / "history.sqlite3")},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return f"http://127.0.0.1:{port}", app


def app_environment(server_url: str, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "AZURE_OPENAI_", "COMPATIBLE_", "REPRO_", "DATABASE_URL"))}
    env.update({"OPENAI_API_BASE": server_url, "OPENAI_API_VERSION": "2024-06-01",
                "OPENAI_API_KEY": FakeChatServer.api_key, "OPENAI_API_DEPLOY": FakeChatServer.deployment,
                "REPRO_GLOBAL_CONCURRENCY": str(CAP), "REPRO_REQUESTS_PER_HOUR": "10000", "PYTHONPATH": str(ROOT)})
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, choices=(1, 2), default=1,
                        help="app processes; 2 share one throwaway PostgreSQL, and so the cap")
    replicas = parser.parse_args().replicas
    with contextlib.ExitStack() as stack:
        server = subprocess.Popen([sys.executable, "-m", "tests.fakeserver", "--latency", str(LATENCY_S)], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True)
        stack.callback(server.kill)
        server_url = server.stdout.readline().strip()
        database_url = pgserver.new_database(pgserver._start_server(stack.callback)) if replicas == 2 else None
        env, folder = app_environment(server_url, database_url), Path(tempfile.mkdtemp())
        urls = []
        for k in range(replicas):
            url, app = start_app(folder / f"replica-{k + 1}", env)
            stack.callback(app.terminate)
            urls.append(url)
        figures = measure(urls, server_url, replicas)
    for error in figures["errors"]:
        print("error:", error)
    print(json.dumps(figures))
    sys.exit(1 if figures["errors"] else 0)


def measure(urls: list[str], server_url: str, replicas: int) -> dict:
    """Every session at once on apps that have served no one yet (the hardest case for shared state), then one
    visitor alone for scale; the figures, checks failed among them as "errors"."""
    roles = [role(k) for k in range(SESSIONS)]
    for url in urls:
        wait_ok(url + "/_stcore/health")
    times: list[float] = []
    errors: list[str] = []
    second_clicks: list[str] = []
    wall = asyncio.run(visitors(urls, roles, times, errors, second_clicks))
    time.sleep(2 * LATENCY_S)  # the leavers' cancelled requests finish at the server
    together = stats(server_url)
    alone: list[float] = []
    asyncio.run(visitors(urls[:1], ["stays"], alone, errors, []))
    times.sort()
    at_least, at_most = expected_requests(roles)
    figures = {
        "replicas": replicas, "sessions": SESSIONS, "runs_each": RUNS, "global_cap": CAP, "latency_s": LATENCY_S,
        "sessions_clicking_again": roles.count("clicks again"), "sessions_leaving": roles.count("leaves"),
        "second_clicks_refused": second_clicks.count("refused"),
        "second_clicks_sent_again": second_clicks.count("sent again"),
        "requests_expected": f"{at_least}..{at_most}", "requests_received": together["received"],
        "alone_s": round(alone[0], 2) if alone else None,
        "peak_in_flight": together["peak_in_flight"], "cap_held": together["peak_in_flight"] <= CAP,
        "sessions_with_results": len(times), "errors": errors,
        "results_median_s": round(statistics.median(times), 2) if times else None,
        "results_p95_s": round(times[min(len(times) - 1, int(0.95 * len(times)))], 2) if times else None,
        "wall_s": round(wall, 2),
        "floor_s": round(at_least / CAP * LATENCY_S, 2),
    }
    if not at_least <= together["received"] <= at_most:
        errors.append(f"{together['received']} requests arrived, expected {at_least} to {at_most}")
    if not figures["cap_held"]:
        errors.append(f"peak in flight {together['peak_in_flight']} is over the cap of {CAP}")
    print(f"{figures['requests_received']} requests arrived ({figures['requests_expected']} expected); peak in flight "
          f"{figures['peak_in_flight']} (cap {CAP}, {replicas} replica(s)); results on the page after median "
          f"{figures['results_median_s']} s, p95 {figures['results_p95_s']} s (one visitor alone: {figures['alone_s']} "
          f"s); all sessions {figures['wall_s']} s (the requests alone need {figures['floor_s']} s at this cap)")
    return figures


if __name__ == "__main__":
    main()
