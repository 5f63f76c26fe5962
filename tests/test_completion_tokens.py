"""Runs after a probe, against the loopback server with and without a reasoning model's refusal of max_tokens: the
limit goes as max_completion_tokens only where the latest probe found max_tokens rejected and that name accepted."""

from __future__ import annotations

import asyncio

from core.backends import make_backend
from core.history import HistoryLocation, open_store
from core.models import BatchPlan, RunRequest
from core.probe import AdaptedBackend, Capabilities, ProbePlan, latest_report, run_probe, save_probe
from core.runner import run_batch

REQUEST = RunRequest(prompt="Write one sentence about the sea.", temperature=1.0, seed=42, max_tokens=5)
NOTE = "The endpoint rejects these (see its probe): max_tokens 5 sent as max_completion_tokens."


def run_after_a_probe(settings, tmp_path):
    """Probe the endpoint and save the card; then run REQUEST 3 times as the pages do, adapted to its latest probe."""
    backend = make_backend(settings)
    store = open_store(HistoryLocation(sqlite_path=str(tmp_path / "h.sqlite3")))
    save_probe(store, asyncio.run(run_probe(backend, ProbePlan(runs=2, ladder=(0,), max_tokens=4, fresh_prompts=1))))
    _, report = latest_report(store, backend.info)
    return asyncio.run(run_batch(AdaptedBackend(backend, Capabilities.of(report)), REQUEST, BatchPlan(3, 3)))


def test_without_a_probe_a_model_that_refuses_max_tokens_fails_every_run_with_its_words(fake_server, azure_settings):
    fake_server.rejects_max_tokens = True
    results = asyncio.run(run_batch(make_backend(azure_settings), REQUEST, BatchPlan(2, 2)))
    assert {(r.error.kind, r.error.status) for r in results} == {("bad_request", 400)}
    assert results[0].error.message.endswith("Use 'max_completion_tokens' instead.")


def test_after_a_probe_that_found_max_tokens_rejected_runs_send_max_completion_tokens_with_a_note(fake_server,
                                                                                                    azure_settings,
                                                                                                    tmp_path):
    fake_server.rejects_max_tokens = True
    results = run_after_a_probe(azure_settings, tmp_path)
    assert all(r.ok for r in results), [r.error for r in results]
    assert [r.notice for r in results] == [NOTE] * 3
    assert all(len(r.text.split()) == 5 for r in results)  # the renamed limit is obeyed like max_tokens
    bodies = [r.body for r in fake_server.received[-3:]]
    assert [(b["max_completion_tokens"], "max_tokens" in b) for b in bodies] == [(5, False)] * 3


def test_after_a_probe_of_a_server_that_takes_max_tokens_runs_still_send_it(fake_server, azure_settings, tmp_path):
    results = run_after_a_probe(azure_settings, tmp_path)
    assert all(r.ok for r in results) and [r.notice for r in results] == [None] * 3
    bodies = [r.body for r in fake_server.received[-3:]]
    assert [(b["max_tokens"], "max_completion_tokens" in b) for b in bodies] == [(5, False)] * 3
