"""Readiness for a reverse proxy or systemd: the settings read, a backend is usable as configured, the history and
(with DATABASE_URL) the shared limits' database answer. Streamlit's /_stcore/health says only that the process is up.

`python -m core health` prints the checks and exits 0 when ready, 2 when not; `--serve 127.0.0.1:8601` answers
GET /ready with 200 or 503 and the checks as JSON, for a proxy's active health check. No request is sent to a backend.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from core.errors import ReproError
from core.history import open_store
from core.settings import load_settings, read_history, read_limits, read_sources
from core.shared.pool import shared_database
from core.shared.slots import SharedSlots

SECRETS_PATH = ".streamlit/secrets.toml"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, "checks": [asdict(check) for check in self.checks]}


def _check(name: str, probe: Callable[[], str]) -> Check:
    """`probe()`'s description when it passes; its error (safe to show, as every ReproError is) when not."""
    try:
        return Check(name, True, probe())
    except (ReproError, OSError) as exc:
        return Check(name, False, str(exc))


def readiness(secrets: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Readiness:
    """Every check, each one independent of the others' failures."""
    source = read_sources(secrets, environ)
    location = read_history(source)

    def backend() -> str:
        return f"{load_settings(secrets=secrets, environ=environ).resolve()} is configured"

    def limits() -> str:
        found = read_limits(source)
        return f"{found.requests_per_hour} requests per hour per visitor, {found.global_concurrency} in flight"

    def history() -> str:
        if location.database_url:
            shared_database(location.database_url).ping()
            return f"PostgreSQL at {location.masked_url} answers"
        open_store(location)
        return "SQLite (this replica's own file; quotas and caps hold for this process only)"

    def shared_cap() -> str:
        slots = SharedSlots(shared_database(location.database_url), read_limits(source).global_concurrency)
        return f"{slots.in_flight()} of {slots.cap} slots in flight across replicas"

    checks = [_check("backend", backend), _check("limits", limits), _check("history", history)]
    if location.database_url and checks[1].ok and checks[2].ok:
        checks.append(_check("shared cap", shared_cap))
    return Readiness(tuple(checks))


def read_secrets(path: str | Path) -> dict[str, Any]:
    """Streamlit's secrets file, so the check sees what the app sees; empty when there is none."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def add_parsers(commands: argparse._SubParsersAction) -> None:
    health = commands.add_parser("health", help="whether this instance is ready: settings, backend, databases")
    health.add_argument("--json", action="store_true", help="one JSON object on stdout")
    health.add_argument("--secrets", default=SECRETS_PATH, help=f"Streamlit's secrets file (default {SECRETS_PATH})")
    health.add_argument("--serve", metavar="HOST:PORT",
                        help="answer GET /ready with 200 or 503 on this address instead of checking once")
    health.set_defaults(handler=command_health)


def command_health(args: argparse.Namespace) -> int:
    secrets = read_secrets(args.secrets)
    if args.serve:
        host, _, port = args.serve.rpartition(":")
        serve(host or "127.0.0.1", int(port), lambda: readiness(secrets))
        return 0
    found = readiness(secrets)
    if args.json:
        print(json.dumps(found.to_dict(), ensure_ascii=False))
    else:
        for check in found.checks:
            print(f"{'ok' if check.ok else 'FAILED':6} {check.name}: {check.detail}")
    return 0 if found.ready else 2


def serve(host: str, port: int, check: Callable[[], Readiness]) -> None:
    """GET /ready: 200 when ready, 503 when not, the checks as JSON; anything else 404. Runs until interrupted."""

    class Ready(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            if self.path != "/ready":
                self.send_error(404)
                return
            found = check()
            body = json.dumps(found.to_dict(), ensure_ascii=False).encode()
            self.send_response(200 if found.ready else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            """Quiet: a proxy asks every few seconds."""

    with ThreadingHTTPServer((host, port), Ready) as server:
        server.serve_forever()
