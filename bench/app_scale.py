"""The app at scale, in a real browser: `streamlit run app.py` (REPRO_MAX_RUNS=1000) against the asyncio loopback
server (300 ms a request), Chromium at 1280×720 on the Experiment page, runs set to N and every request in flight.

For N = 100, 500, 1,000 (each on a fresh page, so a fresh session) it prints the time from the Run click to the
verdict block being visible next to the backend's own time for N requests through the same cap (the runner in this
process, no page, no history), their ratio, the largest websocket frame and the total websocket bytes the browser
received, the longest main-thread task, and the Streamlit process's RSS before and after. The N=1,000 result is
saved to artifacts/screens/experiment-1000.png (-distinct with --no-seed). Targets (issue 13): ratio ≤ 1.5 at N=1,000, no frame over 2 MB,
RSS growth < 100 MB. `python bench/app_scale.py [--sizes 100 500 1000] [--no-seed]`. Last line: JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import sync_playwright  # noqa: E402

from core.backends import make_backend  # noqa: E402
from core.models import RunRequest  # noqa: E402
from core.runner import Fanout  # noqa: E402
from core.settings import load_settings  # noqa: E402
from tests.fakeserver import FakeChatServer  # noqa: E402
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, serve_app  # noqa: E402
from ui.controls import DEFAULT_MAX_TOKENS, DEFAULT_RUNS, DEFAULT_TEMPERATURE, DEMO_SEED  # noqa: E402
from ui.prompts import CLASSIC  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCREENS = ROOT / "artifacts" / "screens"
LATENCY_S = 0.3
MAX_RUNS = 1000
SIZES = (100, 500, 1000)
TARGET_RATIO, TARGET_FRAME_BYTES, TARGET_RSS_GROWTH_MB = 1.5, 2_000_000, 100
VIEWPORT = {"width": 1280, "height": 720}
# Collected by the page itself from its first script on: its long main-thread tasks (the page not answering input),
# and the last count of runs its progress bar showed, with when it first showed it.
OBSERVERS = """window.__longTasks = []; window.__lastShown = [0, null];
new PerformanceObserver(list => window.__longTasks.push(...list.getEntries().map(e => e.duration)))
  .observe({type: "longtask", buffered: true});
new MutationObserver(() => {
  const bar = document.querySelector("[data-testid=stProgress]");
  const done = bar && /(\\d+) of \\d+ runs done/.exec(bar.innerText);
  if (done && +done[1] > window.__lastShown[0]) window.__lastShown = [+done[1], performance.now()];
}).observe(document, {subtree: true, childList: true, characterData: true});"""


def rss_mb(pid: int) -> float:
    """The resident set of process `pid`, in MB (/proc/<pid>/status VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return [int(child) for task in tasks for child in Path(task, "children").read_text().split()]


def command_line(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def streamlit_pid() -> int:
    """The `streamlit run` process serve_app started: this process's child whose command line names streamlit."""
    for pid in children(os.getpid()):
        if b"streamlit" in command_line(pid):
            return pid
    raise RuntimeError("the streamlit process is not a child of this one")


def browser_pids() -> list[int]:
    """Chromium's processes: the descendants of this one whose command line names it."""
    found, queue = [], children(os.getpid())
    while queue:
        pid = queue.pop()
        with contextlib.suppress(OSError):
            queue += children(pid)
            if b"chromium" in command_line(pid):
                found.append(pid)
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds the processes `pids` have used so far (every thread; /proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def app_request(seeded: bool) -> RunRequest:
    """The request the Experiment page sends with its defaults (the classic prompts)."""
    system, prompt = CLASSIC
    return RunRequest(prompt=prompt, system=system, temperature=DEFAULT_TEMPERATURE, max_tokens=DEFAULT_MAX_TOKENS,
                      seed=DEMO_SEED if seeded else None)


def backend_seconds(fanout: Fanout, backend, request: RunRequest, runs: int) -> float:
    """N requests through the runner with every one in flight, as the app sends them, without page or history."""
    started = time.perf_counter()
    results = list(fanout.requests(backend, [request] * runs, runs))
    elapsed = time.perf_counter() - started
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    return elapsed


class Frames:
    """The websocket frames the page receives: count, total and largest bytes."""

    def __init__(self, page) -> None:
        self.count = self.total = self.largest = 0
        page.on("websocket", lambda socket: socket.on("framereceived", self._received))

    def _received(self, payload: str | bytes) -> None:
        size = len(payload if isinstance(payload, bytes) else payload.encode())
        self.count, self.total, self.largest = self.count + 1, self.total + size, max(self.largest, size)


def settle(page) -> None:
    page.locator("[data-testid=stStatusWidget]").wait_for(state="detached", timeout=600_000)


def set_runs(page, runs: int) -> None:
    """The Runs slider, moved by keyboard from its default to `runs` (End for the top), and the script run over."""
    thumb = page.get_by_role("slider", name="Runs (identical requests)")
    thumb.focus()
    if runs == MAX_RUNS:
        page.keyboard.press("End")
    else:
        for _ in range(runs - DEFAULT_RUNS):
            page.keyboard.press("ArrowRight")
    shown = thumb.evaluate("thumb => thumb.getAttribute('aria-valuenow') ?? thumb.value")
    assert int(shown) == runs, f"the Runs slider shows {shown}, not {runs}"
    time.sleep(1)  # the slider commits its value after a short debounce
    settle(page)
    page.get_by_text(f"all ({runs})").first.wait_for(state="attached", timeout=60_000)  # every request in flight


def app_experiment(browser, url: str, pid: int, runs: int, seeded: bool) -> dict:
    """One experiment of `runs` on a fresh page: click to verdict, to the end of the script run, frames, RSS."""
    page = browser.new_page(viewport=VIEWPORT)
    page.add_init_script(OBSERVERS)
    frames = Frames(page)
    page.goto(url + "/experiment")
    page.get_by_role("button", name="Run", exact=True).wait_for(timeout=60_000)
    settle(page)
    if not seeded:
        page.get_by_text("Fixed seed").click()
        settle(page)
    set_runs(page, runs)
    before_mb = rss_mb(pid)
    frames.count = frames.total = frames.largest = 0
    browser = browser_pids()
    app_cpu, browser_cpu = cpu_seconds([pid]), cpu_seconds(browser)
    clicked_ms = page.evaluate("performance.now()")
    started = time.perf_counter()
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator("[data-verdict]").wait_for(state="visible", timeout=600_000)
    verdict_s = time.perf_counter() - started
    settle(page)
    done_s = time.perf_counter() - started
    app_cpu, browser_cpu = cpu_seconds([pid]) - app_cpu, cpu_seconds(browser) - browser_cpu
    time.sleep(1)  # the last frames and whatever the server keeps after the run
    shown_runs, shown_ms = page.evaluate("window.__lastShown")
    figures = {"last_progress_runs": shown_runs, "last_progress_s": round((shown_ms - clicked_ms) / 1000, 3),
               "verdict_s": round(verdict_s, 3), "script_done_s": round(done_s, 3), "app_cpu_s": round(app_cpu, 2), "browser_cpu_s": round(browser_cpu, 2), "frames": frames.count,
               "largest_frame_bytes": frames.largest, "websocket_bytes": frames.total,
               "longest_task_ms": round(max(page.evaluate("window.__longTasks"), default=0)),
               "rss_before_mb": round(before_mb, 1), "rss_after_mb": round(rss_mb(pid), 1)}
    if runs == MAX_RUNS:
        SCREENS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENS / ("experiment-1000.png" if seeded else "experiment-1000-distinct.png"))
    page.close()
    return figures


def measure(url: str, app_url: str, browser, sizes, seeded: bool) -> dict:
    """Each N: the backend alone, then the app in the browser; `url` is the loopback server's."""
    pid = streamlit_pid()
    fanout = Fanout(None)
    backend = make_backend(load_settings(environ={
        "OPENAI_API_BASE": url, "OPENAI_API_VERSION": "2024-06-01", "OPENAI_API_KEY": FakeChatServer.api_key,
        "OPENAI_API_DEPLOY": FakeChatServer.deployment}, dotenv_path=None))
    request = app_request(seeded)
    figures: dict = {"cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2), "seeded": seeded}
    try:
        backend_seconds(fanout, backend, request, 2)  # warm-up: imports, first connections
        for n in sizes:
            backend_s = backend_seconds(fanout, backend, request, n)
            app = app_experiment(browser, app_url, pid, n, seeded)
            app |= {"backend_s": round(backend_s, 3), "ratio": round(app["verdict_s"] / backend_s, 2),
                    "rss_growth_mb": round(app["rss_after_mb"] - app["rss_before_mb"], 1)}
            figures[f"n{n}"] = app
            print(f"N={n:>4}: {app['last_progress_runs']} in at {app['last_progress_s']:5.2f} s, verdict {app['verdict_s']:6.2f} s (script done {app['script_done_s']:6.2f} s), backend "
                  f"{backend_s:5.2f} s, ratio {app['ratio']:4.2f}x; CPU app {app['app_cpu_s']:.1f} s, browser "
                  f"{app['browser_cpu_s']:.1f} s; largest frame {app['largest_frame_bytes']:,} B, "
                  f"websocket {app['websocket_bytes']:,} B in {app['frames']} frames; longest task "
                  f"{app['longest_task_ms']} ms; RSS {app['rss_before_mb']:.0f} → {app['rss_after_mb']:.0f} MB "
                  f"(+{app['rss_growth_mb']:.0f})", flush=True)
    finally:
        fanout.close()
    top = figures.get(f"n{MAX_RUNS}")
    if top:
        figures["meets_targets"] = (top["ratio"] <= TARGET_RATIO and top["rss_growth_mb"] < TARGET_RSS_GROWTH_MB
                                    and max(figures[f"n{n}"]["largest_frame_bytes"] for n in sizes)
                                    <= TARGET_FRAME_BYTES)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    parser.add_argument("--no-seed", action="store_true", help="every answer distinct (the seed toggle off)")
    args = parser.parse_args()
    # The server runs in its own process so that it shares neither GIL nor CPU clock with the app or the bench.
    server = subprocess.Popen([sys.executable, "-m", "tests.fakeserver", "--asyncio", "--latency", str(LATENCY_S)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        env = {"OPENAI_API_BASE": url, "OPENAI_API_VERSION": "2024-06-01", "OPENAI_API_KEY": FakeChatServer.api_key,
               "OPENAI_API_DEPLOY": FakeChatServer.deployment, "REPRO_MAX_RUNS": str(MAX_RUNS),
               "REPRO_GLOBAL_CONCURRENCY": str(MAX_RUNS), "REPRO_REQUESTS_PER_HOUR": "1000000",
               # Edits to the tree while it runs must not put "File change. Rerun" in the status widget settle waits on.
               "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none"}
        with tempfile.TemporaryDirectory() as folder, serve_app(Path(folder), env) as app_url, \
                sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            figures = measure(url, app_url, browser, args.sizes, not args.no_seed)
            browser.close()
        print(json.dumps(figures))
    finally:
        server.kill()


if __name__ == "__main__":
    main()
