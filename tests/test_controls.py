"""The sidebar's run parameters: what the chosen number of runs can prove (the runs-needed planner of issue 14)."""

from __future__ import annotations

import pytest

from tests.apptest import experiment, plain
from tests.scripted import texts

pytestmark = pytest.mark.usefixtures("app_environment")


def sidebar_captions(at) -> list[str]:
    return [plain(c.value) for c in at.sidebar.caption]


@pytest.mark.parametrize(("runs", "bound"), [(5, "45.1 %"), (50, "5.8 %"), (299, "1.0 %")])
def test_the_runs_slider_says_what_that_many_identical_runs_would_prove(scripted, monkeypatch, runs, bound):
    monkeypatch.setenv("REPRO_MAX_RUNS", "300")
    scripted(texts("x"))
    at = experiment()
    at.slider(key="runs").set_value(runs).run()
    assert not at.exception
    [said] = [c for c in sidebar_captions(at) if c.startswith("If all")]
    assert said == (f"If all {runs} agree: fewer than {bound} of requests diverge (95 %). "
                    "To show fewer than 1 %: 299 runs.")
