"""A determinism contract for CI: `baseline save` writes one from a saved experiment or suite run (or a suite run
now), `check` runs it again and exits 0 when it holds, 1 on drift, 3 when no run succeeded."""

from __future__ import annotations

import argparse

from rich.table import Column

from core.analysis.answers import EXTRACTORS, Extractor
from core.cli.options import backend_from, backend_options, fanout_from, history_store, json_option, settings_from
from core.cli.output import EXIT_OK, cell, console, print_json, say, table
from core.cli.suite import report_suite, run_suite_file, suite_options
from core.contract import (
    TOLERANCES,
    CheckReport,
    Tolerance,
    baseline,
    baseline_from_history,
    check,
    load_contract,
    save_contract,
)
from core.suite import short_label


def add_parsers(commands: argparse._SubParsersAction) -> None:
    baselines = commands.add_parser("baseline", help="save a determinism contract for `check`")
    actions = baselines.add_subparsers(dest="action", required=True)
    save = actions.add_parser("save", parents=suite_options(),
                              help="a contract from a saved experiment or suite run, or from a suite run now")
    source = save.add_mutually_exclusive_group(required=True)
    source.add_argument("experiment_id", nargs="?", help="a saved experiment or suite run")
    source.add_argument("--suite", metavar="FILE", help="run this suite now (with the options above) and take its "
                                                        "answers")
    save.add_argument("-o", "--output", required=True, help="the contract file to write, e.g. contract.json")
    save.add_argument("--tolerance", default="exact", help=f"{', '.join(TOLERANCES)} (default exact)")
    save.add_argument("--extractor", help=f"for the answer tolerance: {', '.join(EXTRACTORS)} (default: each suite "
                                          "prompt's own)")
    save.set_defaults(handler=command_baseline)

    checking = commands.add_parser("check", help="run a contract again: exit 0 holds, 1 drift, 3 no run succeeded",
                                   parents=[backend_options(runs=None, runs_help="runs per request (default: as "
                                                                                 "many as the baseline)"),
                                            json_option()])
    checking.add_argument("contract", help="a file written by `baseline save`; it runs on the contract's provider "
                                           "unless --backend names another")
    checking.set_defaults(handler=command_check)


def command_baseline(args: argparse.Namespace) -> int:
    # Both are read again by baseline(); checked here so that a typo stops before a suite is sent.
    Tolerance.parse(args.tolerance)
    if args.extractor:
        Extractor(args.extractor)
    if args.suite:
        run, recording = run_suite_file(args.suite, args, live=True)
        outcome = report_suite(run, recording, as_json=False)
        if outcome != EXIT_OK:
            return outcome
        contract = baseline(run, args.tolerance, args.extractor)
    else:
        contract = baseline_from_history(history_store(), args.experiment_id, args.tolerance, args.extractor)
    save_contract(contract, args.output)
    say(f"contract written to {args.output}: {len(contract.items)} request(s) on {contract.backend.label}, "
        f"tolerance {contract.tolerance}")
    for item in contract.items:
        say(f"  {item.label}: {short_label(item.expected)!r} ({item.agreeing} of {item.answered} runs agree)")
    return EXIT_OK


def command_check(args: argparse.Namespace) -> int:
    contract = load_contract(args.contract)
    settings = settings_from(args, backend=args.backend or contract.backend.provider)
    with fanout_from(settings) as fanout:
        report = check(fanout, contract, backend_from(settings), args.runs, concurrency=args.concurrency)
    if args.json:
        print_json(report.to_dict())
    else:
        print_report(report)
    return report.exit_code


def print_report(report: CheckReport) -> None:
    """A row per request, then the verdict and each drift."""
    items = table("request", Column("agree", justify="right"), "answer now", "fingerprints")
    for item in report.items:
        answer = "-" if item.modal is None else repr(short_label(item.modal))
        items.add_row(*map(cell, (item.label, f"{item.agreeing}/{item.runs}", answer,
                                  ", ".join(item.fingerprints) or "-")))
    console().print(items)
    for line in report.describe():
        say(line)
