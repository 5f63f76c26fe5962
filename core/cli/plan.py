"""`plan`: how many identical runs support the claim "fewer than this share of requests diverge", and whether this
instance allows that many in one experiment."""

from __future__ import annotations

import argparse

from core.analysis.statistics import CONFIDENCE, describe_runs_needed, runs_needed
from core.cli.options import json_option
from core.cli.output import EXIT_OK, print_json, say
from core.policy import LIMIT_VARIABLES
from core.settings import read_limits, read_sources


def add_parsers(commands: argparse._SubParsersAction) -> None:
    plan = commands.add_parser("plan", help="how many identical runs show that divergence is below a share",
                               parents=[json_option()])
    plan.add_argument("--below", type=float, required=True, help="the share of requests, e.g. 0.01 for 1 %%")
    plan.add_argument("--confidence", type=float, default=CONFIDENCE, help=f"default {CONFIDENCE:g}")
    plan.set_defaults(handler=command_plan)


def command_plan(args: argparse.Namespace) -> int:
    runs = runs_needed(args.below, args.confidence)
    max_runs = read_limits(read_sources()).max_runs
    over = (f"That is over this instance's limit of {max_runs} runs in one experiment "
            f"({LIMIT_VARIABLES['max_runs']})." if runs > max_runs else None)
    if args.json:
        print_json({"below": args.below, "confidence": args.confidence, "runs": runs, "max_runs": max_runs,
                    "over_limit": over is not None, "description": describe_runs_needed(args.below, args.confidence)})
        return EXIT_OK
    say(describe_runs_needed(args.below, args.confidence))
    if over:
        say(over)
    return EXIT_OK
