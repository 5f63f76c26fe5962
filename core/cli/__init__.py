"""The command line, `python -m core COMMAND`:

    run       N identical requests in parallel; a row per run, the summary, what it proves, why it forked
    sweep     the prompt over temperatures × seeds, N runs per cell
    suite     every prompt of a JSONL or CSV file N times: TARr@N, TARa@N and accuracy, with intervals
    plan      how many identical runs support "fewer than this share of requests diverge"
    baseline  save a determinism contract from a saved experiment or suite run (or a suite run now)
    check     run a contract again and say what drifted
    history   list, show, export and import what the history keeps
    probe     test an endpoint: parameters rejected, seed honoured, cold vs warm, does load change the answer
    health    whether this instance is ready: settings, backend, databases

Exit status: 0 success (a contract holds); 1 with --expect-identical when the successful runs differ, or a contract
drifted, or a probe found the seed ignored or answers changing with load; 2 bad input or configuration; 3 when no run succeeded; 130 interrupted (Ctrl-C), after saying how many
runs the history kept. Every command prints a table (rich), or with --json one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from core.cli import contract, history, plan, probe, run, suite, sweep
from core.cli.output import EXIT_ALL_FAILED, EXIT_BAD_INPUT, EXIT_DIFFERENT, EXIT_INTERRUPTED, EXIT_OK
from core.errors import ReproError
from core.shared import health

__all__ = ["EXIT_ALL_FAILED", "EXIT_BAD_INPUT", "EXIT_DIFFERENT", "EXIT_INTERRUPTED", "EXIT_OK", "build_parser",
           "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Repro Lab: how reproducible is an LLM?")
    commands = parser.add_subparsers(dest="command", required=True)
    for family in (run, sweep, suite, plan, contract, history, probe, health):
        family.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ReproError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:
        print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
