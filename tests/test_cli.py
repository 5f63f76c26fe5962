"""`python -m core run` as a user runs it: a real process against the loopback server."""

from __future__ import annotations

import json
import math
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from core.models import BackendInfo, RunRequest, RunResult
from core.history import MAX_IMPORT_BYTES
from core.history.sqlite import SQLiteStore
from tests.environment import clean_environment
from tests.test_import_hostile import HOSTILE
from tests.test_store import unused_port

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    clean = clean_environment("DATABASE_URL")
    history = {"REPRO_HISTORY_PATH": str(cwd / "history.sqlite3")}
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**clean, **history, "COLUMNS": "160", **env,  # tables unwrapped
                                            "PYTHONPATH": str(ROOT)})


def test_json_output_has_request_backend_runs_and_summary(fake_server, azure_env, tmp_path):
    done = cli("run", "--prompt", "Create a story about red panda.", "--seed", "42", "--runs", "3", "--json",
               env=azure_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["request"]["seed"] == 42
    assert data["backend"] == {"provider": "azure", "model": "gpt-test", "endpoint_host": fake_server.url[7:],
                               "api_version": "2024-06-01", "mode": None}
    assert [run["index"] for run in data["runs"]] == [0, 1, 2]
    assert {"text", "error", "system_fingerprint", "latency_ms", "finish_reason", "usage"} <= set(data["runs"][0])
    assert data["summary"]["unique_outputs"] == 1
    assert data["summary"]["all_identical"] is True
    assert fake_server.api_key not in done.stdout + done.stderr


def test_expect_identical_fails_when_runs_differ(fake_server, azure_env, tmp_path):
    fake_server.answers.extend(["The panda slept.", "The panda ate."])
    done = cli("run", "--prompt", "p", "--runs", "2", "--concurrency", "1", "--expect-identical",
               env=azure_env, cwd=tmp_path)
    assert done.returncode == 1
    assert "2 unique of 2 successful" in done.stdout
    assert "first divergence at word 3" in done.stdout  # counted from 1, as in the app


def test_readable_table_shows_each_run_and_errors(fake_server, azure_env, tmp_path):
    fake_server.faults.append("404")
    done = cli("run", "--prompt", "p", "--runs", "2", "--concurrency", "1", env=azure_env, cwd=tmp_path)
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0].startswith("azure gpt-test @ 127.0.0.1")
    assert any("ERROR not_found" in line for line in lines)
    assert any("fp_fake_1" in line for line in lines)


def test_all_runs_failing_exits_3_without_the_key(fake_server, azure_env, tmp_path):
    env = {**azure_env, "OPENAI_API_KEY": "bad-key-zzzzzzzzzz"}
    done = cli("run", "--prompt", "p", "--runs", "2", "--json", env=env, cwd=tmp_path)
    assert done.returncode == 3
    assert "bad-key-zzzzzzzzzz" not in done.stdout + done.stderr
    assert json.loads(done.stdout)["summary"]["errors"] == 2


@pytest.mark.parametrize("args, message", [
    (["--prompt", " "], "prompt is empty"),
    (["--prompt", "p", "--temperature", "3"], "outside 0–2"),
    (["--prompt", "p", "--runs", "1001"], "runs must be a whole number from 1 to 1000, got 1001"),
    (["--prompt", "p", "--runs", "1000", "--backend", "compatible"], "COMPATIBLE_BASE_URL"),  # 1,000 runs pass
    (["--prompt", "p", "--seed", "99999999999999999999"], "signed 64-bit"),
    (["--prompt", "p", "--backend", "compatible"], "COMPATIBLE_BASE_URL"),
])
def test_bad_input_exits_2_and_sends_nothing(fake_server, azure_env, tmp_path, args, message):
    done = cli("run", *args, env=azure_env, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert fake_server.received == []


def test_dotenv_in_the_working_directory_configures_azure(fake_server, azure_env, tmp_path):
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in azure_env.items()))
    done = cli("run", "--prompt", "p", "--runs", "1", "--json", env={}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["backend"]["provider"] == "azure"
    assert len(fake_server.received) == 1


def test_runs_are_saved_and_the_history_lists_shows_exports_and_imports_them(fake_server, azure_env, tmp_path):
    done = cli("run", "--prompt", "Create a story about red panda.", "--seed", "42", "--runs", "3", "--json",
               env=azure_env, cwd=tmp_path)
    saved = json.loads(done.stdout)["experiment"]
    assert saved["complete"] is True
    listing = json.loads(cli("history", "list", "--json", env=azure_env, cwd=tmp_path).stdout)
    assert [(row["id"], row["runs_done"], row["unique_outputs"], row["seed"]) for row in listing] == [
        (saved["id"], 3, 1, 42)]
    shown = json.loads(cli("history", "show", saved["id"], "--json", env=azure_env, cwd=tmp_path).stdout)
    assert shown["summary"]["all_identical"] is True and shown["experiment"]["id"] == saved["id"]
    exported = cli("history", "export", saved["id"], env=azure_env, cwd=tmp_path).stdout
    (tmp_path / "export.json").write_text(exported)
    csv_lines = cli("history", "export", saved["id"], "--format", "csv", env=azure_env, cwd=tmp_path).stdout
    assert len(csv_lines.strip().splitlines()) == 4
    new_id = cli("history", "import", "export.json", env=azure_env, cwd=tmp_path).stdout.strip()
    assert new_id and new_id != saved["id"]
    table = cli("history", "list", env=azure_env, cwd=tmp_path).stdout
    assert saved["id"] in table and new_id in table
    assert fake_server.api_key not in exported + csv_lines + table
    assert fake_server.api_key.encode() not in (tmp_path / "history.sqlite3").read_bytes()


def test_no_save_keeps_the_history_empty(fake_server, azure_env, tmp_path):
    cli("run", "--prompt", "p", "--runs", "1", "--no-save", env=azure_env, cwd=tmp_path)
    assert cli("history", "list", "--json", env=azure_env, cwd=tmp_path).stdout.strip() == "[]"


@pytest.mark.parametrize("args, message", [
    (["history", "show", "nope"], "There is no experiment 'nope'"),
    (["history", "import", "missing.json"], "missing.json"),
])
def test_history_errors_exit_2(azure_env, tmp_path, args, message):
    done = cli(*args, env=azure_env, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr


def test_importing_a_file_that_is_not_an_export_names_the_problem(azure_env, tmp_path):
    (tmp_path / "bad.json").write_text('{"format": "something-else"}')
    done = cli("history", "import", "bad.json", env=azure_env, cwd=tmp_path)
    assert done.returncode == 2
    assert "error:" in done.stderr and "format" in done.stderr


def test_sweep_prints_a_row_per_cell_and_saves_one_item(fake_server, azure_env, tmp_path):
    done = cli("sweep", "--prompt", "Create a story about red panda.", "--temperatures", "0,0.7,1.2",
               "--seeds", "42,none", "--runs", "3", "--json", env=azure_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [(c["temperature"], c["seed"], len(c["runs"])) for c in data["cells"]] == [
        (0.0, 42, 3), (0.0, None, 3), (0.7, 42, 3), (0.7, None, 3), (1.2, 42, 3), (1.2, None, 3)]
    assert [s["unique_outputs"] for s in data["summaries"]] == [1, 3, 1, 3, 1, 3]
    assert {(r.body["temperature"], r.body.get("seed")) for r in fake_server.received} == {
        (0.0, None), (0.0, 42), (0.7, None), (0.7, 42), (1.2, None), (1.2, 42)}
    [row] = json.loads(cli("history", "list", "--json", env=azure_env, cwd=tmp_path).stdout)
    assert (row["id"], row["kind"]) == (data["experiment_id"], "sweep")
    table = cli("sweep", "--prompt", "p", "--temperatures", "0", "--seeds", "7", "--runs", "2", "--no-save",
                env=azure_env, cwd=tmp_path).stdout
    assert "T=0 · seed 7" in table and "100%" in table


def test_a_bad_sweep_is_refused_before_sending(fake_server, azure_env, tmp_path):
    done = cli("sweep", "--prompt", "p", "--temperatures", "0,2.5", env=azure_env, cwd=tmp_path)
    assert done.returncode == 2
    assert "temperatures" in done.stderr and "2.5" in done.stderr
    assert fake_server.received == []


def test_a_saved_sweep_is_shown_cell_by_cell_and_exported_and_imported_whole(fake_server, azure_env, tmp_path):
    done = cli("sweep", "--prompt", "p", "--temperatures", "0,1", "--seeds", "7", "--runs", "2", "--json",
               env=azure_env, cwd=tmp_path)
    sweep_id = json.loads(done.stdout)["experiment_id"]
    listing = cli("history", "list", env=azure_env, cwd=tmp_path).stdout
    assert f"{sweep_id}" in listing and "sweep of 4 requests" in listing
    shown = cli("history", "show", sweep_id, env=azure_env, cwd=tmp_path).stdout
    assert "T=0 · seed 7" in shown and "T=1 · seed 7" in shown and shown.count("\ncell ") == 2
    (tmp_path / "sweep.json").write_text(cli("history", "export", sweep_id, env=azure_env, cwd=tmp_path).stdout)
    new_id = cli("history", "import", "sweep.json", env=azure_env, cwd=tmp_path).stdout.strip()
    assert new_id != sweep_id
    again = cli("history", "show", new_id, env=azure_env, cwd=tmp_path).stdout
    assert again.count("\ncell ") == 2 and "T=1 · seed 7" in again
    cells = [json.loads(cli("history", "show", item, "--json", env=azure_env, cwd=tmp_path).stdout)["cells"]
             for item in (sweep_id, new_id)]
    assert cells[0] == cells[1]


def test_hostile_imports_exit_2_with_one_line_naming_the_field_and_save_nothing(azure_env, tmp_path):
    sample = ("nan-latency.json", "token-count-2-63.json", "lone-surrogate-text.json", "not-utf8.json")
    files = {name: (HOSTILE / name).read_bytes() for name in sample}  # tests/test_import_hostile.py reads them all
    files["deep.json"] = b'{"format": "repro-lab-experiment", "version": 1, "experiment": ' + b"[" * 100_000 + b"}"
    files["huge.json"] = b" " * (MAX_IMPORT_BYTES + 10)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        done = cli("history", "import", name, env=azure_env, cwd=tmp_path)
        assert done.returncode == 2, (name, done.stderr)
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, (name, done.stderr)
        assert "Traceback" not in done.stderr and done.stdout == ""
    assert "experiment.runs[0].usage.total_tokens must be a whole number" in cli(
        "history", "import", "token-count-2-63.json", env=azure_env, cwd=tmp_path).stderr
    assert cli("history", "list", "--json", env=azure_env, cwd=tmp_path).stdout.strip() == "[]"


PASSWORD = "hunter2%zz w0rd@s3cr3t"


@pytest.mark.parametrize("command", [["history", "list"], ["run", "--prompt", "p", "--runs", "1"]])
@pytest.mark.parametrize("host", ["[bad", "127.0.0.1:{port}"])
def test_a_database_password_never_reaches_the_terminal(fake_server, azure_env, tmp_path, command, host):
    for written in (PASSWORD, quote(PASSWORD, safe="")):
        url = f"postgresql://alice:{written}@{host.format(port=unused_port())}/app"
        done = cli(*command, env={**azure_env, "DATABASE_URL": url}, cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
        assert "postgresql://alice:***@" in done.stderr
        for piece in (PASSWORD, written, "hunter2", "s3cr3t", "w0rd"):
            assert piece not in done.stdout + done.stderr
    assert fake_server.received == []


def test_the_bad_ipv6_url_of_the_issue_is_a_one_line_error(azure_env, tmp_path):
    done = cli("history", "list", env={**azure_env, "DATABASE_URL": "postgresql://u:p@[bad/db"}, cwd=tmp_path)
    assert (done.returncode, done.stderr) == (2, 'error: DATABASE_URL postgresql://u:***@[bad/db cannot be read: end '
                                                 'of string reached when looking for matching "]" in IPv6 host address '
                                                 'in URI: "postgresql://u@[bad/db"\n')


@pytest.mark.parametrize("path", ["{tmp}/a-file/history.sqlite3", "/proc/repro-lab/history.sqlite3",
                                  "/proc/history.sqlite3"])
@pytest.mark.parametrize("command", [["history", "list"], ["run", "--prompt", "p", "--runs", "1"]])
def test_a_history_path_that_cannot_be_used_is_a_one_line_error(fake_server, azure_env, tmp_path, path, command):
    (tmp_path / "a-file").write_text("")
    done = cli(*command, env={**azure_env, "REPRO_HISTORY_PATH": path.format(tmp=tmp_path)}, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "REPRO_HISTORY_PATH" in done.stderr or "unable to open database file" in done.stderr
    assert fake_server.received == []


@pytest.mark.parametrize("limit", ["99999999999999999999999", "0"])
def test_history_list_refuses_a_limit_out_of_range(azure_env, tmp_path, limit):
    done = cli("history", "list", "--limit", limit, env=azure_env, cwd=tmp_path)
    assert done.returncode == 2
    assert "argument --limit: must be " in done.stderr and "Traceback" not in done.stderr


def test_ctrl_c_during_a_run_says_how_many_runs_were_kept(fake_server, azure_env, tmp_path):
    fake_server.latency_s = 0.4
    clean = clean_environment("DATABASE_URL")
    process = subprocess.Popen([sys.executable, "-m", "core", "run", "--prompt", "p", "--runs", "10",
                                "--concurrency", "2"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**clean, **azure_env, "REPRO_HISTORY_PATH": str(tmp_path / "h.sqlite3"),
                                               "PYTHONPATH": str(ROOT)})
    try:
        lines = [process.stdout.readline() for _ in range(4)]  # the header's two lines, then two runs
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=30)
    finally:
        process.kill()
    assert lines[2].strip() and process.returncode == 130, errors
    assert "Traceback" not in errors
    found = re.fullmatch(r"interrupted: (\d+) of 10 runs kept as (\w+) \(incomplete\)\n", errors)
    assert found, errors
    kept, experiment_id = int(found[1]), found[2]
    assert 2 <= kept < 10
    experiment = SQLiteStore(tmp_path / "h.sqlite3").get(experiment_id)
    assert (len(experiment.runs), experiment.complete) == (kept, False)


def fill_after(path: Path, runs: int) -> None:
    """Make the history at `path` refuse every run after the first `runs`, as a full disk would."""
    SQLiteStore(path)
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TRIGGER disk_full BEFORE INSERT ON runs WHEN (SELECT COUNT(*) FROM runs) >= {runs} "
                     "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")


def test_a_history_that_fills_up_says_exactly_how_many_runs_it_kept(fake_server, azure_env, tmp_path):
    fill_after(tmp_path / "history.sqlite3", 3)
    done = cli("run", "--prompt", "p", "--runs", "20", "--concurrency", "4", env=azure_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = re.search(r"^saved (\d) of 20 runs as (\w+); the rest were not saved: The history database failed: "
                      r"IntegrityError: database or disk is full$", done.stdout, re.MULTILINE)
    assert found, done.stdout
    assert "saved as" not in done.stdout
    # Runs that arrive together are written together, so the group that overflowed is kept whole or not at all.
    assert len(SQLiteStore(tmp_path / "history.sqlite3").get(found[2]).runs) == int(found[1]) <= 3

    as_json = cli("run", "--prompt", "p", "--runs", "5", "--json", env=azure_env, cwd=tmp_path)
    experiment = json.loads(as_json.stdout)["experiment"]
    kept = experiment["runs_saved"]  # the room the first batch left, if a whole group fitted in it
    assert kept <= 3 - int(found[1]) and not experiment["complete"]
    assert as_json.stderr == (f"note: saved {kept} of 5 runs as {experiment['id']}; the rest were not saved: The "
                              "history database failed: IntegrityError: database or disk is full\n")


def test_a_sweep_that_fills_the_history_says_so_too(fake_server, azure_env, tmp_path):
    fill_after(tmp_path / "history.sqlite3", 5)
    done = cli("sweep", "--prompt", "p", "--temperatures", "0,1", "--seeds", "7", "--runs", "4",
               env=azure_env, cwd=tmp_path)
    found = re.search(r"^saved (\d) of 8 runs as (\w+); the rest were not saved: ", done.stdout, re.MULTILINE)
    assert found, done.stdout
    cells = SQLiteStore(tmp_path / "history.sqlite3").children(found[2])
    assert sum(len(cell.runs) for cell in cells) == int(found[1]) <= 5


def no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


def test_json_output_is_strict_even_for_an_imported_infinite_latency(azure_env, tmp_path):
    store = SQLiteStore(tmp_path / "history.sqlite3")
    experiment_id = store.create(RunRequest(prompt="p"), BackendInfo("compatible", "m"), 2)
    for index, latency in enumerate((math.inf, -math.inf)):
        store.add_run(experiment_id, RunResult(index=index, latency_ms=latency, text="a"))
    shown = cli("history", "show", experiment_id, "--json", env=azure_env, cwd=tmp_path)
    data = json.loads(shown.stdout, parse_constant=no_constants)
    assert [run["latency_ms"] for run in data["runs"]] == [None, None]
    exported = cli("history", "export", experiment_id, env=azure_env, cwd=tmp_path).stdout
    assert [run["latency_ms"] for run in json.loads(exported, parse_constant=no_constants)["experiment"]["runs"]] == [
        None, None]
