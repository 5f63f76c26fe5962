"""The options the commands share, each group defined once as a parent parser, and what they name: the settings,
the backend and the history store.

A group is built afresh for every command that takes it: argparse shares a parent's actions with each child, so
one command's default would otherwise change another's.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from core.backends import Backend, make_backend
from core.backends.local import MODES
from core.cli.output import note
from core.errors import InvalidRequest
from core.history import Store, open_store
from core.models import parse_seed
from core.runner import Fanout
from core.settings import Settings, backend_choices, load_settings, read_history, read_sources


def seed(text: str) -> int | None:
    """An argparse type: a seed as core.models.parse_seed reads it, refused with exit 2 before anything runs."""
    try:
        return parse_seed(text)
    except InvalidRequest as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`, refused with exit 2 before anything runs."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r:.40}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high:,}, got {text:.40}")
        return value
    return parse


def _group() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def prompt_options() -> argparse.ArgumentParser:
    group = _group()
    group.add_argument("--prompt", required=True)
    group.add_argument("--system", default="")
    return group


def sampling_options(temperature: float) -> argparse.ArgumentParser:
    """One temperature and one seed (a sweep takes lists of them instead)."""
    group = _group()
    group.add_argument("--temperature", type=float, default=temperature, help=f"default {temperature:g}")
    group.add_argument("--seed", type=seed, default=None, help="a whole number, or 'none' (the default)")
    return group


def decoding_options() -> argparse.ArgumentParser:
    group = _group()
    group.add_argument("--top-p", type=float, default=1.0)
    group.add_argument("--max-tokens", type=int, default=256)
    return group


def backend_options(runs: int | None = 5, runs_help: str | None = None) -> argparse.ArgumentParser:
    """How many runs, who answers them and how many are in flight at once."""
    group = _group()
    group.add_argument("--runs", type=int, default=runs, help=runs_help)
    group.add_argument("--backend", choices=backend_choices(), default=None, help="default: REPRO_BACKEND or auto")
    group.add_argument("--local-mode", choices=tuple(MODES), default=None)
    group.add_argument("--concurrency", type=int, default=10)
    group.add_argument("--timeout", type=float, default=None, help="seconds per request (default REPRO_TIMEOUT or 60)")
    return group


def json_option() -> argparse.ArgumentParser:
    group = _group()
    group.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return group


def save_option() -> argparse.ArgumentParser:
    group = _group()
    group.add_argument("--no-save", action="store_true", help="do not keep this in the history")
    return group


def settings_from(args: argparse.Namespace, backend: str | None = None) -> Settings:
    """The settings with the backend options of the command line over them (`backend` over --backend)."""
    return load_settings(backend=backend or args.backend, local_mode=args.local_mode, timeout_s=args.timeout)


def backend_from(settings: Settings) -> Backend:
    """The backend the settings choose; a note on stderr for each half-configured provider that auto skipped."""
    backend = make_backend(settings)
    for line in settings.notes():
        note(line)
    return backend


def fanout_from(settings: Settings) -> Fanout:
    """The command's fan-out, capped at the limits' REPRO_GLOBAL_CONCURRENCY; close it (with) when the command ends."""
    return Fanout(settings.limits.global_concurrency)


def store_from(args: argparse.Namespace, settings: Settings) -> Store | None:
    """The history the settings name, or None with --no-save."""
    return None if args.no_save else open_store(settings.history)


def history_store() -> Store:
    """The history, for the commands that need nothing else of the settings (a provider set up wrong does not
    stop them)."""
    return open_store(read_history(read_sources()))
