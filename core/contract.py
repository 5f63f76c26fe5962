"""A determinism contract for CI: the request(s), who answered, the fingerprints and the modal answer(s) of a
baseline, and how close a later answer must be (the tolerance); `check` runs it again and says what drifted.

Exit codes of a check: 0 the contract holds, 1 something drifted, 3 no run succeeded. Bad input (a contract file
that does not validate, a wrong setting) raises a ReproError, which the command line turns into 2.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.analysis.answers import Extractor
from core.analysis.statistics import contrast
from core.backends import Backend
from core.analysis.compare import normalised, similarity_matrix
from core.analysis.diff import first_divergence
from core.errors import InvalidRequest, UnknownExperiment
from core.models import MAX_RUNS, BackendInfo, BatchPlan, RunRequest, RunResult, is_integer
from core.runner import Fanout
from core.history import Experiment, Store, strict_json
from core.history.archive import decode, parse_document
from core.suite import SuiteRun, load_suite_run, short_label
from core.models import MAX_SWEEP_REQUESTS

FORMAT, VERSION = "repro-lab-contract", 1
HOLDS, DRIFT, NO_ANSWER = 0, 1, 3
ALPHA = 0.05
"""A contract whose baseline did not fully agree drifts when its agreement falls at p < ALPHA (Fisher, one-sided)."""
TOLERANCES = ("exact", "normalised", "answer", "similarity>=X")
_SIMILARITY = re.compile(r"similarity\s*>=\s*(0(?:\.\d+)?|1(?:\.0+)?)")


@dataclass(frozen=True)
class Tolerance:
    """How close a later answer must be to the baseline's: `exact` bytes, `normalised` (whitespace and case aside),
    the extracted `answer`, or a token `similarity` of at least `threshold`."""

    kind: str
    threshold: float | None = None

    @classmethod
    def parse(cls, text: str) -> Tolerance:
        if text in ("exact", "normalised", "answer"):
            return cls(text)
        if text == "normalized":
            return cls("normalised")
        found = _SIMILARITY.fullmatch(text) if isinstance(text, str) else None
        if found and float(found[1]) > 0:
            return cls("similarity", float(found[1]))
        raise InvalidRequest(f"tolerance {text!r:.40} is not one of {', '.join(TOLERANCES)} "
                             "(X from 0 to 1, such as similarity>=0.9).")

    def __str__(self) -> str:
        return f"similarity>={self.threshold:g}" if self.kind == "similarity" else self.kind

    def key(self, text: str, extractor: Extractor | None) -> str | None:
        """What two texts must share to agree (for similarity the text itself: similarity is scored, not keyed)."""
        if self.kind == "normalised":
            return normalised(text)
        if self.kind == "answer":
            return extractor(text)
        return text

    def modal(self, texts: Sequence[str], extractor: Extractor | None) -> str | None:
        """The first text with the most common key (for `answer`, that answer); for similarity the text most like
        all the others. None when there is none (no text, or no answer found)."""
        if self.kind == "similarity":
            scores = similarity_matrix(texts)
            return texts[max(range(len(texts)), key=lambda k: (sum(scores[k]), -k))] if texts else None
        keys = [self.key(text, extractor) for text in texts]
        found = Counter(key for key in keys if key is not None)
        if not found:
            return None
        top = found.most_common(1)[0][0]
        return top if self.kind == "answer" else texts[keys.index(top)]

    def agrees(self, texts: Sequence[str], expected: str, extractor: Extractor | None) -> list[bool]:
        """Whether each text agrees with `expected` (a text, or for `answer` the answer itself)."""
        if self.kind == "similarity":
            return [score >= self.threshold for score in similarity_matrix([expected, *texts])[0][1:]]
        reference = expected if self.kind == "answer" else self.key(expected, extractor)
        return [self.key(text, extractor) == reference for text in texts]

    def same(self, modal: str, expected: str, extractor: Extractor | None) -> bool:
        """Whether a modal answer (as `modal` returns it) agrees with `expected`."""
        return modal == expected if self.kind == "answer" else self.agrees([modal], expected, extractor)[0]


@dataclass(frozen=True)
class ContractItem:
    """One request of the contract and what its baseline answered."""

    label: str
    request: RunRequest
    extractor: str | None
    runs: int
    """Runs in the baseline, and in a check unless it asks for another number."""
    answered: int
    agreeing: int
    """Baseline runs that agree with `expected` under the tolerance."""
    expected: str
    """The baseline's modal answer under the tolerance: a text, or the extracted answer for `answer`."""
    fingerprints: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.extractor is not None:
            Extractor(self.extractor)
        if not is_integer(self.runs) or not 1 <= self.runs <= MAX_RUNS:
            raise InvalidRequest(f"runs must be a whole number from 1 to {MAX_RUNS}, got {self.runs!r}.")
        # The modal answer agrees with itself, so a baseline has at least one agreeing run.
        if not 1 <= self.agreeing <= self.answered <= self.runs:
            raise InvalidRequest(f"agreeing ({self.agreeing}) and answered ({self.answered}) must satisfy "
                                 f"1 ≤ agreeing ≤ answered ≤ runs ({self.runs}).")

    @property
    def parsed_extractor(self) -> Extractor | None:
        return Extractor(self.extractor) if self.extractor else None


@dataclass(frozen=True)
class Contract:
    """What a check holds a backend to; saved as JSON (to_json, contract_from_json)."""

    format: str
    version: int
    created_at: str
    backend: BackendInfo
    tolerance: str
    items: tuple[ContractItem, ...]

    def __post_init__(self) -> None:
        if self.format != FORMAT:
            raise InvalidRequest(f"format must be {FORMAT!r}: this is not a Repro Lab contract.")
        if self.version != VERSION:
            raise InvalidRequest(f"version {self.version!r:.20} is not supported; this Repro Lab reads {VERSION}.")
        if not self.items:
            raise InvalidRequest("items is empty: a contract needs at least one request.")
        if Tolerance.parse(self.tolerance).kind == "answer":
            if missing := [k for k, item in enumerate(self.items) if item.extractor is None]:
                raise InvalidRequest(f"items[{missing[0]}].extractor is missing; the answer tolerance needs one.")

    def to_json(self) -> str:
        return strict_json(asdict(self), indent=2)


def _item(label: str, request: RunRequest, results: Sequence[RunResult], tolerance: Tolerance,
          extractor: Extractor | None) -> ContractItem:
    texts = [result.text or "" for result in results if result.ok]
    if tolerance.kind == "answer" and extractor is None:
        raise InvalidRequest(f"{label}: the answer tolerance needs an extractor (such as number or choice:A-E).")
    expected = tolerance.modal(texts, extractor)
    if expected is None:
        raise InvalidRequest(f"{label}: no successful run with an answer to take as the baseline.")
    return ContractItem(label, request, extractor.spec if extractor else None, len(results), len(texts),
                        sum(tolerance.agrees(texts, expected, extractor)), expected,
                        tuple(sorted({r.system_fingerprint for r in results if r.ok and r.system_fingerprint})))


def baseline(source: Experiment | SuiteRun, tolerance: str = "exact", extractor: str | None = None) -> Contract:
    """A contract from a saved experiment or a suite run; `extractor` overrides each suite prompt's own."""
    parsed = Tolerance.parse(tolerance)
    chosen = Extractor(extractor) if extractor else None
    if isinstance(source, SuiteRun):
        items = tuple(_item(prompt.label, source.plan.request(prompt), results, parsed, chosen or prompt.extractor)
                      for prompt, results in zip(source.suite.prompts, source.results, strict=True))
        backend = source.backend
    elif source.kind == "experiment":
        items = (_item(short_label(source.request.prompt), source.request, source.runs, parsed, chosen),)
        backend = source.backend
    else:
        raise InvalidRequest(f"A {source.kind} cannot be a baseline as a whole; choose one of its experiments.")
    created = datetime.now(UTC).isoformat(timespec="seconds")
    return Contract(FORMAT, VERSION, created, backend, str(parsed), items)


def baseline_from_history(store: Store, item_id: str, tolerance: str = "exact",
                          extractor: str | None = None) -> Contract:
    """A contract from a saved experiment or suite run, by its id."""
    saved = store.get(item_id)
    if saved is None:
        raise UnknownExperiment(f"There is no experiment {item_id!r} in the history; it may have been deleted.")
    return baseline(load_suite_run(store, item_id) if saved.kind == "suite" else saved, tolerance, extractor)


def contract_from_json(text: str | bytes) -> Contract:
    """A contract file read back; InvalidImport names the field that is wrong."""
    return decode(Contract, parse_document(text), "contract")


def load_contract(path: str | Path) -> Contract:
    try:
        return contract_from_json(Path(path).read_bytes())
    except OSError as exc:
        raise InvalidRequest(f"contract file {path} cannot be read: {exc.strerror or exc}.") from None


def save_contract(contract: Contract, path: str | Path) -> None:
    Path(path).write_text(contract.to_json() + "\n", encoding="utf-8")


@dataclass(frozen=True)
class Drift:
    kind: str
    """answers, agreement, fingerprint, unanswered, or backend."""
    message: str


@dataclass(frozen=True)
class ItemCheck:
    label: str
    runs: int
    answered: int
    agreeing: int
    """Runs that agree with the contract's expected answer under the tolerance."""
    modal: str | None
    """This check's modal answer under the tolerance."""
    fingerprints: tuple[str, ...]
    drifts: tuple[Drift, ...]


def _check_item(item: ContractItem, results: Sequence[RunResult], tolerance: Tolerance) -> ItemCheck:
    extractor = item.parsed_extractor
    texts = [result.text or "" for result in results if result.ok]
    modal = tolerance.modal(texts, extractor)
    agreeing = sum(tolerance.agrees(texts, item.expected, extractor))
    fingerprints = tuple(sorted({r.system_fingerprint for r in results if r.ok and r.system_fingerprint}))
    drifts = []
    if not texts:
        error = next((r.error for r in results if r.error), None)
        drifts.append(Drift("unanswered", f"no run answered{f': {error.message}' if error else ''}"))
    elif modal is None or not tolerance.same(modal, item.expected, extractor):
        drifts.append(Drift("answers", _answers_moved(item.expected, modal, tolerance)))
    if texts and _agreement_fell(item, agreeing, len(texts)):
        drifts.append(Drift("agreement", f"{agreeing} of {len(texts)} runs agree with the baseline answer "
                                         f"({item.agreeing} of {item.answered} did)"))
    if new := sorted(set(fingerprints) - set(item.fingerprints)):
        before = ", ".join(item.fingerprints) or "none"
        drifts.append(Drift("fingerprint", f"new fingerprint {', '.join(new)} (the baseline saw {before})"))
    return ItemCheck(item.label, len(results), len(texts), agreeing, modal, fingerprints, tuple(drifts))


def _answers_moved(expected: str, modal: str | None, tolerance: Tolerance) -> str:
    if modal is None:
        return f"the modal answer was {short_label(expected)!r}; now no run gives an answer"
    moved = f"the modal answer was {short_label(expected)!r}, now {short_label(modal)!r}"
    parted = first_divergence(expected, modal) if tolerance.kind != "answer" else None
    # Two long texts can look the same cut to a label: say where they part.
    return f"{moved}; they part at word {parted.word_index + 1}" if parted else moved


def _agreement_fell(item: ContractItem, agreeing: int, answered: int) -> bool:
    """Any disagreement breaks a baseline that fully agreed; otherwise a fall significant at ALPHA does."""
    if item.agreeing == item.answered:
        return agreeing < answered
    return contrast("baseline", item.agreeing, item.answered, "check", agreeing, answered).p_value < ALPHA


@dataclass(frozen=True)
class CheckReport:
    tolerance: str
    backend: BackendInfo
    items: tuple[ItemCheck, ...]
    drifts: tuple[Drift, ...]
    """Drift of the whole contract (another backend); each item's own are on the item."""

    @property
    def exit_code(self) -> int:
        if not any(item.answered for item in self.items):
            return NO_ANSWER
        return DRIFT if self.drifts or any(item.drifts for item in self.items) else HOLDS

    def describe(self) -> list[str]:
        """One line for the verdict, then one per drift."""
        runs = sum(item.runs for item in self.items)
        verdict = {HOLDS: "holds", DRIFT: "DRIFT", NO_ANSWER: "no run succeeded"}[self.exit_code]
        lines = [f"contract {verdict}: {len(self.items)} request(s), {runs} runs, tolerance {self.tolerance}"]
        lines += [f"  {drift.kind}: {drift.message}" for drift in self.drifts]
        lines += [f"  {item.label}: {drift.kind}: {drift.message}" for item in self.items for drift in item.drifts]
        return lines

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"exit_code": self.exit_code}


def _backend_drift(contract: Contract, info: BackendInfo) -> tuple[Drift, ...]:
    # The same model behind another host (staging, a proxy) keeps the contract; another provider, model or mode not.
    before, now = (replace(i, endpoint_host=None, api_version=None) for i in (contract.backend, info))
    return () if before == now else (Drift("backend", f"the contract was made on {contract.backend.label}, "
                                                      f"this check ran on {info.label}"),)


def check(fanout: Fanout, contract: Contract, backend: Backend, runs: int | None = None, *,
          concurrency: int = 10) -> CheckReport:
    """Every request of the contract again (`runs` times each, or as many as its baseline), all under one cap (and
    `fanout`'s)."""
    counts = [item.runs if runs is None else runs for item in contract.items]
    BatchPlan(max(counts), concurrency)
    if sum(counts) > MAX_SWEEP_REQUESTS:
        raise InvalidRequest(f"runs: {len(counts)} requests × their runs make {sum(counts):,} requests; the limit "
                             f"is {MAX_SWEEP_REQUESTS:,}. Check with fewer runs.")
    owners = [position for position, count in enumerate(counts) for _ in range(count)]
    requests = [contract.items[position].request for position in owners]
    gathered: list[list[RunResult]] = [[] for _ in contract.items]
    with contextlib.closing(fanout.requests(backend, requests, concurrency)) as results:
        for result in results:
            gathered[owners[result.index]].append(result)
    tolerance = Tolerance.parse(contract.tolerance)
    items = tuple(_check_item(item, results, tolerance) for item, results in zip(contract.items, gathered))
    return CheckReport(str(tolerance), backend.info, items, _backend_drift(contract, backend.info))
