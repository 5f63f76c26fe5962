"""A sweep: the same request at several temperatures, with and without seeds, N runs per cell.

Every cell's runs go through one call of the runner, so the cells share one concurrency cap; the summaries and the
chart rows are pure functions of the results.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from core.backends import Backend
from core.analysis.compare import compare
from core.analysis.statistics import pairwise_agreement
from core.errors import InvalidRequest
from core.models import (MAX_RUNS, MAX_SWEEP_REQUESTS, SEED_MAX, SEED_MIN, RunRequest, RunResult, is_integer, is_number,
                         parse_seed)
from core.runner import Arrivals, Fanout

CHARS_PER_TOKEN = 4


def _series(seed: int | None) -> str:
    return "no seed" if seed is None else f"seed {seed}"


def _as_written(value: float | int | None) -> str:
    """A temperature or seed as the visitor writes it (see parse_seeds): no seed is "none"."""
    return "none" if value is None else str(value)


def parse_temperatures(text: str) -> tuple[float, ...]:
    """"0, 0.7,1.2" → (0.0, 0.7, 1.2); SweepPlan checks the values."""
    values = []
    for part in filter(None, (part.strip() for part in text.split(","))):
        try:
            values.append(float(part))
        except ValueError:
            raise InvalidRequest(f"temperatures: {part!r} is not a number; write them like 0,0.7,1.2.") from None
    return tuple(values)


def parse_seeds(text: str) -> tuple[int | None, ...]:
    """"42, none" → (42, None): each seed as core.models.parse_seed reads it."""
    values: list[int | None] = []
    for part in filter(None, (part.strip() for part in text.split(","))):
        try:
            values.append(parse_seed(part))
        except InvalidRequest:
            raise InvalidRequest(f"seeds: {part!r} is not a whole number or 'none'; write them like 42,none.") from None
    return tuple(values)


@dataclass(frozen=True)
class Cell:
    """One temperature and seed of a sweep, and the request its runs send."""

    temperature: float
    seed: int | None
    request: RunRequest

    @property
    def label(self) -> str:
        return f"T={self.temperature:g} · {_series(self.seed)}"

    @property
    def series(self) -> str:
        return _series(self.seed)


@dataclass(frozen=True)
class SweepPlan:
    """Which temperatures and seeds, how many runs per cell, and how many requests may be in flight at once."""

    temperatures: tuple[float, ...]
    seeds: tuple[int | None, ...]
    runs: int = 5
    concurrency: int = 10

    def __post_init__(self) -> None:
        for name in ("temperatures", "seeds"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise InvalidRequest(f"{name} must be a list, got {value!r}.")
            object.__setattr__(self, name, tuple(value))
        if not self.temperatures:
            raise InvalidRequest("temperatures is empty: give at least one, e.g. 0, 0.7, 1.2.")
        if not self.seeds:
            raise InvalidRequest("seeds is empty: give at least one seed, or none for a run without a seed.")
        for t in self.temperatures:
            if not is_number(t) or not math.isfinite(t) or not 0 <= t <= 2:
                raise InvalidRequest(f"temperatures: {t!r} is outside 0–2; pick values from 0 to 2.")
        object.__setattr__(self, "temperatures", tuple(float(t) + 0.0 for t in self.temperatures))  # + 0.0: no "T=-0"
        for seed in self.seeds:
            if seed is not None and not is_integer(seed):
                raise InvalidRequest(f"seeds: {seed!r} is not a whole number (or none).")
            if seed is not None and not SEED_MIN <= seed <= SEED_MAX:
                raise InvalidRequest(f"seeds: {seed} is outside the signed 64-bit range ({SEED_MIN} to {SEED_MAX}).")
        for name, values in (("temperatures", self.temperatures), ("seeds", self.seeds)):
            repeated = sorted({_as_written(v) for v in values if values.count(v) > 1})
            if repeated:
                verb = "appears" if len(repeated) == 1 else "each appear"
                raise InvalidRequest(f"{name}: {', '.join(repeated)} {verb} more than once; list each once.")
        if not is_integer(self.runs) or not 1 <= self.runs <= MAX_RUNS:
            raise InvalidRequest(f"runs must be a whole number from 1 to {MAX_RUNS}, got {self.runs!r}.")
        if not is_integer(self.concurrency) or not 1 <= self.concurrency <= MAX_RUNS:
            raise InvalidRequest(f"concurrency must be a whole number from 1 to {MAX_RUNS}, got {self.concurrency!r}.")
        if self.total_requests > MAX_SWEEP_REQUESTS:
            raise InvalidRequest(
                f"total requests: {len(self.temperatures)} temperatures × {len(self.seeds)} seeds × {self.runs} runs "
                f"is {self.total_requests:,} requests; the limit is {MAX_SWEEP_REQUESTS:,}. Drop values or lower runs."
            )

    @property
    def total_requests(self) -> int:
        return len(self.temperatures) * len(self.seeds) * self.runs

    def cells(self, base: RunRequest) -> list[Cell]:
        """Every temperature × seed, temperatures outermost, each with `base` at that temperature and seed."""
        return [Cell(t, seed, replace(base, temperature=t, seed=seed))
                for t in self.temperatures for seed in self.seeds]

    def estimate_tokens(self, base: RunRequest) -> int:
        """An upper bound on completion tokens (max_tokens each) plus a rough prompt count at 4 characters a token."""
        prompt = math.ceil((len(base.system) + len(base.prompt)) / CHARS_PER_TOKEN)
        return self.total_requests * (prompt + base.max_tokens)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stream_sweep(fanout: Fanout, backend: Backend, base: RunRequest,
                 plan: SweepPlan) -> Arrivals[tuple[Cell, RunResult]]:
    """Each result as it completes with its cell, indexed within the cell, within `fanout`'s cap; closing early
    cancels the runs in flight."""
    cells = plan.cells(base)
    # Queued cell by cell, so under a small cap whole cells finish early and their diff views can open.
    grouped = fanout.groups(backend, [cell.request for cell in cells], plan.runs, plan.concurrency)
    return grouped.map(lambda pair: (cells[pair[0]], pair[1]))


@dataclass(frozen=True)
class CellSummary:
    """One cell in numbers; what compares runs is None below two successful runs, as in `core.analysis.compare.Summary`."""

    temperature: float
    seed: int | None
    label: str
    runs: int
    successful: int
    unique_outputs: int
    identical_rate: float | None
    first_divergence_word: int | None
    mean_similarity: float | None
    pairwise_agreement: float | None = None
    """The share of pairs of successful runs that are identical: 0 when all differ, where identical_rate is 1/N."""

    @property
    def series(self) -> str:
        return _series(self.seed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize_sweep(cells_results: Mapping[Cell, Sequence[RunResult]]) -> list[CellSummary]:
    """`core.analysis.compare.compare` on each cell's runs, in the mapping's order."""
    summaries = []
    for cell, results in cells_results.items():
        compared = compare(results)
        summary = compared.summary
        summaries.append(CellSummary(
            temperature=cell.temperature,
            seed=cell.seed,
            label=cell.label,
            runs=summary.runs,
            successful=summary.successful,
            unique_outputs=summary.unique_outputs,
            identical_rate=summary.identical_rate,
            first_divergence_word=summary.first_divergence_word,
            mean_similarity=summary.mean_similarity,
            pairwise_agreement=pairwise_agreement([group.count for group in compared.groups]),
        ))
    return summaries


def chart_rows(summaries: Iterable[CellSummary]) -> list[dict[str, Any]]:
    """Long-form rows, one line per series against temperature; None where a cell has too few successful runs."""
    # identical_rate and pairwise_agreement need two successful runs, unique_outputs one. Altair sends None as null
    # and Vega-Lite leaves null points out (its default `invalid: "filter"`), so the line joins its measured
    # neighbours instead of dropping to zero; the table still lists the cell.
    ordered = list(summaries)
    series = list(dict.fromkeys(s.series for s in ordered))
    ordered.sort(key=lambda s: (series.index(s.series), s.temperature))
    return [
        {
            "temperature": s.temperature,
            "series": s.series,
            "identical_rate": s.identical_rate,
            "pairwise_agreement": s.pairwise_agreement,
            "unique_outputs": s.unique_outputs if s.successful else None,
            "successful": s.successful,
            "label": s.label,
        }
        for s in ordered
    ]


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep, one history item: the base request, the plan, and each cell's runs ordered by index."""

    base: RunRequest
    plan: SweepPlan
    cells: tuple[tuple[Cell, tuple[RunResult, ...]], ...]

    @classmethod
    def collect(cls, base: RunRequest, plan: SweepPlan, pairs: Iterable[tuple[Cell, RunResult]]) -> SweepResult:
        """Gather stream_sweep's pairs in plan order; a cell of a sweep stopped early may hold fewer runs."""
        gathered: dict[Cell, list[RunResult]] = {cell: [] for cell in plan.cells(base)}
        for cell, result in pairs:
            gathered[cell].append(result)
        return cls(base, plan, tuple((cell, tuple(sorted(rs, key=lambda r: r.index))) for cell, rs in gathered.items()))

    def results(self) -> dict[Cell, tuple[RunResult, ...]]:
        return dict(self.cells)

    def summaries(self) -> list[CellSummary]:
        return summarize_sweep(self.results())

    def to_dict(self, *, raw: bool = False) -> dict[str, Any]:
        """JSON-ready: the request, the plan, each cell with its runs, and the summaries."""
        return {
            "request": self.base.to_dict(),
            "plan": self.plan.to_dict(),
            "cells": [{"temperature": cell.temperature, "seed": cell.seed, "label": cell.label,
                       "runs": [r.to_dict(raw=raw) for r in results]} for cell, results in self.cells],
            "summaries": [s.to_dict() for s in self.summaries()],
        }


def run_sweep(fanout: Fanout, backend: Backend, base: RunRequest, plan: SweepPlan,
              on_result: Callable[[Cell, RunResult], None] | None = None) -> SweepResult:
    """stream_sweep to the end; `on_result` sees each result the moment it arrives."""
    def pairs() -> Iterator[tuple[Cell, RunResult]]:
        for cell, result in stream_sweep(fanout, backend, base, plan):
            if on_result:
                on_result(cell, result)
            yield cell, result

    return SweepResult.collect(base, plan, pairs())
