"""Prompt suites: a JSONL or CSV file of prompts (each with an optional system prompt, expected answer and extractor),
N identical runs of each, all prompts in parallel under one concurrency cap, scored as Atil et al. score them:
TARr@N (all N raw outputs identical), TARa@N (all N extracted answers identical) and accuracy run by run
(core/analysis/scores.py). A suite run is saved as one history item with a child experiment per prompt.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.analysis.answers import Extractor
from core.analysis.scores import SuiteSummary, summarize_suite
from core.backends import Backend
from core.errors import InvalidRequest, UnknownExperiment
from core.history import Experiment, Store
from core.history.archive import reads_items
from core.history.recorder import Recording, record_children
from core.models import MAX_SWEEP_REQUESTS, BackendInfo, BatchPlan, RunRequest, RunResult, is_number
from core.runner import Arrivals, Fanout
from core.sweep import CHARS_PER_TOKEN

SUITE_FIELDS = ("name", "prompt", "system", "expected", "extractor")
LABEL_CHARS = 60


def short_label(text: str) -> str:
    """The text on one line, cut to LABEL_CHARS."""
    line = " ".join(text.split())
    return line if len(line) <= LABEL_CHARS else line[: LABEL_CHARS - 1] + "…"


@dataclass(frozen=True)
class SuitePrompt:
    """One line of a suite; the prompt and system prompt are checked as a RunRequest checks them."""

    prompt: str
    system: str = ""
    expected: str | None = None
    extractor: Extractor | None = None
    name: str = ""

    def __post_init__(self) -> None:
        RunRequest(prompt=self.prompt, system=self.system)

    @property
    def label(self) -> str:
        """The name, or the prompt's start on one line."""
        return short_label(self.name or self.prompt)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "prompt": self.prompt, "system": self.system, "expected": self.expected,
                "extractor": self.extractor.spec if self.extractor else None}


@dataclass(frozen=True)
class Suite:
    name: str
    prompts: tuple[SuitePrompt, ...]

    def __post_init__(self) -> None:
        if not self.prompts:
            raise InvalidRequest(f"suite {self.name}: it has no prompts; write one JSON object (or CSV row) a line.")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "prompts": [prompt.to_dict() for prompt in self.prompts]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Suite:
        return cls(data["name"], tuple(_prompt(row, f"suite {data['name']} prompt {k}")
                                       for k, row in enumerate(data["prompts"], start=1)))


def _prompt(row: Any, where: str) -> SuitePrompt:
    """A SuitePrompt from one parsed line; every error names the line (`where`) and the field."""
    if not isinstance(row, dict):
        raise InvalidRequest(f"{where}: expected an object with a prompt field, got {type(row).__name__}.")
    if unknown := sorted(set(row) - set(SUITE_FIELDS), key=str):
        raise InvalidRequest(f"{where}: unknown field {unknown[0]!r:.40}; a suite line may have "
                             f"{', '.join(SUITE_FIELDS)}.")
    if "prompt" not in row:
        raise InvalidRequest(f"{where}: the prompt field is missing.")
    values = {name: row.get(name) for name in SUITE_FIELDS}
    if is_number(values["expected"]):
        values["expected"] = str(values["expected"])
    for name, value in values.items():
        if value is not None and not isinstance(value, str):
            raise InvalidRequest(f"{where}: {name} must be text, got {value!r:.40}.")
    try:
        extractor = Extractor(values["extractor"]) if values["extractor"] else None
        return SuitePrompt(prompt=values["prompt"], system=values["system"] or "", expected=values["expected"] or None,
                           extractor=extractor, name=values["name"] or "")
    except InvalidRequest as exc:
        raise InvalidRequest(f"{where}: {exc}") from None


def _jsonl_rows(text: str, source: str) -> Iterator[tuple[str, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source} line {number}"
        try:
            yield where, json.loads(line)
        except (ValueError, RecursionError) as exc:
            reason = getattr(exc, "msg", "nested too deeply")
            raise InvalidRequest(f"{where}: not a JSON object ({reason}); write one object a line, such as "
                                 '{"prompt": "2+2?", "expected": "4", "extractor": "number"}.') from None


def _csv_rows(text: str, source: str) -> Iterator[tuple[str, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None or "prompt" not in reader.fieldnames:
        raise InvalidRequest(f"{source} line 1: the header must name a prompt column (and any of "
                             f"{', '.join(name for name in SUITE_FIELDS if name != 'prompt')}).")
    for row in reader:
        where = f"{source} line {reader.line_num}"
        if None in row:
            raise InvalidRequest(f"{where}: more cells than the header has columns; quote cells that hold commas.")
        yield where, {name: value for name, value in row.items() if value not in ("", None)}


def parse_suite(text: str, name: str, *, csv_format: bool = False) -> Suite:
    """A suite from JSONL (one object a line) or CSV (a header row, then a row per prompt)."""
    text = text.removeprefix("\ufeff")  # the byte-order mark some editors put before a CSV header
    rows = _csv_rows(text, name) if csv_format else _jsonl_rows(text, name)
    return Suite(name, tuple(_prompt(row, where) for where, row in rows))


def load_suite(path: str | Path) -> Suite:
    """The suite in a .jsonl or .csv file; the errors name the file, the line and the field."""
    path = Path(path)
    if path.suffix.lower() not in (".jsonl", ".csv"):
        raise InvalidRequest(f"suite file {path.name}: use a .jsonl or .csv file.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidRequest(f"suite file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"suite file {path} cannot be read: {exc}.") from None
    return parse_suite(text, path.name, csv_format=path.suffix.lower() == ".csv")


@dataclass(frozen=True)
class SuitePlan:
    """How many identical runs per prompt, how many requests in flight, and the sampling every prompt is sent with."""

    runs: int = 5
    concurrency: int = 10
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int | None = None

    def __post_init__(self) -> None:
        BatchPlan(self.runs, self.concurrency)
        # RunRequest names the sampling value that is wrong.
        self.request(SuitePrompt("plan"))

    def request(self, prompt: SuitePrompt) -> RunRequest:
        return RunRequest(prompt=prompt.prompt, system=prompt.system, temperature=self.temperature, top_p=self.top_p,
                          max_tokens=self.max_tokens, seed=self.seed)

    def requests(self, suite: Suite) -> list[RunRequest]:
        """Each prompt's request, in order (each is sent `runs` times); refused when that is over the request cap."""
        total = len(suite.prompts) * self.runs
        if total > MAX_SWEEP_REQUESTS:
            raise InvalidRequest(f"runs: {len(suite.prompts)} prompts × {self.runs} runs is {total:,} requests; "
                                 f"the limit is {MAX_SWEEP_REQUESTS:,}. Lower runs or split the suite.")
        return [self.request(prompt) for prompt in suite.prompts]

    def estimate_tokens(self, suite: Suite) -> int:
        """An upper bound on completion tokens (max_tokens each) plus a rough prompt count, as SweepPlan makes it."""
        prompt_tokens = sum(math.ceil((len(p.system) + len(p.prompt)) / CHARS_PER_TOKEN) for p in suite.prompts)
        return self.runs * (prompt_tokens + len(suite.prompts) * self.max_tokens)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stream_suite(fanout: Fanout, backend: Backend, suite: Suite, plan: SuitePlan) -> Arrivals[tuple[int, RunResult]]:
    """Each result as it completes with its prompt's position, indexed within the prompt; all prompts share one cap
    (and `fanout`'s). Closing early cancels the rest."""
    return fanout.groups(backend, plan.requests(suite), plan.runs, plan.concurrency)


@dataclass(frozen=True)
class SuiteRun:
    """A finished (or stopped) suite run: each prompt's results ordered by index."""

    suite: Suite
    plan: SuitePlan
    backend: BackendInfo
    results: tuple[tuple[RunResult, ...], ...]

    @classmethod
    def collect(cls, suite: Suite, plan: SuitePlan, backend: BackendInfo,
                pairs: Iterable[tuple[int, RunResult]]) -> SuiteRun:
        gathered: list[list[RunResult]] = [[] for _ in suite.prompts]
        for position, result in pairs:
            gathered[position].append(result)
        return cls(suite, plan, backend, tuple(tuple(sorted(rs, key=lambda r: r.index)) for rs in gathered))

    def summary(self) -> SuiteSummary:
        return summarize_suite(self.suite.prompts, self.results, self.plan.runs)

    def to_dict(self, *, raw: bool = False) -> dict[str, Any]:
        """JSON-ready: the suite, the plan, who answered, each prompt's runs, and the scores."""
        return {"suite": self.suite.to_dict(), "plan": self.plan.to_dict(), "backend": self.backend.to_dict(),
                "prompts": [[r.to_dict(raw=raw) for r in results] for results in self.results],
                "summary": self.summary().to_dict()}


def run_suite(fanout: Fanout, backend: Backend, suite: Suite, plan: SuitePlan,
              on_result: Callable[[int, RunResult], None] | None = None) -> SuiteRun:
    """stream_suite to the end; `on_result` sees each result (with its prompt's position) the moment it arrives."""
    def pairs() -> Iterator[tuple[int, RunResult]]:
        for position, result in stream_suite(fanout, backend, suite, plan):
            if on_result:
                on_result(position, result)
            yield position, result

    return SuiteRun.collect(suite, plan, backend.info, pairs())


def record_suite(store: Store, fanout: Fanout, backend: Backend, suite: Suite,
                 plan: SuitePlan) -> Recording[tuple[int, RunResult]]:
    """Save a suite run as one history item (kind "suite"; the suite and plan in its meta) with a child experiment
    per prompt; each run is saved to its prompt the moment it arrives, a prompt complete once all its runs have."""
    heading = SuitePrompt(f"Suite {suite.name}: {len(suite.prompts)} prompts")
    suite_id = store.create(plan.request(heading), backend.info, len(suite.prompts) * plan.runs, kind="suite",
                            meta={"suite": suite.to_dict(), "plan": plan.to_dict()})
    children = {position: store.create(plan.request(prompt), backend.info, plan.runs, parent_id=suite_id,
                                       meta={"prompt": position, "label": prompt.label})
                for position, prompt in enumerate(suite.prompts)}
    return record_children(store, suite_id, children, plan.runs, stream_suite(fanout, backend, suite, plan))


def load_suite_run(store: Store, suite_id: str) -> SuiteRun:
    """A saved suite run back as a SuiteRun, each prompt with the runs that arrived."""
    saved = store.get(suite_id)
    if saved is None or saved.kind != "suite":
        raise UnknownExperiment(f"There is no suite run {suite_id!r} in the history; it may have been deleted.")
    return suite_run_of(saved, store.children(suite_id))


def suite_run_of(saved: Experiment, prompts: Sequence[Experiment]) -> SuiteRun:
    """A suite item and its prompts' experiments as a SuiteRun."""
    suite = Suite.from_dict(saved.meta["suite"])
    runs: dict[int, Sequence[RunResult]] = {child.meta["prompt"]: child.runs for child in prompts}
    if not set(runs) <= set(range(len(suite.prompts))):
        raise ValueError(f"children name prompts {sorted(set(runs) - set(range(len(suite.prompts))))[:5]} the suite "
                         f"of {len(suite.prompts)} does not have")
    return SuiteRun(suite, SuitePlan(**saved.meta["plan"]), saved.backend,
                    tuple(tuple(runs.get(position, ())) for position in range(len(suite.prompts))))


reads_items("suite", lambda item: suite_run_of(item.experiment, item.children))
