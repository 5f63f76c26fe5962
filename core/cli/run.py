"""`run`: N identical requests in parallel, a row per run as it arrives, then the summary, what the batch proves and
why it forked (`--json`: one object instead). `history show` prints a saved batch the same way."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from typing import Any

from core.analysis.causes import ForkCause, fork_causes
from core.analysis.compare import Summary, compare
from core.analysis.statistics import batch_statistics
from core.cli.options import (
    backend_from,
    backend_options,
    decoding_options,
    fanout_from,
    json_option,
    prompt_options,
    sampling_options,
    save_option,
    settings_from,
    store_from,
)
from core.cli.output import (
    EXIT_ALL_FAILED,
    EXIT_DIFFERENT,
    EXIT_OK,
    Field,
    StreamedTable,
    interruptible,
    print_json,
    say,
    say_saved,
)
from core.history.recorder import Recorder
from core.models import BackendInfo, BatchPlan, RunRequest, RunResult

RUNS = StreamedTable(Field("#", 3, "right"), Field("latency", 11, "right"), Field("tokens", 6, "right"),
                     Field("fingerprint", 20), Field("text"))


def add_parsers(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="send N identical chat requests in parallel and compare the answers",
                              parents=[prompt_options(), sampling_options(temperature=0.1), decoding_options(),
                                       backend_options(), json_option(), save_option()])
    run.add_argument("--logprobs", action="store_true", help="ask for log-probabilities with 5 alternatives")
    run.add_argument("--expect-identical", action="store_true",
                     help="exit with status 1 unless every successful run is byte-identical")
    run.set_defaults(handler=command_run)


def command_run(args: argparse.Namespace) -> int:
    request = RunRequest(prompt=args.prompt, system=args.system, temperature=args.temperature, top_p=args.top_p,
                         max_tokens=args.max_tokens, seed=args.seed, logprobs=args.logprobs)
    plan = BatchPlan(runs=args.runs, concurrency=args.concurrency)
    settings = settings_from(args)
    backend = backend_from(settings)
    store = store_from(args, settings)
    if not args.json:
        print_header(backend.info, request, plan.runs, plan.concurrency)
    with fanout_from(settings) as fanout:
        recording = Recorder(fanout, store).batch(backend, request, plan)
        with interruptible(recording, plan.runs):
            results = collect_runs(recording, live=not args.json)
    experiment = recording.experiment_id and {"id": recording.experiment_id, "runs_saved": recording.saved,
                                              "complete": recording.saved == plan.runs and not recording.save_error}
    summary = report(request, backend.info, results, args.json, experiment)
    say_saved(recording, plan.runs, args.json)
    if summary.successful == 0:
        return EXIT_ALL_FAILED
    if args.expect_identical and not summary.all_identical:
        return EXIT_DIFFERENT
    return EXIT_OK


def print_header(info: BackendInfo, request: RunRequest, runs: int, concurrency: int | None = None) -> None:
    at_once = f", {concurrency} at once" if concurrency else ""
    say(f"{info.label} · temperature {request.temperature:g} · seed {request.seed} · {runs} runs{at_once}")
    RUNS.header()


def _print_run(result: RunResult) -> None:
    number, latency = str(result.index + 1), f"{result.latency_ms:.0f} ms"
    if result.ok:
        tokens = result.usage.completion_tokens if result.usage else "-"
        RUNS.row(number, latency, str(tokens), result.system_fingerprint or "-", result.text.replace("\n", " ⏎ "))
    else:
        RUNS.row(number, latency, "", "", f"ERROR {result.error.kind}: {result.error.message}")


def collect_runs(results: Iterable[RunResult], live: bool) -> list[RunResult]:
    """Every result ordered by index; with `live`, a row for each the moment it arrives."""
    collected = []
    for result in results:
        collected.append(result)
        if live:
            _print_run(result)
    return sorted(collected, key=lambda r: r.index)


def report(request: RunRequest, info: BackendInfo, results: list[RunResult], as_json: bool,
           experiment: dict[str, Any] | None) -> Summary:
    """The summary, the statistics and the fork causes: one JSON object, or lines under the table."""
    comparison = compare(results)
    statistics = batch_statistics(comparison)
    causes = fork_causes(results, request)
    if as_json:
        data = {"request": request.to_dict(), "backend": info.to_dict(), "runs": [r.to_dict() for r in results],
                "summary": comparison.summary.to_dict(), "statistics": statistics.to_dict(),
                "fork_causes": [cause.to_dict() for cause in causes]}
        if experiment:
            data["experiment"] = experiment
        print_json(data)
    else:
        say(_summary_line(comparison.summary))
        if statistics.divergence:  # below two successful runs the summary line already says why
            say(statistics.describe())
        for line in _cause_lines(causes):
            say(line)
    return comparison.summary


def _summary_line(summary: Summary) -> str:
    if summary.note:
        return f"{summary.note} · {summary.errors} errors"
    verdict = ("all identical" if summary.all_identical
               else f"first divergence at word {summary.first_divergence_word + 1}")
    return (f"{summary.unique_outputs} unique of {summary.successful} successful · identical rate "
            f"{summary.identical_rate:.0%} · {verdict} · {summary.errors} errors")


def _cause_lines(causes: Sequence[ForkCause]) -> list[str]:
    """A line per kind of cause with its first evidence: a batch without a seed has a group per run, one cause."""
    by_kind: dict[str, list[ForkCause]] = {}
    for cause in causes:
        by_kind.setdefault(cause.cause, []).append(cause)
    return [f"why it forked: {kind}: {found[0].evidence}" + (f" ({len(found)} groups of runs)" if found[1:] else "")
            for kind, found in by_kind.items()]
