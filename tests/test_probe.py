"""The probe's verdicts against scripted endpoints: the loopback server's modes (honours everything, ignores the seed,
a reasoning model, load-sensitive) and the embedded engine's two modes, with tiny answers; capabilities applied."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from core.backends import make_backend
from core.backends.local import LocalBackend
from core.errors import InvalidRequest
from core.history import HistoryLocation, open_store
from core.models import BackendInfo, Completion, RunError, RunRequest, RunResult
from core.probe import (LOCAL_LADDER, AdaptedBackend, Capabilities, ParameterFinding, ProbePlan, latest_report,
                        load_report, parse_ladder, run_probe, save_probe, strip_rejected)
from core.probe.findings import LoadRung, Sample, load_finding, parameter_finding, seed_finding
from tests.environment import ENGINE_THREADS, local_engine
from tests.scripted import ScriptedBackend

SMALL = dict(runs=3, ladder=(0, 4, 16), max_tokens=6, fresh_prompts=2, warm_repeats=2, nonce=7)


def probe(backend, **changes):
    return asyncio.run(run_probe(backend, ProbePlan(**{**SMALL, **changes})))


def statuses(report) -> dict[str, str]:
    return {p.parameter: p.status for p in report.parameters}


def test_a_server_that_honours_everything_passes_every_check(fake_server, azure_settings):
    fake_server.latency_s = 0.05
    found = probe(make_backend(azure_settings))
    report = found.report
    assert statuses(report) == {"temperature": "accepted", "top_p": "accepted", "seed": "accepted",
                                "logprobs": "accepted", "max_tokens": "accepted", "max_completion_tokens": "accepted"}
    # Only the probe's own request of max_completion_tokens carries it, and without max_tokens; every other one, as
    # every run, sends max_tokens.
    [renamed] = [r.body for r in fake_server.received if "max_completion_tokens" in r.body]
    assert (renamed["max_completion_tokens"], "max_tokens" in renamed) == (2, False)
    assert all("max_tokens" in r.body for r in fake_server.received if r.body is not renamed)
    assert Capabilities.of(report).token_limit == "max_tokens"
    assert not any(run.notice for step in found.steps for run in step.runs)
    assert report.seed.verdict == "honoured"
    assert report.cold_warm.verdict == "no difference"
    assert report.load.summary == "invariant up to K=16"
    assert [(r.background, r.unique, r.changed) for r in report.load.rungs] == [(0, 1, False), (4, 1, False),
                                                                                 (16, 1, False)]
    assert report.problems() == []
    assert report.summary().endswith("seed honoured · accepts every parameter tried · cold vs warm: no difference · "
                                     "invariant up to K=16")


def test_a_server_that_ignores_the_seed_is_caught_with_the_evidence(fake_server, azure_settings):
    fake_server.ignores_seed = True
    report = probe(make_backend(azure_settings), ladder=(0,)).report
    assert report.seed.verdict == "ignored"
    assert report.seed.evidence.startswith("seed A gave two different answers")
    assert [s.label for s in report.seed.samples] == ["seed A", "seed A", "seed B", "no seed", "no seed"]
    assert statuses(report)["seed"] == "ignored"
    assert report.problems()[0] == "the seed is ignored"


def test_a_reasoning_model_rejects_temperature_top_p_and_logprobs_with_its_words(fake_server, azure_settings):
    fake_server.reasoning = True
    report = probe(make_backend(azure_settings), ladder=(0,)).report
    found = {p.parameter: p for p in report.parameters}
    assert [found[name].status for name in ("temperature", "top_p", "logprobs", "seed")] == [
        "rejected", "rejected", "rejected", "accepted"]
    assert "'temperature' does not support 0.5 with this model" in found["temperature"].evidence
    assert "logprobs" in found["logprobs"].evidence
    assert report.summary().count("rejects temperature, top_p, logprobs") == 1
    # The load request asks for temperature 0: the later parts sent 1 instead, so they still ran.
    assert report.load.rungs[0].successful == 3
    sent = [r.body.get("temperature") for r in fake_server.received if r.body["messages"][-1]["content"]
            .startswith("In one sentence")]
    assert set(sent) == {1.0}


def test_a_model_that_refuses_max_tokens_is_probed_with_max_completion_tokens(fake_server, azure_settings):
    fake_server.reasoning = fake_server.rejects_max_tokens = True
    found = probe(make_backend(azure_settings), ladder=(0,))
    report = found.report
    assert statuses(report) == {"temperature": "rejected", "top_p": "rejected", "seed": "accepted",
                                "logprobs": "rejected", "max_tokens": "rejected", "max_completion_tokens": "accepted"}
    evidence = {p.parameter: p.evidence for p in report.parameters}
    assert evidence["max_tokens"] == ("The server rejected the request (400): Unsupported parameter: 'max_tokens' is "
                                      "not supported with this model. Use 'max_completion_tokens' instead.")
    assert evidence["temperature"].endswith("'temperature' does not support 0.5 with this model. Only the default "
                                            "(1) value is supported.")
    # Sent under the name the endpoint takes, the baseline and every later part ran.
    assert report.baseline_error is None
    assert (report.seed.verdict, report.load.rungs[0].successful) == ("honoured", 3)
    assert "rejects temperature, top_p, logprobs, max_tokens · " in report.summary()
    assert [r.body.get("max_tokens") for r in fake_server.received if "max_tokens" in r.body] == [2]
    load = found.steps[-1]
    assert {run.notice for run in load.runs} == {"The endpoint rejects these (see its probe): temperature 0 sent as "
                                                 "1; max_tokens 6 sent as max_completion_tokens."}
    assert [s.label for s in found.steps][:7] == ["parameter baseline", "parameter temperature", "parameter top_p",
                                                  "parameter seed", "parameter logprobs", "parameter max_tokens",
                                                  "parameter max_completion_tokens"]


def test_a_load_sensitive_server_changes_its_answer_from_the_rung_over_its_threshold(fake_server, azure_settings):
    fake_server.latency_s = 0.3  # every request of a rung is in flight at once
    # K=4 puts 7 in flight (10 if the last rung's requests are still being closed); K=16 puts 19.
    fake_server.load_sensitive_above = 10
    report = probe(make_backend(azure_settings)).report
    assert [r.changed for r in report.load.rungs] == [False, False, True]
    assert report.load.summary == "answers change from K=16"
    assert report.problems() == ["answers change from K=16"]


def test_errors_are_findings_not_exceptions(fake_server, azure_settings):
    fake_server.api_key = "another-key-0123456789"
    report = probe(make_backend(azure_settings), ladder=(0,)).report
    assert report.baseline_error.startswith("auth:")
    assert set(statuses(report).values()) == {"untested"}
    assert report.seed.verdict == "unknown"
    assert report.load.verdict == "unknown"


@pytest.fixture(scope="module")
def cache_engine():
    return local_engine(mode="cache")


def test_the_embedded_engine_in_cache_mode_gives_a_different_first_answer(cache_engine):
    report = probe(cache_engine, fresh_prompts=4, ladder=(0,), max_tokens=8).report
    assert report.cold_warm.verdict == "first answer differs"


def test_the_embedded_engine_is_batch_invariant_with_isolated_cells_and_not_with_shared_ones():
    found = probe(local_engine(mode="deterministic"), runs=8, ladder=(0, 4), max_tokens=16, fresh_prompts=1)
    report = found.report
    assert report.seed.verdict == "honoured"
    assert report.cold_warm.verdict == "no difference"
    assert statuses(report)["logprobs"] == "accepted"
    # R inside one llama.cpp batch next to K other prompts, each rung compared with R decoded alone.
    assert report.load.verdict_line == "isolated cells: invariant up to K=4"
    assert report.load_control.verdict_line == "shared cells: answers change from K=0"
    assert [(r.background, r.unique, r.changed) for r in report.load_control.rungs] == [(0, 2, True), (4, 2, True)]
    assert report.problems() == []  # the shared cells are a control: the engine serves with isolated ones
    assert report.summary().endswith("isolated cells: invariant up to K=4 · shared cells: answers change from K=0")
    assert [s.label for s in found.steps][-5:] == ["load, R alone", "load, K=0, isolated cells",
                                                   "load, K=4, isolated cells", "load, K=0, shared cells",
                                                   "load, K=4, shared cells"]
    alone = found.steps[-5].runs[0].text
    assert {r.text for step in found.steps[-4:-2] for r in step.runs} == {alone}


def test_rungs_over_the_engines_batch_are_skipped_with_the_reason():
    report = probe(local_engine(mode="deterministic"), runs=2, ladder=(0, 31), max_tokens=2, fresh_prompts=1).report
    assert [r.background for r in report.load.rungs] == [0]
    assert [(s.background, s.reason) for s in report.load.skipped] == [
        (31, "33 sequences is over the engine's batch of 32")]


def test_seed_verdicts_from_the_five_answers():
    def verdict(*texts):
        labels = ("seed A", "seed A", "seed B", "no seed", "no seed")
        return seed_finding([Sample(label, text) for label, text in zip(labels, texts)]).verdict

    assert verdict("x", "x", "y", "u", "v") == "honoured"
    assert verdict("x", "y", "z", "u", "v") == "ignored"
    assert verdict("x", "x", "x", "u", "v") == "ignored"
    assert verdict("x", "x", "x", "x", "x") == "deterministic regardless"


def test_a_server_that_rejects_max_tokens_everywhere_is_blamed_on_max_tokens_alone():
    refusal = RunError("bad_request", "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                                      "'max_completion_tokens' instead.", 400)
    failed = RunResult.failed(0, 1.0, refusal)
    assert parameter_finding("max_tokens", failed, failed).status == "rejected"
    assert parameter_finding("temperature", failed, failed).status == "untested"
    unknown_field = RunResult.failed(0, 1.0, RunError("http", "HTTP 422: extra fields not permitted: seed", 422))
    answered = RunResult.succeeded(0, 1.0, Completion(text="ok"))
    assert parameter_finding("seed", unknown_field, answered) == ParameterFinding(
        "seed", "rejected", "HTTP 422: extra fields not permitted: seed")


def test_a_load_that_is_not_reproducible_without_load_says_so():
    rungs = [LoadRung(0, 8, 8, 3, False), LoadRung(4, 8, 8, 3, True)]
    assert load_finding(rungs).summary == "not reproducible even without load (K=0: 3 unique of 8)"


def test_a_rejected_parameter_is_stripped_with_a_note():
    info = BackendInfo("compatible", "o-test", "h")
    capabilities = Capabilities(info, (ParameterFinding("temperature", "rejected", "Only the default (1)"),
                                       ParameterFinding("seed", "rejected", "Unrecognized request argument: seed")))
    stripped, note = strip_rejected(RunRequest(prompt="p", temperature=0.3, seed=42), capabilities)
    assert (stripped.temperature, stripped.seed) == (1.0, None)
    assert note == "The endpoint rejects these (see its probe): temperature 0.3 sent as 1; seed 42 not sent."
    assert strip_rejected(RunRequest(prompt="p", temperature=1.0), capabilities) == (
        RunRequest(prompt="p", temperature=1.0), None)
    assert capabilities.reason("seed").endswith("Unrecognized request argument: seed")
    assert capabilities.reason("top_p") is None


def test_the_limit_goes_as_max_completion_tokens_only_where_max_tokens_is_rejected_and_it_is_not():
    info = BackendInfo("azure", "o-test", "h")
    refused = ParameterFinding("max_tokens", "rejected", "Use 'max_completion_tokens' instead.")

    def limit(other: str) -> str:
        return Capabilities.from_findings(info, (refused, ParameterFinding("max_completion_tokens", other, "")),
                                          True).token_limit

    assert [limit(status) for status in ("accepted", "ignored", "rejected", "untested")] == [
        "max_completion_tokens", "max_tokens", "max_tokens", "max_tokens"]  # ignored: answers would run uncapped
    # A probe saved before max_completion_tokens was tried has no row for it: nothing changes.
    assert Capabilities.from_findings(info, (refused,), True).token_limit == "max_tokens"
    renamed = Capabilities.from_findings(info, (refused, ParameterFinding("max_completion_tokens", "accepted", "")),
                                         True)
    request = RunRequest(prompt="p", max_tokens=40)
    assert strip_rejected(request, renamed) == (request, "The endpoint rejects these (see its probe): max_tokens 40 "
                                                         "sent as max_completion_tokens.")


def test_an_adapted_backend_never_sends_a_rejected_parameter_and_notes_each_run():
    backend = ScriptedBackend(lambda request, number: "ok")
    capabilities = Capabilities(backend.info, (ParameterFinding("logprobs", "rejected", "not supported"),))
    completion = asyncio.run(AdaptedBackend(backend, capabilities).complete(RunRequest(prompt="p", logprobs=True)))
    assert backend.calls[0].logprobs is False
    assert completion.notice == "The endpoint rejects these (see its probe): logprobs not asked for."


def test_the_report_card_is_saved_and_read_back(fake_server, azure_settings, tmp_path):
    store = open_store(HistoryLocation(sqlite_path=str(tmp_path / "h.sqlite3")))
    fake_server.reasoning = True
    found = probe(make_backend(azure_settings), ladder=(0,))
    probe_id = save_probe(store, found)
    assert load_report(store, probe_id) == found.report
    assert latest_report(store, found.report.backend) == (probe_id, found.report)
    assert [p.parameter for p in Capabilities.of(found.report).rejected] == ["temperature", "top_p", "logprobs"]
    children = store.children(probe_id)
    assert [c.meta["label"] for c in children][:2] == ["parameter baseline", "parameter temperature"]
    assert sum(len(c.runs) for c in children) == sum(len(step.runs) for step in found.steps) == 7 + 5 + 2 * 3 + 3
    assert not any("Describe a busy" in c.request.prompt for c in children)  # background answers are not kept
    newer = save_probe(store, found)
    with sqlite3.connect(tmp_path / "h.sqlite3") as conn:  # a card this version cannot read, as an older one wrote
        conn.execute("UPDATE experiments SET meta = '{}' WHERE id = ?", (newer,))
    assert latest_report(store, found.report.backend) == (probe_id, found.report)  # the readable one before it


def test_the_plan_is_bounded_by_the_cap_and_the_quota():
    plan = ProbePlan(runs=8)
    assert plan.total_requests == 7 + 5 + 4 * 3 + (8 + 12 + 24 + 72)
    bounded, skipped = plan.bounded(cap=16, quota=600)
    assert bounded.ladder == (0, 4)
    assert [(s.background, s.reason) for s in skipped] == [(16, "24 in flight is over the cap of 16"),
                                                           (64, "72 in flight is over the cap of 16")]
    assert plan.bounded(cap=100, quota=60)[0].ladder == (0, 4)
    with pytest.raises(InvalidRequest, match="runs 8 is over the cap of 4"):
        plan.bounded(cap=4, quota=600)
    assert parse_ladder("16, 4") == (0, 4, 16)
    with pytest.raises(InvalidRequest, match="ladder"):
        parse_ladder("4,x")


def test_on_the_embedded_engine_the_load_costs_once_per_variant_and_one_run_of_r_alone():
    plan = ProbePlan(runs=8, ladder=LOCAL_LADDER, in_batch=True)
    assert plan.total_requests == 7 + 5 + 4 * 3 + 1 + 2 * (8 + 10 + 12 + 16)
    assert plan.describe() == ("117 requests (24 for parameters, seed and cold vs warm; 1 of R alone, then load ladder "
                               "K=0,2,4,8: 8 + 10 + 12 + 16 for each of isolated cells and shared cells), at most 16 "
                               "in flight, answers of at most 16 tokens")
    # The quota counts both passes: 24 + 1 + 2 * (8 + 10) leaves no room for K=4.
    bounded, skipped = plan.bounded(cap=64, quota=61)
    assert bounded.ladder == (0, 2) and bounded.total_requests == 61
    assert [(s.background, s.reason) for s in skipped] == [(4, "over the 61 requests left in the quota"),
                                                          (8, "over the 61 requests left in the quota")]
    with pytest.raises(InvalidRequest, match="needs at least 41 requests; 40 are left"):
        plan.bounded(cap=64, quota=40)


class CountingEngine(LocalBackend):
    """The embedded engine, counting every request it answers, one by one or inside a batch."""

    sent = 0

    async def complete(self, request):
        self.sent += 1
        return await super().complete(request)

    def decode_together(self, requests, shared_cells):
        self.sent += len(requests)
        return super().decode_together(requests, shared_cells)


def test_the_plan_counts_what_the_embedded_engine_is_really_sent():
    engine = CountingEngine(mode="deterministic", n_threads=ENGINE_THREADS)
    plan = ProbePlan(**{**SMALL, "runs": 2, "ladder": (0, 2), "max_tokens": 2, "fresh_prompts": 1}, in_batch=True)
    asyncio.run(run_probe(engine, plan))
    assert engine.sent == plan.total_requests == 7 + 5 + 3 + 1 + 2 * (2 + 4)
