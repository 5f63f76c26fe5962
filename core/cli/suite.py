"""`suite`: every prompt of a JSONL or CSV file N times, all under one concurrency cap, saved as one history item; a
row per prompt once its runs are in, then TARr@N, TARa@N and the accuracy spread, each with its interval."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator

from core.analysis.scores import PromptScore, score_prompt
from core.cli.options import (
    backend_from,
    backend_options,
    decoding_options,
    fanout_from,
    json_option,
    sampling_options,
    save_option,
    settings_from,
    store_from,
)
from core.cli.output import (
    EXIT_ALL_FAILED,
    EXIT_OK,
    Field,
    StreamedTable,
    interruptible,
    print_json,
    say,
    say_saved,
)
from core.history.recorder import Recorder, Recording
from core.models import RunResult
from core.suite import Suite, SuitePlan, SuiteRun, load_suite, record_suite, stream_suite

PROMPTS = StreamedTable(Field("#", 3, "right"), Field("ok", 7, "right"), Field("outputs", 7, "right"),
                        Field("answers", 7, "right"), Field("TARr", 4), Field("TARa", 4), Field("correct", 7, "right"),
                        Field("first fork", 10, "right"), Field("prompt"))


def add_parsers(commands: argparse._SubParsersAction) -> None:
    suite = commands.add_parser("suite", help="every prompt of a suite file N times: TARr@N, TARa@N and accuracy",
                                parents=suite_options() + [json_option()])
    suite.add_argument("file", help="a .jsonl file (one object a line) or a .csv file (a header row): prompt, and "
                                    "optionally name, system, expected, extractor")
    suite.set_defaults(handler=command_suite)


def suite_options() -> list[argparse.ArgumentParser]:
    """What running a suite takes (`suite`, and `baseline save --suite`)."""
    return [sampling_options(temperature=0.0), decoding_options(), backend_options(runs_help="runs per prompt"),
            save_option()]


def command_suite(args: argparse.Namespace) -> int:
    run, recording = run_suite_file(args.file, args, live=not args.json)
    return report_suite(run, recording, args.json)


def report_suite(run: SuiteRun, recording: Recording, as_json: bool) -> int:
    """The scores (one JSON object, or the overall line under the rows), where the runs were saved, and the exit
    status: EXIT_ALL_FAILED when no run of any prompt succeeded."""
    summary = run.summary()
    if as_json:
        print_json({**run.to_dict(), "experiment_id": recording.experiment_id, "runs_saved": recording.saved})
    else:
        say(summary.describe())
    say_saved(recording, len(run.suite.prompts) * run.plan.runs, as_json)
    return EXIT_OK if any(score.successful for score in summary.prompts) else EXIT_ALL_FAILED


def run_suite_file(path: str, args: argparse.Namespace, live: bool) -> tuple[SuiteRun, Recording]:
    """The suite at `path` run with the suite options (saved unless --no-save); with `live`, a header and a row per
    prompt the moment its last run arrives."""
    suite = load_suite(path)
    plan = SuitePlan(runs=args.runs, concurrency=args.concurrency, temperature=args.temperature, top_p=args.top_p,
                     max_tokens=args.max_tokens, seed=args.seed)
    plan.requests(suite)  # over the request cap: refused before the history keeps an empty item
    settings = settings_from(args)
    backend = backend_from(settings)
    store = store_from(args, settings)
    if live:
        say(f"{backend.info.label} · {suite.name}: {len(suite.prompts)} prompts × {plan.runs} runs · temperature "
            f"{plan.temperature:g} · seed {plan.seed}")
        PROMPTS.header()
    with fanout_from(settings) as fanout:
        recording = Recorder(fanout, store).start(record_suite, stream_suite, backend, suite, plan)
        with interruptible(recording, len(suite.prompts) * plan.runs):
            pairs = _printing(recording, suite, plan) if live else recording
            run = SuiteRun.collect(suite, plan, backend.info, pairs)
    return run, recording


def _printing(pairs: Iterable[tuple[int, RunResult]], suite: Suite,
              plan: SuitePlan) -> Iterator[tuple[int, RunResult]]:
    """The pairs passed on, with a row for each prompt once all its runs have arrived."""
    arrived: dict[int, list[RunResult]] = {}
    for position, result in pairs:
        results = arrived.setdefault(position, [])
        results.append(result)
        if len(results) == plan.runs:
            ordered = sorted(results, key=lambda r: r.index)
            print_prompt(score_prompt(position, suite.prompts[position], ordered, plan.runs), plan.runs)
        yield position, result


def _verdict(flag: bool | None) -> str:
    return "-" if flag is None else "yes" if flag else "no"


def print_prompt(score: PromptScore, runs: int) -> None:
    correct = "-" if score.correct is None else f"{score.correct}/{score.successful}"
    fork = "-" if score.first_divergence_word is None else f"word {score.first_divergence_word + 1}"
    PROMPTS.row(str(score.position + 1), f"{score.successful}/{runs}", str(score.unique_outputs),
                str(score.unique_answers), _verdict(score.tarr), _verdict(score.tara), correct, fork, score.label)


def print_suite(run: SuiteRun) -> None:
    """A saved suite run: every prompt's row, then the overall line."""
    summary = run.summary()
    PROMPTS.header()
    for score in summary.prompts:
        print_prompt(score, run.plan.runs)
    say(summary.describe())
