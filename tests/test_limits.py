"""Limits per experiment and the hourly quota: refused before anything is sent, with the variable named."""

from __future__ import annotations

import pytest

from core.errors import ConfigurationError, InvalidRequest
from core.models import RunRequest
from core.policy import Limits, Quota
from core.settings import read_limits
from core.sweep import SweepPlan


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
    ({"REPRO_MAX_RUNS": "0"}, "REPRO_MAX_RUNS must be a whole number from 1 to 100"),
    ({"REPRO_REQUESTS_PER_HOUR": "-5"}, "REPRO_REQUESTS_PER_HOUR"),
])
def test_bad_limit_variables_are_refused(source, message):
    with pytest.raises(ConfigurationError, match=message):
        read_limits(source)


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
