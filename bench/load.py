"""Load check: 14 browser sessions open a freshly started app at once, each running 20 runs, against a loopback server.

Every session's prompt boxes must hold the defaults before Run; the server must never see more requests in flight
than the process-wide cap (REPRO_GLOBAL_CONCURRENCY), even though some visitors click Run again while their batch
runs (no second batch may be sent) and some leave mid-run (their cancelled requests keep their slots). It prints the
time from clicking Run to the results on the page (median, 95th percentile). Drives Debian's chromium through
Playwright. Last line: JSON; exit status 1 when a check failed.
"""

from __future__ import annotations

import asyncio
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

from playwright.async_api import async_playwright, expect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakeserver import FakeChatServer  # noqa: E402
from ui.prompts import CLASSIC  # noqa: E402

SESSIONS, RUNS, CAP, LATENCY_S = int(os.environ.get("LOAD_SESSIONS", 14)), 20, 8, 0.2
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
CLICKS_AGAIN, LEAVES = 3, 5  # session k clicks Run twice when k % 7 == 3, leaves mid-run when k % 7 == 5


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


async def session(browser, url: str, who: str, times: list[float], errors: list[str]) -> None:
    """One visitor: open the app, set the runs to RUNS, click Run (again, or leave, as `who` says), time the results."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    run = page.get_by_role("button", name="Run", exact=True)
    try:
        await page.goto(url)
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
        if who == "clicks again":
            await run.click()
            await page.get_by_text("still running").wait_for(timeout=60_000)
        await page.get_by_text("Side by side").wait_for(timeout=int(os.environ.get("LOAD_TIMEOUT_MS", 300_000)))
        times.append(time.perf_counter() - started)
        cards = await page.locator(".rl-card[data-run]").count()
        if cards != RUNS:
            errors.append(f"a session showed {cards} cards, not {RUNS}")
    except Exception as exc:  # noqa: BLE001 - report every session's failure, do not stop the others
        errors.append(f"{who}: {type(exc).__name__}: {exc}")
    finally:
        await context.close()


async def visitors(url: str, roles: list[str], times: list[float], errors: list[str]) -> float:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        started = time.perf_counter()
        await asyncio.gather(*(session(browser, url, who, times, errors) for who in roles))
        wall = time.perf_counter() - started
        await browser.close()
    return wall


def stats(server_url: str) -> dict:
    return json.loads(urllib.request.urlopen(server_url + "/stats").read())


def main() -> None:
    server = subprocess.Popen([sys.executable, "-m", "tests.fakeserver", "--latency", str(LATENCY_S)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    server_url = server.stdout.readline().strip()
    folder = Path(tempfile.mkdtemp())
    (folder / ".streamlit").mkdir()
    shutil.copy(ROOT / ".streamlit" / "config.toml", folder / ".streamlit")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI_", "COMPATIBLE_", "REPRO_"))}
    env.update({"OPENAI_API_BASE": server_url, "OPENAI_API_VERSION": "2024-06-01",
                "OPENAI_API_KEY": FakeChatServer.api_key, "OPENAI_API_DEPLOY": FakeChatServer.deployment,
                "REPRO_GLOBAL_CONCURRENCY": str(CAP), "REPRO_REQUESTS_PER_HOUR": "10000",
                "REPRO_HISTORY_PATH": str(folder / "history.sqlite3"), "PYTHONPATH": str(ROOT)})
    app = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address",
                            "127.0.0.1", "--server.port", str(port)], cwd=folder, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    roles = [role(k) for k in range(SESSIONS)]
    try:
        wait_ok(url + "/_stcore/health")
        times: list[float] = []
        errors: list[str] = []
        # First, every session at once on a process that has served no one yet: the hardest case for shared state.
        wall = asyncio.run(visitors(url, roles, times, errors))
        time.sleep(2 * LATENCY_S)  # the leavers' cancelled requests finish at the server
        together = stats(server_url)
        alone: list[float] = []
        asyncio.run(visitors(url, ["stays"], alone, errors))  # then one visitor by itself, for scale
    finally:
        app.terminate()
        server.kill()
    times.sort()
    at_most = SESSIONS * RUNS
    at_least = RUNS * roles.count("stays") + RUNS * roles.count("clicks again")
    figures = {
        "sessions": SESSIONS, "runs_each": RUNS, "global_cap": CAP, "latency_s": LATENCY_S,
        "sessions_clicking_again": roles.count("clicks again"), "sessions_leaving": roles.count("leaves"),
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
          f"{figures['peak_in_flight']} (cap {CAP}); results on the page after median {figures['results_median_s']} s, "
          f"p95 {figures['results_p95_s']} s (one visitor alone: {figures['alone_s']} s); all sessions "
          f"{figures['wall_s']} s (the requests alone need {figures['floor_s']} s at this cap)")
    for error in errors:
        print("error:", error)
    print(json.dumps(figures))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
