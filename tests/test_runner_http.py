"""The runner and the SDK backends against a real chat-completions server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import openai
import pytest

from core.backends import make_backend
from core.backends.openai_chat import POOL_CONNECTIONS, TOKEN_LIMITS, sending_token_limit_as
from core.models import BatchPlan, RunRequest
from core.runner import Fanout, iter_runs, run_batch
from core.settings import load_settings
from tests.fakeserver import FakeChatServer, serve_asyncio

DEMO = RunRequest(prompt="Create a story about red panda.", system="You always produce 3-sentence answers.",
                  temperature=0.1, seed=42, max_tokens=40)


def run(settings, request=DEMO, runs=3, concurrency=10):
    return asyncio.run(run_batch(make_backend(settings), request, BatchPlan(runs, concurrency)))


def test_azure_route_receives_exact_parameters(fake_server, azure_settings):
    results = run(azure_settings, runs=2)
    assert [r.ok for r in results] == [True, True]
    sent = fake_server.received[0]
    assert sent.path == "/openai/deployments/gpt-test/chat/completions"
    assert sent.query["api-version"] == "2024-06-01"
    assert sent.headers["api-key"] == fake_server.api_key
    assert "authorization" not in sent.headers
    assert sent.body["seed"] == 42
    assert sent.body["temperature"] == 0.1
    assert sent.body["max_tokens"] == 40
    assert sent.body["messages"] == [
        {"role": "system", "content": "You always produce 3-sentence answers."},
        {"role": "user", "content": "Create a story about red panda."},
    ]


def test_no_seed_means_the_field_is_absent(fake_server, azure_settings):
    run(azure_settings, RunRequest(prompt="hi", temperature=1.0), runs=1)
    assert "seed" not in fake_server.received[0].body


def test_results_carry_every_field(fake_server, azure_settings):
    [result] = run(azure_settings, runs=1)
    assert result.index == 0
    assert result.text and result.text.endswith(".")
    assert result.finish_reason == "stop"
    assert result.system_fingerprint == "fp_fake_1"
    assert result.model == "gpt-test"
    assert result.request_id.startswith("chatcmpl-")
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert result.latency_ms > 0
    assert result.retries == 0
    assert json.loads(result.raw)["id"] == result.request_id


def test_same_seed_gives_identical_texts_and_no_seed_differs(fake_server, azure_settings):
    seeded = run(azure_settings, runs=4)
    assert len({r.text for r in seeded}) == 1
    unseeded = run(azure_settings, RunRequest(prompt="Create a story about red panda.", temperature=1.0), runs=4)
    assert len({r.text for r in unseeded}) > 1


def test_openai_v1_route_uses_bearer_token(fake_server):
    settings = load_settings(environ={"OPENAI_API_KEY": fake_server.api_key, "OPENAI_BASE_URL": fake_server.url + "/v1",
                                      "OPENAI_MODEL": "gpt-mini"}, dotenv_path=None)
    [result] = run(settings, runs=1)
    assert result.ok, result.error
    sent = fake_server.received[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {fake_server.api_key}"
    assert sent.body["model"] == "gpt-mini"


def test_azure_v1_base_url_needs_no_api_version(fake_server):
    settings = load_settings(environ={"AZURE_OPENAI_ENDPOINT": fake_server.url + "/openai/v1/",
                                      "AZURE_OPENAI_API_KEY": fake_server.api_key,
                                      "AZURE_OPENAI_DEPLOYMENT": "gpt-test"}, dotenv_path=None)
    backend = make_backend(settings)
    assert backend.info.api_version is None
    [result] = asyncio.run(run_batch(backend, DEMO, BatchPlan(1, 1)))
    assert result.ok, result.error
    assert fake_server.received[0].path == "/openai/v1/chat/completions"
    assert "api-version" not in fake_server.received[0].query


def test_compatible_server_never_gets_another_providers_key(fake_server):
    env = {"COMPATIBLE_BASE_URL": fake_server.url + "/v1", "COMPATIBLE_MODEL": "llama3",
           "OPENAI_API_KEY": "sk-openai-secret-not-for-you", "REPRO_BACKEND": "compatible"}
    results = run(load_settings(environ=env, dotenv_path=None), runs=1)
    sent = fake_server.received[0]
    assert "sk-openai-secret-not-for-you" not in json.dumps(sent.headers)
    assert results[0].error.kind == "auth"  # the fake wants its own key, and got the placeholder


@pytest.mark.parametrize("runs, cap", [(8, 8), (8, 3), (2, 10)])
def test_requests_overlap_up_to_the_cap(fake_server, azure_settings, runs, cap):
    fake_server.latency_s = 0.3
    results = run(azure_settings, runs=runs, concurrency=cap)
    assert all(r.ok for r in results)
    assert fake_server.peak_in_flight == min(runs, cap)


def test_results_arrive_as_they_complete(fake_server, azure_settings):
    fake_server.latency_s = 0.2
    fake_server.faults.extend(["401"])  # the first to arrive fails fast… after the same latency

    async def collect():
        seen = []
        async for result in iter_runs(make_backend(azure_settings), DEMO, BatchPlan(3, 1)):
            seen.append((result.index, result.ok))
        return seen

    seen = asyncio.run(collect())
    assert sorted(i for i, _ in seen) == [0, 1, 2]
    assert seen[0] == (0, False)  # with a cap of 1 the runs complete in order, the failure first


# What the SDK adds per request whatever the path: its retry count and timeout are the same here; none vary.
SDK_PATHS = [
    ("azure", lambda url: {"OPENAI_API_BASE": url, "OPENAI_API_VERSION": "2024-06-01", "OPENAI_API_DEPLOY": "gpt-test"},
     lambda url, key: openai.AsyncAzureOpenAI(azure_endpoint=url, azure_deployment="gpt-test",
                                              api_version="2024-06-01", api_key=key, max_retries=0)),
    ("openai", lambda url: {"OPENAI_BASE_URL": url + "/v1", "OPENAI_MODEL": "gpt-mini", "REPRO_BACKEND": "openai"},
     lambda url, key: openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)),
]


@pytest.mark.parametrize("provider, environ, sdk_client", SDK_PATHS, ids=[path[0] for path in SDK_PATHS])
@pytest.mark.parametrize("request_", [DEMO, RunRequest(prompt="Ünïcode “quotes” 🐼", temperature=1.0, logprobs=True)])
@pytest.mark.parametrize("limit", TOKEN_LIMITS)
def test_the_body_built_once_is_what_the_sdk_itself_sends(fake_server, provider, environ, sdk_client, request_,
                                                          limit):
    """Regression: the lean path (one body per request, client.post) sends the bytes, route and headers that
    chat.completions.create sends for the same parameters, the token limit under either of its names."""
    settings = load_settings(environ={**environ(fake_server.url), "OPENAI_API_KEY": fake_server.api_key,
                                      "REPRO_MAX_RETRIES": "0"}, dotenv_path=None)
    backend = make_backend(settings)
    with sending_token_limit_as(limit):
        [ours] = asyncio.run(run_batch(backend, request_, BatchPlan(1, 1)))
    model = backend.info.model
    params = {"model": model, "messages": request_.messages(), "temperature": request_.temperature,
              "top_p": request_.top_p, limit: request_.max_tokens,
              **({"seed": request_.seed} if request_.seed is not None else {}),
              **({"logprobs": True, "top_logprobs": request_.top_logprobs} if request_.logprobs else {})}

    async def through_the_sdk():
        async with sdk_client(fake_server.url, fake_server.api_key) as client:
            return await client.chat.completions.with_raw_response.create(**params)

    asyncio.run(through_the_sdk())
    lean, sdk = fake_server.received
    assert ours.ok, ours.error
    assert (lean.path, lean.query, lean.raw) == (sdk.path, sdk.query, sdk.raw)
    assert {k: v for k, v in lean.headers.items() if k != "x-stainless-read-timeout"} == \
        {k: v for k, v in sdk.headers.items() if k != "x-stainless-read-timeout"}


def test_identical_requests_share_one_body_and_different_ones_do_not(fake_server, azure_settings):
    """Regression: the body is built once per distinct request; a changed request is never sent a stale body."""
    backend = make_backend(azure_settings)
    run_twice = [run_batch(backend, DEMO, BatchPlan(5, 5)), run_batch(backend, replace(DEMO, seed=7), BatchPlan(2, 2))]
    for batch in run_twice:
        assert all(r.ok for r in asyncio.run(batch))
    assert [r.body["seed"] for r in fake_server.received] == [42] * 5 + [7] * 2
    assert backend._body.cache_info().misses == 2
    # The same request under the other name of its limit is another body, never the cached one.
    with sending_token_limit_as("max_completion_tokens"):
        assert all(r.ok for r in asyncio.run(run_batch(backend, DEMO, BatchPlan(1, 1))))
    assert (fake_server.received[-1].body["max_completion_tokens"], "max_tokens" in fake_server.received[-1].body) == (
        40, False)


def test_many_runs_spread_over_small_pools_without_waiting_for_each_other(fake_server, azure_settings):
    """Regression: runs beyond one client's pool get clients of their own instead of queueing for a connection."""
    fake_server.latency_s = 0.3
    runs = 2 * POOL_CONNECTIONS + 3
    backend = make_backend(azure_settings)
    results = asyncio.run(run_batch(backend, DEMO, BatchPlan(runs, runs)))
    assert all(r.ok for r in results)
    assert fake_server.peak_in_flight == runs  # all at once, not three rounds of one pool's connections
    [lanes] = backend._lanes.values()
    assert len(lanes.clients) == 3


def test_the_asyncio_benchmark_server_answers_the_sdk_path():
    """bench/fanout.py's lean asyncio server: every run of a batch answered after its latency, a wrong key refused."""
    async def batch(key: str, runs: int) -> list:
        url: list[str] = []
        server = asyncio.ensure_future(serve_asyncio(0.2, FakeChatServer.api_key, url.append))
        while not url:
            await asyncio.sleep(0.01)
        settings = load_settings(environ={"OPENAI_API_BASE": url[0], "OPENAI_API_VERSION": "2024-06-01",
                                          "OPENAI_API_KEY": key, "OPENAI_API_DEPLOY": "gpt-test",
                                          "REPRO_MAX_RETRIES": "0"}, dotenv_path=None)
        try:
            return await run_batch(make_backend(settings), DEMO, BatchPlan(runs, runs))
        finally:
            server.cancel()

    started = time.perf_counter()
    results = asyncio.run(batch(FakeChatServer.api_key, 30))
    assert time.perf_counter() - started >= 0.2
    assert all(r.ok for r in results) and len({r.text for r in results}) == 1
    [refused] = asyncio.run(batch("not-the-key", 1))
    assert refused.error.kind == "auth"


@pytest.mark.parametrize("fault", ["429", "500", "503", "reset"])
def test_transient_faults_are_retried_by_the_sdk(fake_server, azure_settings, fault):
    fake_server.faults.append(fault)
    [result] = run(azure_settings, runs=1)
    assert result.ok, result.error
    assert result.retries == 1
    assert len(fake_server.received) == 2


def test_429_retry_honours_retry_after_ms(fake_server, azure_settings):
    fake_server.faults.append("429")
    run(azure_settings, runs=1)
    first, second = fake_server.received
    gap = second.started - first.finished
    assert 0.04 <= gap < 0.9  # retry-after-ms is 50 ms; the SDK's own back-off would be longer than 0.9 s


def test_one_failed_run_never_loses_the_others(fake_server, azure_env):
    settings = load_settings(environ={**azure_env, "REPRO_MAX_RETRIES": "0"}, dotenv_path=None)
    fake_server.faults.extend(["500", "malformed", "content_filter", "404"])
    results = run(settings, runs=6, concurrency=1)
    kinds = [r.error.kind if r.error else "ok" for r in results]
    assert kinds == ["server", "malformed", "content_filter", "not_found", "ok", "ok"]
    assert "OPENAI_API_DEPLOY" in results[3].error.message


def test_timeout_is_explicit_and_reported(fake_server, azure_env):
    fake_server.hang_s = 2.0
    settings = load_settings(environ={**azure_env, "REPRO_TIMEOUT": "0.5", "REPRO_MAX_RETRIES": "0"},
                             dotenv_path=None)
    fake_server.faults.append("timeout")
    [result] = run(settings, runs=1)
    assert result.error.kind == "timeout"
    assert "REPRO_TIMEOUT" in result.error.message
    assert result.latency_ms < 1500


def test_auth_failure_names_the_variable_and_never_echoes_the_key(fake_server, azure_env):
    secret = "wrong-key-SECRET-987654321"
    settings = load_settings(environ={**azure_env, "OPENAI_API_KEY": secret}, dotenv_path=None)
    [result] = run(settings, runs=1)
    assert result.error.kind == "auth"
    assert result.error.status == 401
    assert "OPENAI_API_KEY" in result.error.message
    assert secret not in repr(result) and secret not in json.dumps(result.to_dict(raw=True))
    assert fake_server.received[0].headers["api-key"] == secret  # the server did get (and echo) it


def test_logprobs_are_requested_and_parsed(fake_server, azure_settings):
    request = RunRequest(prompt="hi", seed=1, logprobs=True, top_logprobs=3)
    [result] = run(azure_settings, request, runs=1)
    assert fake_server.received[0].body["logprobs"] is True
    assert fake_server.received[0].body["top_logprobs"] == 3
    assert "".join(t.token for t in result.logprobs) == result.text
    assert len(result.logprobs[0].top) == 3
    assert result.logprobs[0].top[0].token == result.logprobs[0].token


def test_fanout_runs_yields_live_and_closing_early_cancels_the_rest(fake_server, azure_settings):
    fake_server.latency_s = 0.2
    fanout = Fanout(None)
    results = fanout.runs(make_backend(azure_settings), DEMO, BatchPlan(8, 2))
    first = next(results)
    assert first.ok
    results.close()
    time.sleep(0.6)
    fanout.close()
    assert len(fake_server.received) < 8  # the waves started before the close took; never all 8


def test_different_requests_share_one_cap_and_keep_their_positions(fake_server, azure_settings):
    fake_server.latency_s = 0.2
    requests = [RunRequest(prompt="p", seed=seed, temperature=t) for seed, t in ((1, 0.0), (2, 0.5), (3, 1.0))] * 2
    with Fanout(None) as fanout:
        results = sorted(fanout.requests(make_backend(azure_settings), requests, 4), key=lambda r: r.index)
    assert [r.index for r in results] == list(range(6))
    assert sorted((r.body["seed"], r.body["temperature"]) for r in fake_server.received) == sorted(
        (q.seed, q.temperature) for q in requests)
    assert fake_server.peak_in_flight == 4
    assert results[0].text == results[3].text != results[1].text  # same seed and temperature, same words


def test_a_deployment_that_rejects_logprobs_gets_the_run_again_without(fake_server, azure_settings):
    fake_server.logprobs_supported = False
    [result] = run(azure_settings, RunRequest(prompt="hi", seed=1, logprobs=True), runs=1)
    assert result.ok, result.error
    assert result.logprobs is None
    assert "does not return logprobs" in result.notice
    first, second = fake_server.received
    assert first.body["logprobs"] is True and "logprobs" not in second.body


def test_a_fanouts_cap_holds_across_simultaneous_batches(fake_server, azure_settings):
    fake_server.latency_s = 0.15
    backend, fanout = make_backend(azure_settings), Fanout(5)
    counts = []

    def session():
        counts.append(sum(r.ok for r in fanout.runs(backend, DEMO, BatchPlan(8, 8))))

    threads = [threading.Thread(target=session) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fanout.close()
    assert counts == [8, 8, 8]
    assert fake_server.peak_in_flight == 5


SIMULTANEOUS_SESSIONS = """
import sys, threading
from core.backends import make_backend
from core.models import BatchPlan, RunRequest
from core.runner import Fanout
from core.settings import load_settings

url, key = sys.argv[1], sys.argv[2]
backend = make_backend(load_settings(environ={"OPENAI_API_BASE": url, "OPENAI_API_VERSION": "2024-06-01",
    "OPENAI_API_KEY": key, "OPENAI_API_DEPLOY": "gpt-test"}, dotenv_path=None))
barrier, counts, fanout = threading.Barrier(10), [], Fanout(3)

def session():
    barrier.wait()  # every thread makes its first call into the fanout at the same moment
    counts.append(sum(r.ok for r in fanout.runs(backend, RunRequest(prompt="p", seed=1), BatchPlan(6, 6))))

threads = [threading.Thread(target=session) for _ in range(10)]
[t.start() for t in threads]
[t.join() for t in threads]
print(sorted(counts))
"""


def test_sessions_that_start_at_the_same_moment_share_one_loop_and_finish(fake_server):
    """Regression: racing first calls once built two event loops, and a gate shared across them hung 7 of 10."""
    fake_server.latency_s = 0.1
    done = subprocess.run([sys.executable, "-c", SIMULTANEOUS_SESSIONS, fake_server.url, fake_server.api_key],
                          capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert done.stdout.strip() == str([6] * 10), done.stderr
    assert len(fake_server.received) == 60
    assert fake_server.peak_in_flight == 3


def test_a_client_is_kept_per_live_event_loop_only(fake_server, azure_settings):
    backend = make_backend(azure_settings)
    for _ in range(3):
        asyncio.run(run_batch(backend, DEMO, BatchPlan(1, 1)))
    assert len(backend._lanes) == 1  # the last loop's clients; the closed loops' clients were let go


def test_a_server_that_echoes_the_key_in_its_answer_is_scrubbed(fake_server, azure_settings):
    fake_server.answers.append(f"Your key is {fake_server.api_key}.")
    [result] = run(azure_settings, runs=1)
    assert result.text == "Your key is ***."
    assert fake_server.api_key not in json.dumps(result.to_dict(raw=True))
