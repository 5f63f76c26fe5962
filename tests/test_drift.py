"""Drift between an original batch and its re-run, from fixed results; summaries pinned whole."""

from __future__ import annotations

from core.analysis.drift import Drift, drift
from core.models import RunError, RunResult


def runs(*texts: str | None, fingerprint: str | None = "fp_a") -> list[RunResult]:
    """One run per text; None is a failed run."""
    return [RunResult(index=k, latency_ms=100.0, text=text, system_fingerprint=fingerprint) if text is not None
            else RunResult.failed(k, 100.0, RunError("timeout", "too slow")) for k, text in enumerate(texts)]


def test_identical_batches_show_no_drift():
    assert drift(runs("A b.", "A b.", "C d."), runs("C d.", "A b.", "A b.")) == Drift(
        outputs_changed=False, modal_changed=False, fingerprint_changed=False, fingerprints_before=("fp_a",),
        fingerprints_after=("fp_a",), moved_runs=(), new_outputs=0, lost_outputs=0, first_divergence_word=None,
        modal_before="A b.", modal_after="A b.", rerun_runs=3, rerun_answered=3)
    assert drift(runs("A b."), runs("A b.")).summary_line() == "Same outputs, same fingerprint: no drift."


def test_a_changed_fingerprint_with_new_text():
    found = drift(runs("The panda sleeps.", "The panda sleeps."),
                  runs("The panda eats.", "The panda sleeps.", "The panda eats.", "Bamboo.", None, fingerprint="fp_b"))
    assert (found.fingerprint_changed, found.outputs_changed, found.modal_changed) == (True, True, True)
    assert (found.moved_runs, found.new_outputs, found.lost_outputs) == ((0, 2, 3), 2, 0)
    assert found.first_divergence_word == 2
    assert (found.modal_before, found.modal_after) == ("The panda sleeps.", "The panda eats.")
    assert found.summary_line() == ("Fingerprint changed fp_a → fp_b; 3 of 5 runs produced text never seen in the "
                                    "original; the most common output now parts from the original's at word 3.")


def test_a_changed_fingerprint_alone():
    found = drift(runs("Same."), runs("Same.", fingerprint="fp_b"))
    assert (found.fingerprint_changed, found.outputs_changed, found.modal_changed) == (True, False, False)
    assert found.summary_line() == "Fingerprint changed fp_a → fp_b; same outputs."


def test_outputs_lost_without_new_text_and_the_modal_moves():
    found = drift(runs("One.", "One.", "Two.", "Three."), runs("Two.", "Two.", "One."))
    assert (found.fingerprint_changed, found.outputs_changed, found.modal_changed) == (False, True, True)
    assert (found.moved_runs, found.new_outputs, found.lost_outputs, found.first_divergence_word) == ((), 0, 1, 0)
    assert found.summary_line() == ("Same fingerprint; no new text, but 1 of the original's outputs did not come back; "
                                    "the most common output now parts from the original's at word 1.")


def test_failed_runs_and_missing_fingerprints_count_nowhere():
    found = drift(runs("A.", None, fingerprint=None), runs(None, "A.", None, fingerprint=None))
    assert found == Drift(outputs_changed=False, modal_changed=False, fingerprint_changed=False,
                          fingerprints_before=(), fingerprints_after=(), moved_runs=(), new_outputs=0,
                          lost_outputs=0, first_divergence_word=None, modal_before="A.", modal_after="A.",
                          rerun_runs=3, rerun_answered=1)


def test_a_rerun_where_every_run_failed():
    found = drift(runs("A.", "B.", fingerprint="fp_a"), runs(None, None))
    assert (found.outputs_changed, found.modal_changed, found.fingerprint_changed) == (True, True, True)
    assert (found.first_divergence_word, found.modal_before, found.modal_after) == (None, "A.", None)
    assert found.summary_line() == "The re-run produced no answer (2 of 2 runs failed): nothing to compare."


def test_the_same_outputs_with_another_one_most_common_is_drift():
    found = drift(runs("A.", "A.", "B."), runs("A.", "B.", "B."))
    assert (found.outputs_changed, found.modal_changed) == (False, True)
    assert found.summary_line() == ("Same fingerprint; the same outputs, but another one is now the most common; "
                                    "the most common output now parts from the original's at word 1.")
