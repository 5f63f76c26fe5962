"""Limits per experiment and the hourly quota: refused before anything is sent, with the variable named."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import ConfigurationError, InvalidRequest
from core.models import BatchPlan, Completion, RunRequest
from core.policy import Limits, Quota, Quotas
from core.runner import Fanout
from core.settings import read_limits
from core.sweep import SweepPlan


class InFlight:
    """A backend that answers after 50 ms and counts how many requests it holds at once."""

    info = None
    max_concurrency = None

    def __init__(self):
        self.now = self.peak = 0

    async def complete(self, request: RunRequest) -> Completion:
        self.now += 1
        self.peak = max(self.peak, self.now)
        await asyncio.sleep(0.05)
        self.now -= 1
        return Completion(text="ok")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_defaults_and_overrides_from_variables():
    assert read_limits({}) == Limits()
    limits = read_limits({"REPRO_MAX_RUNS": "20", "REPRO_GLOBAL_CONCURRENCY": "4", "REPRO_MAX_TOKENS": ""})
    assert (limits.max_runs, limits.global_concurrency, limits.max_tokens) == (20, 4, 1024)


@pytest.mark.parametrize("source, message", [
    ({"REPRO_MAX_RUNS": "many"}, "REPRO_MAX_RUNS must be a whole number"),
    ({"REPRO_MAX_RUNS": "0"}, "REPRO_MAX_RUNS must be a whole number from 1 to 1,000"),
    ({"REPRO_MAX_RUNS": "1001"}, "REPRO_MAX_RUNS must be a whole number from 1 to 1,000, got 1001"),
    ({"REPRO_REQUESTS_PER_HOUR": "-5"}, "REPRO_REQUESTS_PER_HOUR"),
])
def test_bad_limit_variables_are_refused(source, message):
    with pytest.raises(ConfigurationError, match=message):
        read_limits(source)


def test_an_operator_may_allow_a_thousand_runs_and_the_default_stays_modest():
    limits = read_limits({"REPRO_MAX_RUNS": "1000", "REPRO_GLOBAL_CONCURRENCY": "1000"})
    limits.check(request(), 1000)
    assert BatchPlan(1000, limits.global_concurrency).runs == 1000
    assert Limits().max_runs == 50


def test_the_default_process_cap_sends_a_fifty_run_batch_in_one_wave():
    """Regression: the default REPRO_GLOBAL_CONCURRENCY (16) sent a 50-run batch in four waves."""
    backend = InFlight()
    with Fanout(Limits().global_concurrency) as fanout:
        assert sum(r.ok for r in fanout.runs(backend, request(), BatchPlan(50, 50))) == 50
    assert backend.peak == 50


def request(**fields) -> RunRequest:
    return RunRequest(**{"prompt": "Create a story about red panda.", "max_tokens": 100, **fields})


def test_an_experiment_over_the_limits_is_refused():
    limits = Limits(max_runs=10, max_tokens=200, max_prompt_chars=40)
    limits.check(request(max_tokens=200), 10)
    with pytest.raises(InvalidRequest, match="11 runs is over this instance's limit of 10 \\(REPRO_MAX_RUNS\\)"):
        limits.check(request(), 11)
    with pytest.raises(InvalidRequest, match="^11 runs is over"):
        limits.check(request(), 11, sweep=False)  # as ui.session's Session.admit passes it for an experiment
    with pytest.raises(InvalidRequest, match="REPRO_MAX_TOKENS"):
        limits.check(request(max_tokens=201), 5)
    with pytest.raises(InvalidRequest, match="The prompt has 41 characters; this instance allows 40"):
        limits.check(request(prompt="x" * 41), 5)
    with pytest.raises(InvalidRequest, match="The system prompt has 41 characters.*REPRO_MAX_PROMPT_CHARS"):
        limits.check(request(system="y" * 41), 5)


def test_quota_counts_a_sliding_hour():
    clock = Clock()
    quota = Quota(10, clock)
    quota.take(6)
    clock.now += 1800
    quota.take(4)
    assert quota.remaining() == 0
    with pytest.raises(InvalidRequest, match="needs 3 requests but 0 of your 10 per hour are left.*30 min"):
        quota.take(3)
    clock.now += 1801  # the first six are now more than an hour old
    assert quota.remaining() == 6
    quota.take(6)
    assert quota.remaining() == 0


def test_a_refused_request_takes_nothing():
    quota = Quota(5, Clock())
    quota.take(3)
    with pytest.raises(InvalidRequest):
        quota.take(3)
    assert quota.remaining() == 2


def test_a_sweep_is_checked_against_its_own_limit():
    limits = Limits(max_runs=10, max_sweep_requests=60)
    plan = SweepPlan((0.0, 0.5, 1.0), (42, None), runs=10)
    limits.check(request(), 60, sweep=plan)
    with pytest.raises(InvalidRequest, match="61 requests in one sweep is over this instance's limit of 60"):
        limits.check(request(), 61, sweep=plan)


def test_a_sweep_cell_may_not_have_more_runs_than_an_experiment():
    limits = Limits(max_runs=1)
    two_runs, one_run = SweepPlan((0.7,), (42,), runs=2), SweepPlan((0.7, 1.0), (42,), runs=1)
    with pytest.raises(InvalidRequest, match=r"^2 runs per cell is over this instance's limit of 1 \(REPRO_MAX_RUNS\)"):
        limits.check(request(), two_runs.total_requests, sweep=two_runs)
    limits.check(request(), one_run.total_requests, sweep=one_run)  # two cells of one run: two requests, allowed


def test_the_quotas_forget_visitors_idle_for_an_hour():
    """Regression: the app kept one Quota for every visitor ever seen, a dict that only grew."""
    clock = Clock()
    quotas = Quotas(clock)
    for visitor in ("ip:192.0.2.1", "ip:192.0.2.2", "ip:192.0.2.3"):
        quotas.for_visitor(visitor, 5)
    assert len(quotas) == 3
    clock.now += 3600
    quotas.for_visitor("ip:192.0.2.4", 5)
    assert len(quotas) == 1


def test_the_quotas_keep_a_visitor_with_requests_in_the_window():
    clock = Clock()
    quotas = Quotas(clock)
    quotas.for_visitor("ip:192.0.2.1", 5).take(3)
    clock.now += 1800
    quotas.for_visitor("ip:192.0.2.1", 5).take(1)
    clock.now += 2000  # the first three have left the window, the last one has not
    quotas.for_visitor("ip:192.0.2.2", 5)
    assert len(quotas) == 2
    assert quotas.for_visitor("ip:192.0.2.1", 5).remaining() == 4


def test_a_quota_just_handed_out_is_not_forgotten_before_its_take():
    clock = Clock()
    quotas = Quotas(clock)
    handed = quotas.for_visitor("ip:192.0.2.1", 5)  # a script run has it, full, and takes from it in a moment
    clock.now += 10
    quotas.for_visitor("ip:192.0.2.2", 5)  # another visitor's script run in between
    handed.take(5)
    assert quotas.for_visitor("ip:192.0.2.1", 5).remaining() == 0


def test_a_changed_hourly_limit_starts_a_new_quota():
    quotas = Quotas(Clock())
    quotas.for_visitor("ip:192.0.2.1", 5).take(5)
    assert quotas.for_visitor("ip:192.0.2.1", 8).remaining() == 8
