"""Drift between a saved experiment and its re-run: did the outputs, the most common output or the fingerprint change.

Pure functions over RunResults; failed runs produce no text and report no fingerprint, so they count nowhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.analysis.compare import count_fingerprints, group_outputs
from core.analysis.diff import first_divergence
from core.models import RunResult


@dataclass(frozen=True)
class Drift:
    """What changed from the original batch to its re-run."""

    outputs_changed: bool
    """The set of distinct successful texts differs."""
    modal_changed: bool
    """The most common successful text differs."""
    fingerprint_changed: bool
    """The set of reported `system_fingerprint`s differs."""
    fingerprints_before: tuple[str, ...]
    fingerprints_after: tuple[str, ...]
    moved_runs: tuple[int, ...]
    """Re-run indices whose text appears nowhere in the original."""
    new_outputs: int
    """Distinct re-run texts the original never produced."""
    lost_outputs: int
    """Distinct original texts the re-run never produced."""
    first_divergence_word: int | None
    """Words the two modal texts share before they part; None when they are equal or either is missing."""
    modal_before: str | None
    """The original's most common successful text; None when no run succeeded."""
    modal_after: str | None
    """The re-run's most common successful text; None when no run succeeded."""
    rerun_runs: int
    """Runs in the re-run, failed ones included."""
    rerun_answered: int
    """Runs in the re-run that succeeded."""

    def summary_line(self) -> str:
        """One sentence for people."""
        if self.rerun_answered == 0:
            return f"The re-run produced no answer ({self.rerun_runs} of {self.rerun_runs} runs failed): nothing to compare."
        if not (self.outputs_changed or self.fingerprint_changed or self.modal_changed):
            return "Same outputs, same fingerprint: no drift."
        if self.fingerprint_changed:
            before, after = (", ".join(fps) or "none" for fps in (self.fingerprints_before, self.fingerprints_after))
            parts = [f"Fingerprint changed {before} → {after}"]
        else:
            parts = ["Same fingerprint"]
        if self.moved_runs:
            parts.append(f"{len(self.moved_runs)} of {self.rerun_runs} runs produced text never seen in the original")
        elif self.outputs_changed:
            parts.append(f"no new text, but {self.lost_outputs} of the original's outputs did not come back")
        elif self.modal_changed:
            parts.append("the same outputs, but another one is now the most common")
        else:
            parts.append("same outputs")
        if self.first_divergence_word is not None:
            parts.append(f"the most common output now parts from the original's at word "
                         f"{self.first_divergence_word + 1}")
        return "; ".join(parts) + "."


def drift(original: Sequence[RunResult], rerun: Sequence[RunResult]) -> Drift:
    """Compare a re-run with its original."""
    before = {result.text for result in original if result.ok}
    after = {result.text for result in rerun if result.ok}
    modal_before, modal_after = (groups[0].text if groups else None
                                 for groups in (group_outputs(original), group_outputs(rerun)))
    fingerprints_before, fingerprints_after = (tuple(count_fingerprints(results).counts)
                                               for results in (original, rerun))
    both = modal_before is not None and modal_after is not None
    parted = first_divergence(modal_before, modal_after) if both else None
    return Drift(
        outputs_changed=before != after,
        modal_changed=modal_before != modal_after,
        fingerprint_changed=set(fingerprints_before) != set(fingerprints_after),
        fingerprints_before=fingerprints_before,
        fingerprints_after=fingerprints_after,
        moved_runs=tuple(sorted(result.index for result in rerun if result.ok and result.text not in before)),
        new_outputs=len(after - before),
        lost_outputs=len(before - after),
        first_divergence_word=parted.word_index if parted else None,
        modal_before=modal_before,
        modal_after=modal_after,
        rerun_runs=len(rerun),
        rerun_answered=sum(result.ok for result in rerun),
    )
