"""`sweep`: the prompt over temperatures × seeds, N runs per cell, saved as one history item; a row per cell."""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from rich.table import Column

from core.cli.options import (
    backend_from,
    backend_options,
    decoding_options,
    fanout_from,
    json_option,
    prompt_options,
    save_option,
    settings_from,
    store_from,
)
from core.cli.output import EXIT_ALL_FAILED, EXIT_OK, cell, console, interruptible, print_json, say, say_saved, table
from core.history.recorder import Recorder
from core.models import RunRequest
from core.sweep import CellSummary, SweepPlan, SweepResult, parse_seeds, parse_temperatures


def add_parsers(commands: argparse._SubParsersAction) -> None:
    sweep = commands.add_parser("sweep", help="the same prompt over temperatures × seeds, N runs per cell",
                                parents=[prompt_options(), decoding_options(),
                                         backend_options(runs_help="runs per cell"), json_option(), save_option()])
    sweep.add_argument("--temperatures", required=True, help="comma-separated, e.g. 0,0.7,1.2")
    sweep.add_argument("--seeds", default="42,none", help="comma-separated whole numbers or 'none', e.g. 42,none")
    sweep.set_defaults(handler=command_sweep)


def command_sweep(args: argparse.Namespace) -> int:
    plan = SweepPlan(parse_temperatures(args.temperatures), parse_seeds(args.seeds), args.runs, args.concurrency)
    base = RunRequest(prompt=args.prompt, system=args.system, top_p=args.top_p, max_tokens=args.max_tokens)
    settings = settings_from(args)
    backend = backend_from(settings)
    store = store_from(args, settings)
    if not args.json:
        say(f"{backend.info.label} · {len(plan.temperatures)} temperatures × {len(plan.seeds)} seeds × "
            f"{plan.runs} runs = {plan.total_requests} requests")
    with fanout_from(settings) as fanout:
        recording = Recorder(fanout, store).sweep(backend, base, plan)
        with interruptible(recording, plan.total_requests):
            result = SweepResult.collect(base, plan, recording)
    summaries = result.summaries()
    if args.json:
        print_json({**result.to_dict(), "backend": backend.info.to_dict(), "experiment_id": recording.experiment_id,
                    "runs_saved": recording.saved})
    else:
        print_cells(summaries)
    say_saved(recording, plan.total_requests, args.json)
    return EXIT_OK if any(s.successful for s in summaries) else EXIT_ALL_FAILED


def print_cells(summaries: Iterable[CellSummary]) -> None:
    numbers = ("ok", "unique", "identical", "first fork", "similarity")
    cells = table("cell", *(Column(header, justify="right") for header in numbers))
    for s in summaries:
        rate = "-" if s.identical_rate is None else f"{s.identical_rate:.0%}"
        fork = "-" if s.first_divergence_word is None else f"word {s.first_divergence_word + 1}"
        similarity = "-" if s.mean_similarity is None else f"{s.mean_similarity:.3f}"
        cells.add_row(*map(cell, (s.label, str(s.successful), str(s.unique_outputs), rate, fork, similarity)))
    console().print(cells)
