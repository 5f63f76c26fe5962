"""`probe`: can this endpoint be trusted? Which parameters it rejects, whether it honours the seed, whether a warm
cache or the load on the server changes a seeded answer. The cost is shown and confirmed first (or --yes); the
report card is a table (--json: one object, --markdown: a Markdown table) saved to the history; the exit status is
1 when the seed is ignored or load changes seeded answers, for CI."""

from __future__ import annotations

import argparse
import sys

from rich.table import Column

from core.cli.options import (backend_from, backend_options, fanout_from, json_option, save_option, settings_from,
                              store_from, whole_number)
from core.cli.output import EXIT_ALL_FAILED, EXIT_DIFFERENT, EXIT_OK, cell, console, note, print_json, say, table
from core.errors import InvalidRequest, StorageError
from core.models import MAX_TOKENS_LIMIT, BackendInfo
from core.probe import (LADDER, LOCAL_LADDER, Probe, ProbePlan, ProbeReport, SkippedRung, parse_ladder, run_probe,
                        save_probe)


def add_parsers(commands: argparse._SubParsersAction) -> None:
    probe = commands.add_parser("probe", help="which parameters an endpoint rejects, whether it honours the seed, "
                                              "whether a warm cache or load changes its answers",
                                parents=[backend_options(runs=8, runs_help="copies of the seeded request per load"),
                                         json_option(), save_option()])
    probe.add_argument("--ladder", help=f"background requests in flight, comma-separated (default "
                                        f"{_comma_separated(LADDER)}; {_comma_separated(LOCAL_LADDER)} for the "
                                        "embedded engine, which runs it twice)")
    probe.add_argument("--max-tokens", type=whole_number(1, MAX_TOKENS_LIMIT), default=16,
                       help="the longest answer of each request (default %(default)s)")
    probe.add_argument("--markdown", action="store_true", help="print the report card as a Markdown table")
    probe.add_argument("--yes", action="store_true", help="send without asking to confirm the cost")
    # The cap defaults to REPRO_GLOBAL_CONCURRENCY, which the load ladder needs, not --concurrency's 10.
    probe.set_defaults(handler=command_probe, concurrency=None)


def command_probe(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    cap = min(args.concurrency or settings.limits.global_concurrency, settings.limits.global_concurrency)
    backend = backend_from(settings)
    embedded = backend.info.provider == "local"
    ladder = parse_ladder(args.ladder) if args.ladder else LOCAL_LADDER if embedded else LADDER
    wanted = ProbePlan(runs=args.runs, ladder=ladder, max_tokens=args.max_tokens, in_batch=embedded)
    plan, skipped = wanted.bounded(cap, quota=wanted.total_requests)
    store = store_from(args, settings)
    _confirm(cost_line(backend.info, plan, skipped), args.yes)
    with fanout_from(settings) as fanout:
        probe = fanout.call(run_probe(backend, plan, skipped, hold=fanout.hold))
    probe_id = _saved(store, probe)
    report = probe.report
    if args.json:
        print_json({"report": report.to_dict(), "summary": report.summary(), "problems": report.problems(),
                    "plan": {"runs": plan.runs, "ladder": list(plan.ladder), "requests": plan.total_requests},
                    "probe_id": probe_id})
    elif args.markdown:
        print(report.markdown(), end="")
    else:
        print_report(report)
        if probe_id:
            say(f"saved as {probe_id}")
    if not any(run.ok for step in probe.steps for run in step.runs):
        return EXIT_ALL_FAILED
    return EXIT_DIFFERENT if report.problems() else EXIT_OK


def _comma_separated(ladder: tuple[int, ...]) -> str:
    return ",".join(map(str, ladder))


def cost_line(info: BackendInfo, plan: ProbePlan, skipped: tuple[SkippedRung, ...]) -> str:
    left_out = "".join(f"; K={s.background} left out: {s.reason} (REPRO_GLOBAL_CONCURRENCY)" for s in skipped)
    return f"probe {info.label}: {plan.describe()}{left_out}"


def _confirm(cost: str, yes: bool) -> None:
    """Show the cost on stderr; go on only with --yes or a "y" typed at a terminal."""
    note(cost)
    if yes:
        return
    if not sys.stdin.isatty():
        raise InvalidRequest("The probe was not confirmed: add --yes to send these requests without a terminal.")
    if input("Send them? [y/N] ").strip().lower() not in ("y", "yes"):
        raise InvalidRequest("The probe was not confirmed; nothing was sent.")


def _saved(store, probe: Probe) -> str | None:
    if store is None:
        return None
    try:
        return save_probe(store, probe)
    except StorageError as exc:
        note(f"not saved to the history: {exc}")
        return None


def print_report(report: ProbeReport) -> None:
    card = table("check", "verdict", Column("evidence", overflow="fold"))
    for row in report.rows():
        card.add_row(*map(cell, row[:2]), row[2])
    console().print(card)
    # "vs reference": R at K=0 for a server, R decoded alone for the embedded engine.
    rungs = table("variant", *(Column(h, justify="right") for h in ("K", "runs", "ok", "unique")), "vs reference")
    for load in report.loads:
        for r in load.rungs:
            rungs.add_row(*map(cell, (load.variant or "-", str(r.background), str(r.runs), str(r.successful),
                                      str(r.unique), "changed" if r.changed else "-")))
    console().print(rungs)
    say(report.summary())
