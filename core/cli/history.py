"""`history list|show|export|import`: the experiments, sweeps, suite runs and probes kept in the history (SQLite, or
PostgreSQL at DATABASE_URL); a sweep, suite run or probe is exported and imported whole, its children with it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from rich.table import Column

from core.cli.options import history_store, json_option, whole_number
from core.cli.output import EXIT_OK, console, print_json, say, table
from core.cli.probe import print_report
from core.cli.run import collect_runs, print_header, report
from core.cli.suite import print_suite
from core.cli.sweep import print_cells
from core.errors import InvalidRequest, UnknownExperiment
from core.history import (MAX_IMPORT_BYTES, PARTS, Experiment, ExperimentRow, Store, export_item, import_item,
                          read_item, to_csv)
from core.history.recorder import load_sweep
from core.probe import load_report
from core.suite import load_suite_run

MAX_LIST_LIMIT = 10_000


def add_parsers(commands: argparse._SubParsersAction) -> None:
    history = commands.add_parser("history", help="experiments kept in the history (SQLite, or DATABASE_URL)")
    actions = history.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="newest first", parents=[json_option()])
    listing.add_argument("--search", default=None, help="text in the prompt, system prompt or model")
    listing.add_argument("--limit", type=whole_number(1, MAX_LIST_LIMIT), default=50)
    listing.set_defaults(handler=list_history)
    show = actions.add_parser("show", help="one experiment, as `run` prints it (a sweep or a suite run: its rows; "
                                           "a probe: its report card)",
                              parents=[json_option()])
    show.add_argument("id")
    show.set_defaults(handler=show_item)
    export = actions.add_parser("export", help="print a JSON (complete, re-importable; a sweep, suite run or probe "
                                               "with its children) or CSV (a row per run of an experiment) export")
    export.add_argument("id")
    export.add_argument("--format", choices=("json", "csv"), default="json")
    export.set_defaults(handler=export_experiment)
    imported = actions.add_parser("import", help="add a JSON export (with its children) to the history; prints its "
                                                 "new id")
    imported.add_argument("file")
    imported.set_defaults(handler=import_file)


def list_history(args: argparse.Namespace) -> int:
    rows = history_store().list(search=args.search, limit=args.limit)
    if args.json:
        print_json([asdict(row) for row in rows])
        return EXIT_OK
    # The id is what people copy: it alone is never wrapped or cut.
    items = table(Column("id", no_wrap=True), "created", "backend", "runs", "prompt")
    for row in rows:
        items.add_row(row.id, row.created_at[:19], f"{row.provider}/{row.model}", _runs(row), row.prompt_preview)
    console().print(items)
    return EXIT_OK


def _runs(row: ExperimentRow) -> str:
    if row.kind in PARTS:
        return f"{row.kind} of {row.runs_planned} requests"
    return (f"{row.runs_done}/{row.runs_planned} runs · T={row.temperature:g} · seed={row.seed} · "
            f"{row.unique_outputs} unique · {','.join(row.fingerprints) or '-'}")


def _get(store: Store, experiment_id: str) -> Experiment:
    experiment = store.get(experiment_id)
    if experiment is None:
        raise UnknownExperiment(f"There is no experiment {experiment_id!r} in the history.")
    return experiment


View = tuple[dict[str, Any], Callable[[], None]]
"""A parent item's JSON form and what prints it as tables."""


def _sweep_view(store: Store, item: Experiment) -> View:
    sweep = load_sweep(store, item.id)
    return sweep.to_dict(), lambda: print_cells(sweep.summaries())


def _suite_view(store: Store, item: Experiment) -> View:
    run = load_suite_run(store, item.id)
    return run.to_dict(), lambda: print_suite(run)


def _probe_view(store: Store, item: Experiment) -> View:
    card = load_report(store, item.id)
    return ({"probe_id": item.id, "created_at": item.created_at, "report": card.to_dict(), "summary": card.summary(),
             "problems": card.problems()}, lambda: print_report(card))


VIEWS: dict[str, Callable[[Store, Experiment], View]] = {"sweep": _sweep_view, "suite": _suite_view,
                                                          "probe": _probe_view}


def show_item(args: argparse.Namespace) -> int:
    store = history_store()
    experiment = _get(store, args.id)
    if experiment.kind in PARTS:
        data, print_tables = VIEWS[experiment.kind](store, experiment)
        if args.json:
            print_json(data)
            return EXIT_OK
        print_tables()
        for child in store.children(experiment.id):
            say(f"{PARTS[experiment.kind]} {child.id}: {child.meta.get('label', '')}")
        return EXIT_OK
    if not args.json:
        print_header(experiment.backend, experiment.request, experiment.runs_planned)
    results = collect_runs(experiment.runs, live=not args.json)
    report(experiment.request, experiment.backend, results, args.json,
           {"id": experiment.id, "created_at": experiment.created_at, "complete": experiment.complete,
            "rerun_of": experiment.rerun_of})
    return EXIT_OK


def export_experiment(args: argparse.Namespace) -> int:
    store = history_store()
    if args.format == "json":
        print(export_item(store, args.id), end="")
        return EXIT_OK
    experiment = _get(store, args.id)
    if experiment.kind in PARTS:
        part = PARTS[experiment.kind]
        raise InvalidRequest(f"--format csv is a row per run of one experiment, and a {experiment.kind} keeps its "
                             f"runs in one experiment per {part}: export it as JSON, or export a {part} as CSV "
                             f"(history show on the {experiment.kind} lists the {part}s with their ids).")
    print(to_csv(experiment), end="")
    return EXIT_OK


def import_file(args: argparse.Namespace) -> int:
    store = history_store()
    with open(args.file, "rb") as handle:
        print(import_item(store, read_item(handle.read(MAX_IMPORT_BYTES + 1))))
    return EXIT_OK
