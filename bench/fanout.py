"""Fan-out benchmark: N identical requests against a loopback server with a fixed 300 ms latency.

Prints wall time / one request's latency for N = 1, 10, 50 in parallel, and for the same N sent one after another
(as the classic notebook demo does). Target: N=50 in parallel within 1.10x one request's latency. Last line: JSON.
"""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.backends import make_backend  # noqa: E402
from core.models import BatchPlan, RunRequest  # noqa: E402
from core.runner import stream_runs  # noqa: E402
from core.settings import load_settings  # noqa: E402
from tests.fakeserver import FakeChatServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

LATENCY_S = 0.3
REQUEST = RunRequest(prompt="Create a story about red panda.", system="You always produce 3-sentence answers.",
                     temperature=0.1, seed=42)


def wall(backend, runs: int, concurrency: int) -> float:
    started = time.perf_counter()
    results = list(stream_runs(backend, REQUEST, BatchPlan(runs, concurrency)))
    elapsed = time.perf_counter() - started
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    return elapsed


def transport_floor(url: str, runs: int) -> float:
    """The same N posts through bare httpx2 (warm pool, no SDK): what loopback + this server cost by themselves."""
    body = {"model": FakeChatServer.deployment, "messages": [{"role": "user", "content": REQUEST.prompt}], "seed": 42}
    target = f"{url}/openai/deployments/{FakeChatServer.deployment}/chat/completions?api-version=2024-06-01"

    async def burst() -> float:
        async with httpx2.AsyncClient() as client:
            post = functools.partial(client.post, target, json=body, headers={"api-key": FakeChatServer.api_key})
            await asyncio.gather(*(post() for _ in range(runs)))
            started = time.perf_counter()
            await asyncio.gather(*(post() for _ in range(runs)))
            return time.perf_counter() - started

    return asyncio.run(burst())


def main() -> None:
    # The server runs in its own process so that its threads do not share this process's GIL with the client.
    server = subprocess.Popen([sys.executable, "-m", "tests.fakeserver", "--latency", str(LATENCY_S)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        backend = make_backend(load_settings(environ={
            "OPENAI_API_BASE": url, "OPENAI_API_VERSION": "2024-06-01",
            "OPENAI_API_KEY": FakeChatServer.api_key, "OPENAI_API_DEPLOY": FakeChatServer.deployment},
            dotenv_path=None))
        wall(backend, 2, 2)  # warm-up: imports, first connection
        single = min(wall(backend, 1, 1) for _ in range(3))
        figures = {"single_request_s": round(single, 4)}
        for n in (1, 10, 50):
            parallel = wall(backend, n, n)
            sequential = wall(backend, n, 1)
            figures[f"parallel_ratio_n{n}"] = round(parallel / single, 3)
            figures[f"sequential_ratio_n{n}"] = round(sequential / single, 3)
            print(f"N={n:>2}: parallel {parallel:6.3f} s = {parallel / single:5.2f}x one request; "
                  f"one after another {sequential:6.3f} s = {sequential / single:5.2f}x")
        floor = transport_floor(url, 50)
        figures["transport_floor_ratio_n50"] = round(floor / single, 3)
        print(f"N=50 through bare httpx2, no SDK: {floor:6.3f} s = {floor / single:5.2f}x (the floor on this machine)")
        figures["target_n50_within_1_10x"] = figures["parallel_ratio_n50"] <= 1.10
        print(json.dumps(figures))
    finally:
        server.kill()


if __name__ == "__main__":
    main()
