"""The export formats: JSON (a whole history item: an experiment, or a sweep, suite run or probe with its child
experiments; read back by read_item once all of it is within limits, before anything is written) and CSV (a row per
run of one experiment, safe to open in a spreadsheet)."""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import math
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.errors import InvalidImport, InvalidRequest, UnknownExperiment
from core.history.store import Experiment, Store
from core.models import MAX_RUNS, MAX_SWEEP_REQUESTS, MAX_TOKENS_LIMIT, MAX_TOP_LOGPROBS, SEED_MAX, SEED_MIN

EXPORT_FORMAT, EXPORT_VERSION = "repro-lab-experiment", 1
CSV_COLUMNS = ("index", "ok", "text", "error_kind", "error_message", "fingerprint", "latency_ms", "prompt_tokens",
               "completion_tokens", "total_tokens", "finish_reason", "request_id", "retries", "notice")
MAX_IMPORT_BYTES = 20 * 2**20  # the History page's uploader and server.maxUploadSize say the same 20 MB
MAX_IMPORT_DEPTH = 64
MAX_TEXT_CHARS = 200_000
MAX_RAW_CHARS = 1_000_000
INTEGER_MAX = 2**31 - 1  # PostgreSQL's INTEGER, the type of every whole-number column but the seed
PARTS = {"sweep": "cell", "suite": "prompt", "probe": "step"}
"""The kinds of item whose runs live in child experiments, and what each child is."""
# A sweep's cells and a suite's prompts are at most MAX_SWEEP_REQUESTS; an embedded probe's steps (a load ladder of
# up to 1,001 rungs, run twice) can pass it slightly, hence twice that.
MAX_IMPORT_CHILDREN = 2 * MAX_SWEEP_REQUESTS
# The runs of all an item's children together: a sweep or suite sends at most MAX_SWEEP_REQUESTS; a probe keeps
# `runs` copies of R per rung. MAX_IMPORT_BYTES bounds a real document well before this.
MAX_IMPORT_RUNS = 10 * MAX_RUNS


def strict_json(data: Any, **options: Any) -> str:
    """JSON any parser reads: NaN and the infinities, which json.dumps writes bare, become null."""
    return json.dumps(_finite(data), ensure_ascii=False, allow_nan=False, **options)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


@dataclass(frozen=True)
class HistoryItem:
    """A history item whole: an experiment (no children), or a sweep, suite run or probe with its child experiments."""

    experiment: Experiment
    children: tuple[Experiment, ...] = ()


def to_json(experiment: Experiment, children: Sequence[Experiment] = ()) -> str:
    """The whole item, raw bodies and log-probabilities included, as a JSON document `read_item` reads back: the
    experiment, then (for a sweep, suite run or probe) its child experiments."""
    document = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "experiment": asdict(experiment)}
    if children or experiment.kind in PARTS:  # a sweep cut off before its first cell still has (no) children
        document["children"] = [asdict(child) for child in children]
    return strict_json(document, indent=2)


def export_item(store: Store, item_id: str) -> str:
    """The JSON export of any history item (an experiment, sweep, suite run or probe, with its children)."""
    experiment = store.get(item_id)
    if experiment is None:
        raise UnknownExperiment(f"There is no experiment {item_id!r} in the history.")
    return to_json(experiment, store.children(item_id) if experiment.kind in PARTS else ())


def from_json(text: str | bytes) -> Experiment:
    """Read a `to_json` export of one experiment (read_item reads any item); InvalidImport as read_item raises it."""
    item = read_item(text)
    if item.experiment.kind != "experiment":
        raise InvalidImport(f"The export is a {item.experiment.kind} with {len(item.children):,} child experiments; "
                            "import it whole (import_item).")
    return item.experiment


def read_item(text: str | bytes) -> HistoryItem:
    """Read a `to_json` export; InvalidImport names what is wrong (not JSON, format, version, a field, a value) and
    refuses what no store could keep or no page could show (see _check_limits) before anything is written."""
    document = parse_document(text)
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise InvalidImport(f"The file is not a Repro Lab experiment export: its format should be {EXPORT_FORMAT!r}.")
    if document.get("version") != EXPORT_VERSION:
        raise InvalidImport(f"Export version {document.get('version')!r:.40} is not supported; "
                            f"this Repro Lab reads version {EXPORT_VERSION}.")
    if "experiment" not in document:
        raise InvalidImport("The export has no 'experiment'.")
    children = document.get("children", [])
    if not isinstance(children, list):
        raise InvalidImport(f"children must be a list, got {children!r:.40}.")
    # A parent plans its children's runs, so its runs_planned may be over one experiment's MAX_RUNS.
    _check_limits(document["experiment"], "experiment", "experiment",
                  ranges=_PARENT_INT_RANGES if children else _INT_RANGES)
    _check_limits(children, "children", "children")
    item = HistoryItem(_experiment(document["experiment"], "experiment"),
                       tuple(_experiment(child, f"children[{k}]") for k, child in enumerate(children)))
    _check_family(item)
    _read_back(item)
    return item


IMPORTED = "imported"  # in an imported item's meta: it came from elsewhere (an imported probe adapts no run)
_READERS: dict[str, Callable[[HistoryItem], object]] = {}
_CLOCK_SKEW = timedelta(minutes=5)


def reads_items(kind: str, reader: Callable[[HistoryItem], object]) -> None:
    """Register how an item of `kind` is read back (a sweep's plan, a suite's prompts, a probe's card), by the module
    that owns the kind: read_item runs it on every import, so what History could not show is refused first."""
    _READERS[kind] = reader


def _read_back(item: HistoryItem) -> None:
    kind = item.experiment.kind
    if kind not in _READERS:
        return
    try:
        _READERS[kind](item)
    except InvalidImport:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, InvalidRequest, UnknownExperiment) as exc:
        raise InvalidImport(f"experiment.meta cannot be read as a {kind}: {type(exc).__name__}: {str(exc):.80}") \
            from None


def _experiment(value: Any, where: str) -> Experiment:
    """One experiment of the document, decoded, its time and run indices checked."""
    experiment = decode(Experiment, value, where)
    try:
        created = datetime.fromisoformat(experiment.created_at)
    except ValueError:
        raise InvalidImport(f"{where}.created_at must be an ISO 8601 time, "
                            f"got {experiment.created_at!r:.40}.") from None
    # The newest item wins where history is read by time (an endpoint's latest probe adapts every run).
    if (created if created.tzinfo else created.replace(tzinfo=UTC)) > datetime.now(UTC) + _CLOCK_SKEW:
        raise InvalidImport(f"{where}.created_at is in the future: {experiment.created_at!r:.40}.")
    indices = [run.index for run in experiment.runs]
    if sorted(set(indices)) != indices or not all(0 <= k < experiment.runs_planned for k in indices):
        raise InvalidImport(f"{where}.runs must have distinct indices from 0 to runs_planned - 1 "
                            f"({experiment.runs_planned - 1}) in order, got {indices}.")
    return experiment


def _check_family(item: HistoryItem) -> None:
    """An experiment has no children; a sweep, suite run or probe has child experiments and no runs of its own."""
    kind = item.experiment.kind
    if kind == "experiment" and item.children:
        raise InvalidImport("children must be empty for an experiment (only a sweep, suite or probe has children), "
                            f"got {len(item.children):,}.")
    if kind != "experiment" and kind not in PARTS:
        raise InvalidImport(f"experiment.kind must be one of {', '.join(['experiment', *PARTS])}, got {kind!r:.40}.")
    if kind in PARTS and item.experiment.runs:
        raise InvalidImport(f"experiment.runs must be empty for a {kind} (its runs are its {PARTS[kind]}s'), "
                            f"got {len(item.experiment.runs):,}.")
    for k, child in enumerate(item.children):
        if child.kind != "experiment":
            raise InvalidImport(f"children[{k}].kind must be 'experiment', got {child.kind!r:.40}.")
    if (runs := sum(len(child.runs) for child in item.children)) > MAX_IMPORT_RUNS:
        raise InvalidImport(f"children hold {runs:,} runs together; the limit is {MAX_IMPORT_RUNS:,}.")


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def parse_document(text: str | bytes) -> Any:
    """The JSON document, once its size, encoding and nesting are within bounds; NaN and Infinity are kept as floats
    for _check_limits to refuse with the field's name."""
    if len(text) > MAX_IMPORT_BYTES:
        raise InvalidImport(f"The file is over the {MAX_IMPORT_BYTES // 2**20} MB an import may have "
                            f"({MAX_IMPORT_BYTES:,} bytes).")
    if isinstance(text, bytes):
        try:
            text = text.decode(json.detect_encoding(text))
        except UnicodeDecodeError as exc:
            raise InvalidImport(f"The file is not JSON: it is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    # Measured before parsing, as json.loads would recurse once per level and fail with a RecursionError.
    if (deepest := _deepest_nesting(text)) > MAX_IMPORT_DEPTH:
        raise InvalidImport(f"The file nests lists and objects {deepest:,} deep; an export nests at most "
                            f"{MAX_IMPORT_DEPTH}.")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidImport(f"The file is not JSON: {exc}.") from None


def _deepest_nesting(text: str) -> int:
    """How deep the lists and objects of a JSON text nest (its strings' brackets left out)."""
    depth = deepest = 0
    for bracket in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


_LIST_LIMITS = {"runs": MAX_RUNS, "logprobs": MAX_TOKENS_LIMIT, "top": MAX_TOP_LOGPROBS,
                "children": MAX_IMPORT_CHILDREN}
_TEXT_LIMITS = {"raw": MAX_RAW_CHARS}
_FREE_INT_RANGE = (-(2**63), 2**63 - 1)  # a whole number in `meta` is kept as JSON text; others fit INTEGER columns
_INT_RANGES = {"seed": (SEED_MIN, SEED_MAX), "runs_planned": (1, MAX_RUNS),
               **dict.fromkeys(("temperature", "top_p", "latency_ms", "logprob"), _FREE_INT_RANGE)}  # floats
_PARENT_INT_RANGES = {**_INT_RANGES, "runs_planned": (1, MAX_IMPORT_RUNS)}
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_limits(value: Any, where: str, name: str, free: bool = False,
                  ranges: dict[str, tuple[int, int]] = _INT_RANGES) -> None:
    """Refuse, naming the field, what a store cannot keep or a page should not show: text that is not Unicode or too
    long, whole numbers out of their column's range, NaN and the infinities, lists longer than a run can be.
    `free` is for `meta`, whose names are not ours: only its text, numbers and 64-bit range are checked; `ranges`
    gives the whole numbers' by name."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"{where} (a name in it)", MAX_TEXT_CHARS)
            inside = f"{where}.{key}" if key.isidentifier() else f"{where}[{key!r:.40}]"
            _check_limits(item, inside, key, free or key == "meta", ranges)
    elif isinstance(value, list):
        limit = None if free else _LIST_LIMITS.get(name)
        if limit is not None and len(value) > limit:
            raise InvalidImport(f"{where} has {len(value):,} items; the limit is {limit:,}.")
        for k, item in enumerate(value):
            _check_limits(item, f"{where}[{k}]", name, free, ranges)
    elif isinstance(value, str):
        _check_text(value, where, MAX_TEXT_CHARS if free else _TEXT_LIMITS.get(name, MAX_TEXT_CHARS))
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidImport(f"{where} must be a finite number, got {value}.")
    elif isinstance(value, int) and not isinstance(value, bool):
        low, high = _FREE_INT_RANGE if free else ranges.get(name, (0, INTEGER_MAX))
        if not low <= value <= high:
            raise InvalidImport(f"{where} must be a whole number from {low:,} to {high:,}, got {value!r:.40}.")


def _check_text(text: str, where: str, limit: int) -> None:
    if len(text) > limit:
        raise InvalidImport(f"{where} has {len(text):,} characters; the limit is {limit:,}.")
    if surrogate := _LONE_SURROGATE.search(text):
        raise InvalidImport(f"{where} holds a lone surrogate U+{ord(surrogate.group()):04X} at position "
                            f"{surrogate.start()}, which is not Unicode text.")


_TYPE_WORDS = {str: "text", int: "a whole number", float: "a number", bool: "true or false", dict: "an object"}
_hints = functools.cache(typing.get_type_hints)


def decode(kind: Any, value: Any, where: str) -> Any:
    """`value` parsed from JSON, checked and built as `kind`: a dataclass, `X | None`, `tuple[X, ...]` or JSON."""
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise InvalidImport(f"{where} must be an object, got {value!r:.40}.")
        hints = _hints(kind)
        if unknown := sorted(value.keys() - hints.keys()):
            raise InvalidImport(f"{where} has an unknown field {unknown[0]!r:.40}.")
        fields = {}
        for spec in dataclasses.fields(kind):
            if spec.name in value:
                fields[spec.name] = decode(hints[spec.name], value[spec.name], f"{where}.{spec.name}")
            elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise InvalidImport(f"{where}.{spec.name} is missing.")
        try:
            return kind(**fields)
        except InvalidRequest as exc:
            raise InvalidImport(f"{where} is not valid: {exc}") from None
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is types.UnionType:
        return None if value is None else decode(args[0], value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise InvalidImport(f"{where} must be a list, got {value!r:.40}.")
        return tuple(decode(args[0], item, f"{where}[{k}]") for k, item in enumerate(value))
    accepted = (int, float) if kind is float else kind
    if not isinstance(value, accepted) or (isinstance(value, bool) and kind is not bool):
        raise InvalidImport(f"{where} must be {_TYPE_WORDS[kind]}, got {value!r:.40}.")
    return float(value) if kind is float else value


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _inert(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (= + - @, tab or CR first) gets a leading apostrophe; numbers
    stay numbers, so a negative latency is still a number while the text "-1+1" from a server is text."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def to_csv(experiment: Experiment) -> str:
    """One row per run, by index, with the columns in CSV_COLUMNS; every text cell is made formula-safe."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for run in experiment.runs:
        error, usage = run.error, run.usage
        writer.writerow(map(_inert, (
            run.index, run.ok, run.text, error and error.kind, error and error.message, run.system_fingerprint,
            run.latency_ms, usage and usage.prompt_tokens, usage and usage.completion_tokens,
            usage and usage.total_tokens, run.finish_reason, run.request_id, run.retries, run.notice)))
    return out.getvalue()


def import_experiment(store: Store, experiment: Experiment) -> str:
    """Save an imported experiment as a new top-level item (a new id; created_at, runs and the rest kept), in one
    transaction: an import that fails leaves nothing behind."""
    return store.add_experiment(dataclasses.replace(experiment, parent_id=None))


def import_item(store: Store, item: HistoryItem) -> str:
    """Save a read_item export as a new top-level item, its children under it, each with a new id (created_at, runs
    and the rest kept), in one transaction; returns the item's id."""
    parent = item.experiment
    return store.add_experiment(dataclasses.replace(parent, parent_id=None, meta={**parent.meta, IMPORTED: True}),
                                item.children)
