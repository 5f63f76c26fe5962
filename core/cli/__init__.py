"""The command line: `python -m core run …` sends N identical requests and prints a table or one JSON object;
`python -m core sweep …` runs the prompt over temperatures × seeds; `python -m core history …` lists, shows,
exports and imports saved experiments.

Exit status: 0 success; 1 with --expect-identical when the successful runs differ; 2 bad input or configuration;
3 when no run succeeded; 130 interrupted (Ctrl-C), after saying how many runs the history kept.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict

from core.backends import make_backend
from core.backends.local import MODES
from core.analysis.compare import Summary, compare
from core.errors import InvalidRequest, ReproError, UnknownExperiment
from core.history import (
    MAX_IMPORT_BYTES,
    HistoryLocation,
    from_json,
    import_experiment,
    open_store,
    strict_json,
    to_csv,
    to_json,
)
from core.history.recorder import Recorder, Recording, load_sweep
from core.models import BackendInfo, BatchPlan, RunRequest, RunResult
from core.settings import backend_choices, load_settings, read_sources
from core.sweep import CellSummary, SweepPlan, SweepResult, parse_seeds, parse_temperatures

EXIT_OK, EXIT_DIFFERENT, EXIT_BAD_INPUT, EXIT_ALL_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
MAX_LIST_LIMIT = 10_000


def _seed(value: str) -> int | None:
    if value.lower() in ("none", "off", ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be a whole number or 'none', got {value!r}") from None


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`, refused with exit 2 before anything runs."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r:.40}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high:,}, got {text:.40}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Repro Lab: how reproducible is an LLM?")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="send N identical chat requests in parallel and compare the answers")
    run.add_argument("--prompt", required=True)
    run.add_argument("--system", default="")
    run.add_argument("--runs", type=int, default=5)
    run.add_argument("--seed", type=_seed, default=None, help="a whole number, or 'none' (the default)")
    run.add_argument("--temperature", type=float, default=0.1)
    run.add_argument("--top-p", type=float, default=1.0)
    run.add_argument("--max-tokens", type=int, default=256)
    run.add_argument("--logprobs", action="store_true", help="ask for log-probabilities with 5 alternatives")
    run.add_argument("--backend", choices=backend_choices(), default=None, help="default: REPRO_BACKEND or auto")
    run.add_argument("--local-mode", choices=tuple(MODES), default=None)
    run.add_argument("--concurrency", type=int, default=10)
    run.add_argument("--timeout", type=float, default=None, help="seconds per request (default REPRO_TIMEOUT or 60)")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    run.add_argument("--expect-identical", action="store_true",
                     help="exit with status 1 unless every successful run is byte-identical")
    run.add_argument("--no-save", action="store_true", help="do not keep this experiment in the history")

    sweep = commands.add_parser("sweep", help="the same prompt over temperatures × seeds, N runs per cell")
    sweep.add_argument("--prompt", required=True)
    sweep.add_argument("--system", default="")
    sweep.add_argument("--temperatures", required=True, help="comma-separated, e.g. 0,0.7,1.2")
    sweep.add_argument("--seeds", default="42,none", help="comma-separated whole numbers or 'none', e.g. 42,none")
    sweep.add_argument("--runs", type=int, default=5, help="runs per cell")
    sweep.add_argument("--top-p", type=float, default=1.0)
    sweep.add_argument("--max-tokens", type=int, default=256)
    sweep.add_argument("--backend", choices=backend_choices(), default=None)
    sweep.add_argument("--local-mode", choices=tuple(MODES), default=None)
    sweep.add_argument("--concurrency", type=int, default=10)
    sweep.add_argument("--timeout", type=float, default=None)
    sweep.add_argument("--json", action="store_true")
    sweep.add_argument("--no-save", action="store_true")

    history = commands.add_parser("history", help="experiments kept in the history (SQLite, or DATABASE_URL)")
    actions = history.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="newest first")
    listing.add_argument("--search", default=None, help="text in the prompt, system prompt or model")
    listing.add_argument("--limit", type=_whole_number(1, MAX_LIST_LIMIT), default=50)
    listing.add_argument("--json", action="store_true")
    show = actions.add_parser("show", help="one experiment, as `run` prints it")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    export = actions.add_parser("export", help="print a JSON (complete, re-importable) or CSV (a row per run) export")
    export.add_argument("id")
    export.add_argument("--format", choices=("json", "csv"), default="json")
    imported = actions.add_parser("import", help="add a JSON export to the history; prints its new id")
    imported.add_argument("file")
    return parser


def _row(result: RunResult, width: int) -> str:
    if result.ok:
        body = result.text.replace("\n", " ⏎ ")
        tokens = result.usage.completion_tokens if result.usage else "-"
        head = f"{result.index + 1:>3}  {result.latency_ms:>8.0f} ms  {tokens!s:>6}  {result.system_fingerprint or '-':<20}  "
    else:
        body = f"ERROR {result.error.kind}: {result.error.message}"
        head = f"{result.index + 1:>3}  {result.latency_ms:>8.0f} ms  {'':>6}  {'':<20}  "
    room = max(width - len(head), 20)
    return head + (body if len(body) <= room else body[: room - 1] + "…")


def _print_runs(results: Iterable[RunResult], live: bool) -> list[RunResult]:
    width = shutil.get_terminal_size((120, 20)).columns
    collected = []
    for result in results:
        collected.append(result)
        if live:
            print(_row(result, width), flush=True)
    return sorted(collected, key=lambda r: r.index)


def _header(info: BackendInfo, request: RunRequest, runs: int, concurrency: int | None = None) -> None:
    at_once = f", {concurrency} at once" if concurrency else ""
    print(f"{info.label} · temperature {request.temperature:g} · seed {request.seed} · {runs} runs{at_once}")
    print(f"{'#':>3}  {'latency':>11}  {'tokens':>6}  {'fingerprint':<20}  text")


def _report(request: RunRequest, info: BackendInfo, results: list[RunResult], as_json: bool,
            experiment: dict | None) -> Summary:
    summary = compare(results).summary
    if as_json:
        data = {"request": request.to_dict(), "backend": info.to_dict(), "runs": [r.to_dict() for r in results],
                "summary": summary.to_dict()}
        if experiment:
            data["experiment"] = experiment
        print(strict_json(data))
    else:
        print(_summary_line(summary))
    return summary


def _store():
    source = read_sources()
    return open_store(HistoryLocation(source.get("DATABASE_URL"), source.get("REPRO_HISTORY_PATH")))


def command_run(args: argparse.Namespace) -> int:
    try:
        request = RunRequest(prompt=args.prompt, system=args.system, temperature=args.temperature, top_p=args.top_p,
                             max_tokens=args.max_tokens, seed=args.seed, logprobs=args.logprobs)
        plan = BatchPlan(runs=args.runs, concurrency=args.concurrency)
        settings = load_settings(backend=args.backend, local_mode=args.local_mode, timeout_s=args.timeout)
        backend = make_backend(settings)
        store = None if args.no_save else _store()
    except ReproError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for note in settings.notes():
        print(f"note: {note}", file=sys.stderr)
    if not args.json:
        _header(backend.info, request, plan.runs, plan.concurrency)
    recording = Recorder(store).batch(backend, request, plan)
    with _interruptible(recording, plan.runs):
        results = _print_runs(recording, live=not args.json)
    experiment = recording.experiment_id and {"id": recording.experiment_id, "runs_saved": recording.saved,
                                              "complete": recording.saved == plan.runs and not recording.save_error}
    summary = _report(request, backend.info, results, args.json, experiment)
    _say_saved(recording, plan.runs, args.json)
    if summary.successful == 0:
        return EXIT_ALL_FAILED
    if args.expect_identical and not summary.all_identical:
        return EXIT_DIFFERENT
    return EXIT_OK


def command_sweep(args: argparse.Namespace) -> int:
    try:
        plan = SweepPlan(parse_temperatures(args.temperatures), parse_seeds(args.seeds), args.runs, args.concurrency)
        base = RunRequest(prompt=args.prompt, system=args.system, top_p=args.top_p, max_tokens=args.max_tokens)
        backend = make_backend(load_settings(backend=args.backend, local_mode=args.local_mode, timeout_s=args.timeout))
        store = None if args.no_save else _store()
    except ReproError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.json:
        print(f"{backend.info.label} · {len(plan.temperatures)} temperatures × {len(plan.seeds)} seeds × "
              f"{plan.runs} runs = {plan.total_requests} requests")
    recording = Recorder(store).sweep(backend, base, plan)
    with _interruptible(recording, plan.total_requests):
        result = SweepResult.collect(base, plan, recording)
    summaries = result.summaries()
    if args.json:
        print(strict_json({**result.to_dict(), "backend": backend.info.to_dict(),
                           "experiment_id": recording.experiment_id, "runs_saved": recording.saved}))
    else:
        _print_cells(summaries)
    _say_saved(recording, plan.total_requests, args.json)
    return EXIT_OK if any(s.successful for s in summaries) else EXIT_ALL_FAILED


@contextlib.contextmanager
def _interruptible(recording: Recording, planned: int) -> Iterator[None]:
    """Ctrl-C while the runs arrive: cancel those in flight, and let main say how many the history kept."""
    try:
        yield
    except KeyboardInterrupt:
        recording.close()
        kept = (f"{recording.saved} of {planned} runs kept as {recording.experiment_id} (incomplete)"
                if recording.experiment_id else "nothing was saved")
        raise KeyboardInterrupt(kept) from None


def _say_saved(recording: Recording, planned: int, as_json: bool) -> None:
    """Where the runs went: exactly how many the history kept when it failed part-way (a note beside --json)."""
    experiment_id, error = recording.experiment_id, recording.save_error
    if experiment_id is None:
        line = f"not saved to the history: {error}"
    elif error is None:
        line = f"saved as {experiment_id}"
    elif recording.saved < planned:
        line = f"saved {recording.saved} of {planned} runs as {experiment_id}; the rest were not saved: {error}"
    else:
        line = f"saved {planned} of {planned} runs as {experiment_id}, but not marked complete: {error}"
    if experiment_id and not as_json:
        print(line)
    elif error:
        print(f"note: {line}", file=sys.stderr)


def _print_cells(summaries: Iterable[CellSummary]) -> None:
    print(f"{'cell':<22} {'ok':>4} {'unique':>6} {'identical':>9} {'first fork':>10} {'similarity':>10}")
    for s in summaries:
        rate = "-" if s.identical_rate is None else f"{s.identical_rate:.0%}"
        fork = "-" if s.first_divergence_word is None else f"word {s.first_divergence_word + 1}"
        similarity = "-" if s.mean_similarity is None else f"{s.mean_similarity:.3f}"
        print(f"{s.label:<22} {s.successful:>4} {s.unique_outputs:>6} {rate:>9} {fork:>10} {similarity:>10}")


def command_history(args: argparse.Namespace) -> int:
    try:
        store = _store()
        if args.action == "import":
            with open(args.file, "rb") as handle:
                print(import_experiment(store, from_json(handle.read(MAX_IMPORT_BYTES + 1))))
            return EXIT_OK
        if args.action == "list":
            rows = store.list(search=args.search, limit=args.limit)
            if args.json:
                print(strict_json([asdict(row) for row in rows]))
            for row in [] if args.json else rows:
                runs = (f"sweep of {row.runs_planned} requests" if row.kind == "sweep" else
                        f"{row.runs_done}/{row.runs_planned} runs  T={row.temperature:g}  seed={row.seed}  "
                        f"{row.unique_outputs} unique  {','.join(row.fingerprints) or '-'}")
                print(f"{row.id}  {row.created_at[:19]}  {row.provider}/{row.model}  {runs}  {row.prompt_preview}")
            return EXIT_OK
        experiment = store.get(args.id)
        if experiment is None:
            raise UnknownExperiment(f"There is no experiment {args.id!r} in the history.")
        if experiment.kind == "sweep":
            if args.action == "export":
                raise InvalidRequest("A sweep is kept as one experiment per cell; export those "
                                     "(history show on the sweep lists the cells with their ids).")
            sweep = load_sweep(store, experiment.id)
            if args.json:
                print(strict_json(sweep.to_dict()))
            else:
                _print_cells(sweep.summaries())
                for child in store.children(experiment.id):
                    print(f"cell {child.id}: T={child.request.temperature:g} seed={child.request.seed}")
            return EXIT_OK
    except (ReproError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.action == "export":
        print(to_json(experiment) if args.format == "json" else to_csv(experiment), end="")
        return EXIT_OK
    if not args.json:
        _header(experiment.backend, experiment.request, experiment.runs_planned)
    results = _print_runs(experiment.runs, live=not args.json)
    _report(experiment.request, experiment.backend, results, args.json,
            {"id": experiment.id, "created_at": experiment.created_at, "complete": experiment.complete,
             "rerun_of": experiment.rerun_of})
    return EXIT_OK


def _summary_line(summary: Summary) -> str:
    if summary.note:
        return f"{summary.note} · {summary.errors} errors"
    verdict = ("all identical" if summary.all_identical
               else f"first divergence at word {summary.first_divergence_word + 1}")
    return (f"{summary.unique_outputs} unique of {summary.successful} successful · identical rate "
            f"{summary.identical_rate:.0%} · {verdict} · {summary.errors} errors")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"run": command_run, "sweep": command_sweep, "history": command_history}[args.command](args)
    except KeyboardInterrupt as exc:
        print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
