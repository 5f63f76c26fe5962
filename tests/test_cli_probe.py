"""`python -m core probe` as a user runs it: a real process against the loopback server."""

from __future__ import annotations

import json

from core.history import HistoryLocation, open_store
from tests.test_cli import cli


def test_json_is_strict_the_card_is_saved_and_an_ignored_seed_fails_the_check(fake_server, azure_env, tmp_path):
    fake_server.ignores_seed = True
    fake_server.reasoning = fake_server.rejects_max_tokens = True
    done = cli("probe", "--runs", "2", "--ladder", "0,2", "--max-tokens", "4", "--yes", "--json",
               env=azure_env, cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # for CI: the seed is not honoured
    data = json.loads(done.stdout, parse_constant=refuse)
    assert data["problems"] == ["the seed is ignored", "not reproducible even without load (K=0: 2 unique of 2)"]
    assert data["plan"] == {"runs": 2, "ladder": [0, 2], "requests": 7 + 5 + 12 + 2 + 4}
    found = {p["parameter"]: p["status"] for p in data["report"]["parameters"]}
    assert [found[name] for name in ("temperature", "max_tokens", "max_completion_tokens")] == [
        "rejected", "rejected", "accepted"]
    assert "probe azure gpt-test" in done.stderr and "30 requests" in done.stderr
    [row] = open_store(HistoryLocation(sqlite_path=str(tmp_path / "history.sqlite3"))).list()
    assert (row.id, row.kind) == (data["probe_id"], "probe")
    assert fake_server.api_key not in done.stdout + done.stderr


def test_without_yes_or_a_terminal_nothing_is_sent(fake_server, azure_env, tmp_path):
    done = cli("probe", "--runs", "2", env=azure_env, cwd=tmp_path)
    assert done.returncode == 2
    assert "add --yes" in done.stderr
    assert fake_server.received == []


def test_on_the_embedded_engine_the_default_ladder_is_the_local_one_and_both_variants_are_printed(tmp_path):
    done = cli("probe", "--backend", "local", "--runs", "2", "--max-tokens", "2", "--yes", env={}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert ("69 requests (24 for parameters, seed and cold vs warm; 1 of R alone, then load ladder K=0,2,4,8: "
            "2 + 4 + 6 + 10 for each of isolated cells and shared cells)") in done.stderr
    rungs = [tuple(line.split()[:3]) for line in done.stdout.splitlines()
             if line.startswith(("isolated cells ", "shared cells "))]
    assert rungs == [(variant, "cells", k) for variant in ("isolated", "shared") for k in ("0", "2", "4", "8")]


def refuse(name: str):
    raise AssertionError(f"--json wrote {name}, which strict JSON does not allow")
