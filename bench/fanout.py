"""Fan-out benchmark: N identical requests against an asyncio loopback server with a fixed 300 ms latency.

For N = 1 … 1,000 in parallel it prints wall time / one request's latency for the project's path and, against the
same server, for a bare asyncio socket client (the floor on this machine), with the client CPU milliseconds per
request; N=10 is also sent one after another, as the classic notebook demo does. Each N is the first batch of its
size, so both clients open the connections it needs beyond the last N's, as an app's first batch of that size does.
Targets (issue 13): N=50 ≤ 1.15×, N=500 ≤ 2.5×, N=1,000 ≤ 4.0×, client CPU ≤ 0.9 ms per request. Last line: JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.backends import make_backend  # noqa: E402
from core.models import RunRequest  # noqa: E402
from core.runner import Fanout  # noqa: E402
from core.settings import load_settings  # noqa: E402
from tests.fakeserver import FakeChatServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

LATENCY_S = 0.3
SIZES = (1, 10, 50, 100, 500, 1000)
TARGETS = {50: 1.15, 500: 2.5, 1000: 4.0}
TARGET_CPU_MS = 0.9
REQUEST = RunRequest(prompt="Create a story about red panda.", system="You always produce 3-sentence answers.",
                     temperature=0.1, seed=42)


def timed(burst) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds (every thread) spent in `burst()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    burst()
    return time.perf_counter() - wall, time.process_time() - cpu


def project(fanout: Fanout, backend, runs: int) -> None:
    """N requests through the project's own path: the runner and the backend, as the app and the CLI use them."""
    results = list(fanout.requests(backend, [REQUEST] * runs, runs))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]


def bare_request(url: str) -> bytes:
    """One chat-completions POST as raw HTTP/1.1 bytes, built once."""
    parts = urlsplit(url)
    body = json.dumps({"model": FakeChatServer.deployment, "seed": 42, "messages": REQUEST.messages()}).encode()
    return (f"POST /openai/deployments/{FakeChatServer.deployment}/chat/completions?api-version=2024-06-01 HTTP/1.1\r\n"
            f"host: {parts.netloc}\r\napi-key: {FakeChatServer.api_key}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


async def _bare_one(host: str, port: int, raw: bytes) -> dict:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(raw)
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    length = int(head.lower().split("content-length: ", 1)[1].split("\r\n", 1)[0])
    answer = json.loads(await reader.readexactly(length))
    writer.close()
    return answer


def bare(url: str, runs: int) -> None:
    """The same N posts from a bare asyncio socket client (a connection each, JSON parsed, nothing else)."""
    parts, raw = urlsplit(url), bare_request(url)

    async def burst() -> None:
        answers = await asyncio.gather(*(_bare_one(parts.hostname, parts.port, raw) for _ in range(runs)))
        assert all(a["choices"][0]["message"]["content"] for a in answers)

    asyncio.run(burst())


def single(burst) -> float:
    """One request's latency: the best of 3, after a warm-up burst (imports, first connections)."""
    burst(2)
    return min(timed(lambda: burst(1))[0] for _ in range(3))


def measure(bursts: dict, sizes=SIZES) -> dict:
    """For each N, each client's ratio to its own single request and its CPU ms per request; the clients take turns
    at each N, so that they see the same machine (2 cores shared with whatever else runs)."""
    singles = {name: single(burst) for name, burst in bursts.items()}
    figures = {f"{name}_single_request_s": round(s, 4) for name, s in singles.items()}
    for n in sizes:
        for name, burst in bursts.items():
            wall, cpu = timed(lambda: burst(n))
            figures[f"{name}_ratio_n{n}"] = round(wall / singles[name], 3)
            figures[f"{name}_cpu_ms_per_request_n{n}"] = round(cpu * 1000 / n, 3)
            print(f"{name:>7} N={n:>4}: {wall:6.3f} s = {wall / singles[name]:5.2f}x one request, "
                  f"client CPU {cpu * 1000 / n:5.2f} ms per request", flush=True)
    return figures


def main() -> None:
    # The server runs in its own process so that it does not share this process's GIL or CPU clock with the client.
    server = subprocess.Popen([sys.executable, "-m", "tests.fakeserver", "--asyncio", "--latency", str(LATENCY_S)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    fanout = Fanout(None)
    try:
        url = server.stdout.readline().strip()
        backend = make_backend(load_settings(environ={
            "OPENAI_API_BASE": url, "OPENAI_API_VERSION": "2024-06-01",
            "OPENAI_API_KEY": FakeChatServer.api_key, "OPENAI_API_DEPLOY": FakeChatServer.deployment},
            dotenv_path=None))
        figures = {"cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2)}
        figures |= measure({"project": lambda n: project(fanout, backend, n), "bare": lambda n: bare(url, n)})
        sequential, _ = timed(lambda: list(fanout.requests(backend, [REQUEST] * 10, 1)))
        figures["project_sequential_ratio_n10"] = round(sequential / figures["project_single_request_s"], 3)
        print(f"project N=  10 one after another: {sequential:6.3f} s = "
              f"{figures['project_sequential_ratio_n10']:5.2f}x (the classic demo)")
        worst_cpu = max(figures[f"project_cpu_ms_per_request_n{n}"] for n in TARGETS)
        figures["meets_targets"] = all(figures[f"project_ratio_n{n}"] <= ratio for n, ratio in TARGETS.items()) \
            and worst_cpu <= TARGET_CPU_MS
        print(json.dumps(figures))
    finally:
        fanout.close()
        server.kill()


if __name__ == "__main__":
    main()
