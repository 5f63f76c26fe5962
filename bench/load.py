"""Load check: 10 browser sessions at once, each running 20 runs, against a loopback server behind the app.

Every run must be accounted for, the server must never see more requests in flight than the process-wide cap
(REPRO_GLOBAL_CONCURRENCY), and it prints the time from clicking Run to the results on the page (median, 95th
percentile). Drives Debian's chromium through Playwright. Last line: JSON.
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

from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakeserver import FakeChatServer  # noqa: E402

SESSIONS, RUNS, CAP, LATENCY_S = int(os.environ.get("LOAD_SESSIONS", 10)), 20, 8, 0.2
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


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


async def session(browser, url: str, times: list[float], errors: list[str]) -> None:
    """One visitor: open the app, set the runs to RUNS, click Run, time until the results are on the page."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    try:
        await page.goto(url)
        await page.get_by_role("button", name="Run", exact=True).wait_for(timeout=120_000)
        slider = page.get_by_role("slider").nth(1)  # temperature, runs, top_p: runs is the second
        await slider.focus()
        for _ in range(RUNS - 5):
            await slider.press("ArrowRight")
        await page.get_by_text(f"This run: {RUNS} requests").wait_for(timeout=60_000)
        started = time.perf_counter()
        await page.get_by_role("button", name="Run", exact=True).click()
        await page.get_by_text("Side by side").wait_for(timeout=int(os.environ.get("LOAD_TIMEOUT_MS", 300_000)))
        times.append(time.perf_counter() - started)
        cards = await page.locator(".rl-card[data-run]").count()
        if cards != RUNS:
            errors.append(f"a session showed {cards} cards, not {RUNS}")
    except Exception as exc:  # noqa: BLE001 - report every session's failure, do not stop the others
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        await context.close()


async def visitors(url: str, count: int, times: list[float], errors: list[str]) -> float:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        started = time.perf_counter()
        await asyncio.gather(*(session(browser, url, times, errors) for _ in range(count)))
        wall = time.perf_counter() - started
        await browser.close()
    return wall


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
                "REPRO_GLOBAL_CONCURRENCY": str(CAP), "REPRO_REQUESTS_PER_HOUR": "10000", "PYTHONPATH": str(ROOT)})
    app = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address",
                            "127.0.0.1", "--server.port", str(port)], cwd=folder, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ok(url + "/_stcore/health")
        alone: list[float] = []
        errors: list[str] = []
        asyncio.run(visitors(url, 1, alone, errors))  # one visitor by itself, for scale
        before = json.loads(urllib.request.urlopen(server_url + "/stats").read())["received"]
        times: list[float] = []
        wall = asyncio.run(visitors(url, SESSIONS, times, errors))
        stats = json.loads(urllib.request.urlopen(server_url + "/stats").read())
    finally:
        app.terminate()
        server.kill()
    times.sort()
    figures = {
        "sessions": SESSIONS, "runs_each": RUNS, "global_cap": CAP, "latency_s": LATENCY_S,
        "requests_expected": SESSIONS * RUNS, "requests_received": stats["received"] - before,
        "alone_s": round(alone[0], 2) if alone else None,
        "peak_in_flight": stats["peak_in_flight"], "cap_held": stats["peak_in_flight"] <= CAP,
        "sessions_with_results": len(times), "errors": errors,
        "results_median_s": round(statistics.median(times), 2) if times else None,
        "results_p95_s": round(times[min(len(times) - 1, int(0.95 * len(times)))], 2) if times else None,
        "wall_s": round(wall, 2),
        "floor_s": round(SESSIONS * RUNS / CAP * LATENCY_S, 2),
    }
    print(f"{figures['requests_received']} of {figures['requests_expected']} requests arrived; peak in flight "
          f"{figures['peak_in_flight']} (cap {CAP}); results on the page after median {figures['results_median_s']} s, "
          f"p95 {figures['results_p95_s']} s (one visitor alone: {figures['alone_s']} s); all sessions "
          f"{figures['wall_s']} s (the requests alone need {figures['floor_s']} s at this cap)")
    for error in errors:
        print("error:", error)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
