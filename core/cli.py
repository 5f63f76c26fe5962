"""The command line: `python -m core run …` sends N identical requests and prints a table or one JSON object.

Exit status: 0 success; 1 with --expect-identical when the successful runs differ; 2 bad input or configuration;
3 when no run succeeded.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence

from core.backends import Backend, make_backend
from core.compare import Summary, compare
from core.config import BACKEND_CHOICES, LOCAL_MODES, load_settings
from core.errors import ReproError
from core.models import BatchPlan, RunRequest, RunResult
from core.runner import stream_runs

EXIT_OK, EXIT_DIFFERENT, EXIT_BAD_INPUT, EXIT_ALL_FAILED = 0, 1, 2, 3


def _seed(value: str) -> int | None:
    if value.lower() in ("none", "off", ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be a whole number or 'none', got {value!r}") from None


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
    run.add_argument("--backend", choices=BACKEND_CHOICES, default=None, help="default: REPRO_BACKEND or auto")
    run.add_argument("--local-mode", choices=LOCAL_MODES, default=None)
    run.add_argument("--concurrency", type=int, default=10)
    run.add_argument("--timeout", type=float, default=None, help="seconds per request (default REPRO_TIMEOUT or 60)")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    run.add_argument("--expect-identical", action="store_true",
                     help="exit with status 1 unless every successful run is byte-identical")
    return parser


def _row(result: RunResult, width: int) -> str:
    if result.ok:
        body = result.text.replace("\n", " ⏎ ")
        tokens = result.usage.completion_tokens if result.usage else "-"
        head = f"{result.index:>3}  {result.latency_ms:>8.0f} ms  {tokens!s:>6}  {result.system_fingerprint or '-':<20}  "
    else:
        body = f"ERROR {result.error.kind}: {result.error.message}"
        head = f"{result.index:>3}  {result.latency_ms:>8.0f} ms  {'':>6}  {'':<20}  "
    room = max(width - len(head), 20)
    return head + (body if len(body) <= room else body[: room - 1] + "…")


def _run(backend: Backend, request: RunRequest, plan: BatchPlan, live: bool) -> list[RunResult]:
    width = shutil.get_terminal_size((120, 20)).columns
    results = []
    for result in stream_runs(backend, request, plan):
        results.append(result)
        if live:
            print(_row(result, width), flush=True)
    return sorted(results, key=lambda r: r.index)


def command_run(args: argparse.Namespace) -> int:
    try:
        request = RunRequest(prompt=args.prompt, system=args.system, temperature=args.temperature, top_p=args.top_p,
                             max_tokens=args.max_tokens, seed=args.seed, logprobs=args.logprobs)
        plan = BatchPlan(runs=args.runs, concurrency=args.concurrency)
        settings = load_settings(backend=args.backend, local_mode=args.local_mode, timeout_s=args.timeout)
        backend = make_backend(settings)
    except ReproError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for note in settings.notes():
        print(f"note: {note}", file=sys.stderr)
    if not args.json:
        print(f"{backend.info.label} · temperature {request.temperature:g} · seed {request.seed} · "
              f"{plan.runs} runs, {plan.concurrency} at once")
        print(f"{'#':>3}  {'latency':>11}  {'tokens':>6}  {'fingerprint':<20}  text")
    results = _run(backend, request, plan, live=not args.json)
    summary = compare(results).summary
    if args.json:
        print(json.dumps({"request": request.to_dict(), "backend": backend.info.to_dict(),
                          "runs": [r.to_dict() for r in results], "summary": summary.to_dict()}, ensure_ascii=False))
    else:
        print(_summary_line(summary))
    if summary.successful == 0:
        return EXIT_ALL_FAILED
    if args.expect_identical and not summary.all_identical:
        return EXIT_DIFFERENT
    return EXIT_OK


def _summary_line(summary: Summary) -> str:
    if summary.note:
        return f"{summary.note} · {summary.errors} errors"
    verdict = "all identical" if summary.all_identical else f"first divergence at word {summary.first_divergence_word}"
    return (f"{summary.unique_outputs} unique of {summary.successful} successful · identical rate "
            f"{summary.identical_rate:.0%} · {verdict} · {summary.errors} errors")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return command_run(args)
