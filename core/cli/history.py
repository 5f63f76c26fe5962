"""`history list|show|export|import`: the experiments, sweeps and suite runs kept in the history (SQLite, or
PostgreSQL at DATABASE_URL)."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from rich.table import Column

from core.cli.options import history_store, json_option, whole_number
from core.cli.output import EXIT_OK, console, print_json, say, table
from core.cli.run import collect_runs, print_header, report
from core.cli.suite import print_suite
from core.cli.sweep import print_cells
from core.errors import InvalidRequest, UnknownExperiment
from core.history import (
    MAX_IMPORT_BYTES,
    Experiment,
    ExperimentRow,
    Store,
    from_json,
    import_experiment,
    to_csv,
    to_json,
)
from core.history.recorder import load_sweep
from core.suite import load_suite_run

MAX_LIST_LIMIT = 10_000
PARTS = {"sweep": "cell", "suite": "prompt"}
"""What each child experiment of a history item that holds several is."""


def add_parsers(commands: argparse._SubParsersAction) -> None:
    history = commands.add_parser("history", help="experiments kept in the history (SQLite, or DATABASE_URL)")
    actions = history.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="newest first", parents=[json_option()])
    listing.add_argument("--search", default=None, help="text in the prompt, system prompt or model")
    listing.add_argument("--limit", type=whole_number(1, MAX_LIST_LIMIT), default=50)
    listing.set_defaults(handler=list_history)
    show = actions.add_parser("show", help="one experiment, as `run` prints it (a sweep or a suite run: its rows)",
                              parents=[json_option()])
    show.add_argument("id")
    show.set_defaults(handler=show_item)
    export = actions.add_parser("export", help="print a JSON (complete, re-importable) or CSV (a row per run) export")
    export.add_argument("id")
    export.add_argument("--format", choices=("json", "csv"), default="json")
    export.set_defaults(handler=export_experiment)
    imported = actions.add_parser("import", help="add a JSON export to the history; prints its new id")
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


def show_item(args: argparse.Namespace) -> int:
    store = history_store()
    experiment = _get(store, args.id)
    if experiment.kind == "sweep":
        sweep = load_sweep(store, experiment.id)
        if args.json:
            print_json(sweep.to_dict())
            return EXIT_OK
        print_cells(sweep.summaries())
        for child in store.children(experiment.id):
            say(f"cell {child.id}: T={child.request.temperature:g} seed={child.request.seed}")
        return EXIT_OK
    if experiment.kind == "suite":
        run = load_suite_run(store, experiment.id)
        if args.json:
            print_json(run.to_dict())
            return EXIT_OK
        print_suite(run)
        for child in store.children(experiment.id):
            say(f"prompt {child.id}: {child.meta.get('label', '')}")
        return EXIT_OK
    if not args.json:
        print_header(experiment.backend, experiment.request, experiment.runs_planned)
    results = collect_runs(experiment.runs, live=not args.json)
    report(experiment.request, experiment.backend, results, args.json,
           {"id": experiment.id, "created_at": experiment.created_at, "complete": experiment.complete,
            "rerun_of": experiment.rerun_of})
    return EXIT_OK


def export_experiment(args: argparse.Namespace) -> int:
    experiment = _get(history_store(), args.id)
    if experiment.kind in PARTS:
        part = PARTS[experiment.kind]
        raise InvalidRequest(f"A {experiment.kind} is kept as one experiment per {part}; export those "
                             f"(history show on the {experiment.kind} lists the {part}s with their ids).")
    print(to_json(experiment) if args.format == "json" else to_csv(experiment), end="")
    return EXIT_OK


def import_file(args: argparse.Namespace) -> int:
    store = history_store()
    with open(args.file, "rb") as handle:
        print(import_experiment(store, from_json(handle.read(MAX_IMPORT_BYTES + 1))))
    return EXIT_OK
