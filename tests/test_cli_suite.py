"""`python -m core suite|plan|baseline|check`, and the statistics and fork causes of `run`, as a user runs them: a
real process against the loopback server. With --concurrency 1 the server's scripted answers go out in request
order (prompt after prompt, run after run), so the scores come out exactly as scripted."""

from __future__ import annotations

import json

import pytest

from core.models import MAX_RUNS
from tests.test_cli import cli

SCRIPT = {  # prompt → the answers of runs 1, 2 and 3; every prompt expects 4
    "2+2?": ("4", "The answer is 4.", "4"),
    "1+3?": ("4", "4", "4"),
    "5-1?": ("4", "5", "5"),
}


def write_suite(path, prompts, **fields) -> str:
    path.write_text("".join(json.dumps({"prompt": prompt, **fields}) + "\n" for prompt in prompts))
    return path.name


def script(fake_server, answers: dict[str, tuple[str, ...]]) -> None:
    fake_server.answers.extend(answer for texts in answers.values() for answer in texts)


def test_a_suite_is_scored_exactly_as_scripted_and_saved_as_one_item(fake_server, azure_env, tmp_path):
    suite = write_suite(tmp_path / "sums.jsonl", SCRIPT, expected="4", extractor="number")
    script(fake_server, SCRIPT)
    done = cli("suite", suite, "--runs", "3", "--seed", "7", "--concurrency", "1", "--json", env=azure_env,
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    summary = data["summary"]
    assert [(p["tarr"], p["tara"], p["correct"], p["unique_outputs"]) for p in summary["prompts"]] == [
        (False, True, 3, 2), (True, True, 3, 1), (False, False, 1, 2)]
    assert [(summary[kind]["count"], summary[kind]["total"]) for kind in ("tarr", "tara")] == [(1, 3), (2, 3)]
    accuracy = summary["accuracy"]
    assert [(share["count"], share["total"]) for share in accuracy["per_run"]] == [(3, 3), (2, 3), (2, 3)]
    assert [(accuracy[k]["count"], accuracy[k]["total"]) for k in ("min", "mean", "max")] == [(2, 3), (7, 9), (3, 3)]
    assert {(r.body["seed"], r.body["temperature"]) for r in fake_server.received} == {(7, 0.0)}
    assert data["runs_saved"] == 9

    [row] = json.loads(cli("history", "list", "--json", env=azure_env, cwd=tmp_path).stdout)
    assert (row["id"], row["kind"], row["runs_planned"]) == (data["experiment_id"], "suite", 9)
    shown = json.loads(cli("history", "show", row["id"], "--json", env=azure_env, cwd=tmp_path).stdout)
    assert shown["summary"] == summary
    table = cli("history", "show", row["id"], env=azure_env, cwd=tmp_path).stdout
    assert table.count("\nprompt ") == 3 and summary["description"] in table
    (tmp_path / "suite.json").write_text(cli("history", "export", row["id"], env=azure_env, cwd=tmp_path).stdout)
    new_id = cli("history", "import", "suite.json", env=azure_env, cwd=tmp_path).stdout.strip()
    again = cli("history", "show", new_id, "--json", env=azure_env, cwd=tmp_path)
    assert again.returncode == 0 and new_id != row["id"] and json.loads(again.stdout)["summary"] == summary


def test_the_suite_table_has_a_row_per_prompt_and_the_overall_line(fake_server, azure_env, tmp_path):
    suite = write_suite(tmp_path / "sums.jsonl", SCRIPT, expected="4", extractor="number")
    script(fake_server, SCRIPT)
    done = cli("suite", suite, "--runs", "3", "--concurrency", "1", "--no-save", env=azure_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("azure gpt-test @ 127.0.0.1") and "sums.jsonl: 3 prompts × 3 runs" in lines[0]
    assert lines[1].split() == ["#", "ok", "outputs", "answers", "TARr", "TARa", "correct", "first", "fork", "prompt"]
    assert [line.split() for line in lines[2:5]] == [
        ["1", "3/3", "2", "1", "no", "yes", "3/3", "word", "1", "2+2?"],
        ["2", "3/3", "1", "1", "yes", "yes", "3/3", "-", "1+3?"],
        ["3", "3/3", "2", "2", "no", "no", "1/3", "word", "1", "5-1?"]]
    assert lines[5].startswith("TARr@3 1/3 = 33.3 % (95 %: ") and "accuracy across 3 runs: min 2/3" in lines[5]
    assert cli("history", "list", "--json", env=azure_env, cwd=tmp_path).stdout.strip() == "[]"


@pytest.mark.parametrize("content, args, message", [
    (None, [], "suite file gone.jsonl does not exist"),
    ('{"prompt": "2+2?"}\n{"prompt": 4}\n', [], "suite.jsonl line 2: prompt must be text"),
    ('{"prompt": "2+2?"}\n', ["--temperature", "3"], "temperature 3.0 is outside 0–2"),
    ('{"prompt": "2+2?"}\n', ["--seed", "soon"], "seed must be a whole number or 'none'"),
    ("".join(f'{{"prompt": "q{k}"}}\n' for k in range(21)), ["--runs", "100"], "2,100 requests; the limit is 2,000"),
])
def test_a_bad_suite_exits_2_naming_the_problem_and_sends_nothing(fake_server, azure_env, tmp_path, content, args,
                                                                   message):
    if content is not None:
        (tmp_path / "suite.jsonl").write_text(content)
    name = "suite.jsonl" if content is not None else "gone.jsonl"
    done = cli("suite", name, *args, env=azure_env, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert fake_server.received == []
    assert cli("history", "list", "--json", env=azure_env, cwd=tmp_path).stdout.strip() == "[]"


def test_a_suite_where_no_run_succeeds_exits_3(fake_server, azure_env, tmp_path):
    suite = write_suite(tmp_path / "sums.jsonl", SCRIPT)
    done = cli("suite", suite, "--runs", "2", "--json", env={**azure_env, "OPENAI_API_KEY": "bad-key-zzzzzzzzzz"},
               cwd=tmp_path)
    assert done.returncode == 3
    assert [p["successful"] for p in json.loads(done.stdout)["summary"]["prompts"]] == [0, 0, 0]
    assert "bad-key-zzzzzzzzzz" not in done.stdout + done.stderr


def test_plan_says_how_many_runs_and_when_the_instance_allows_fewer(azure_env, tmp_path):
    done = cli("plan", "--below", "0.01", env=azure_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "299 runs, all identical, show with 95 % confidence that fewer than 1 % of requests diverge; one differing run "
        "and the claim needs more.",
        "That is over this instance's limit of 50 runs in one experiment (REPRO_MAX_RUNS)."]
    within = json.loads(cli("plan", "--below", "0.1", "--json", env=azure_env, cwd=tmp_path).stdout)
    assert (within["runs"], within["max_runs"], within["over_limit"]) == (29, 50, False)
    lowered = json.loads(cli("plan", "--below", "0.1", "--confidence", "0.99", "--json",
                             env={**azure_env, "REPRO_MAX_RUNS": "20"}, cwd=tmp_path).stdout)
    assert (lowered["runs"], lowered["max_runs"], lowered["over_limit"]) == (44, 20, True)
    refused = cli("plan", "--below", "2", env=azure_env, cwd=tmp_path)
    assert refused.returncode == 2 and "below must be a number between 0 and 1" in refused.stderr


def test_run_reports_statistics_and_fork_causes(fake_server, azure_env, tmp_path):
    seeded = cli("run", "--prompt", "p", "--seed", "42", "--runs", "3", "--json", env=azure_env, cwd=tmp_path)
    data = json.loads(seeded.stdout)
    statistics = data["statistics"]
    assert (statistics["diverged"], statistics["pairwise_agreement"], statistics["divergence"]["method"]) == (
        0, 1.0, "exact one-sided")
    assert statistics["description"] == "0 of 3 diverged → at most 63.2 % of requests diverge (95 %)"
    assert data["fork_causes"] == []
    shown = json.loads(cli("history", "show", data["experiment"]["id"], "--json", env=azure_env, cwd=tmp_path).stdout)
    assert (shown["statistics"], shown["fork_causes"]) == (statistics, [])

    fake_server.answers.extend(["The panda slept.", "The panda ate."])
    forked = cli("run", "--prompt", "p", "--runs", "2", "--concurrency", "1", "--json", env=azure_env, cwd=tmp_path)
    [cause] = json.loads(forked.stdout)["fork_causes"]
    assert (cause["cause"], cause["runs"], cause["reference"]) == ("sampling", [1], 0)

    fake_server.answers.extend(["The panda slept.", "The panda ate."])
    table = cli("run", "--prompt", "p", "--runs", "2", "--concurrency", "1", env=azure_env, cwd=tmp_path).stdout
    lines = table.splitlines()
    summary = next(k for k, line in enumerate(lines) if line.startswith("2 unique of 2 successful"))
    assert lines[summary + 1] == "1 of 2 diverged → 9.5–90.5 % of requests diverge (95 %)"
    assert lines[summary + 2] == ("why it forked: sampling: no seed at temperature 0.1: every run draws its own "
                                  "tokens")


def drift_kinds(report: dict) -> list[str]:
    return [d["kind"] for item in report["items"] for d in item["drifts"]] + [d["kind"] for d in report["drifts"]]


def test_a_contract_from_an_experiment_holds_then_drifts(fake_server, azure_env, tmp_path):
    saved = cli("run", "--prompt", "Name a capital.", "--seed", "7", "--runs", "3", "--json", env=azure_env,
                cwd=tmp_path)
    experiment_id = json.loads(saved.stdout)["experiment"]["id"]
    made = cli("baseline", "save", experiment_id, "-o", "contract.json", env=azure_env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("contract written to contract.json: 1 request(s) on azure gpt-test")
    contract = json.loads((tmp_path / "contract.json").read_text())
    assert (contract["format"], contract["tolerance"], contract["items"][0]["fingerprints"]) == (
        "repro-lab-contract", "exact", ["fp_fake_1"])

    holds = cli("check", "contract.json", "--json", env=azure_env, cwd=tmp_path)
    assert holds.returncode == 0, holds.stderr
    assert (json.loads(holds.stdout)["exit_code"], drift_kinds(json.loads(holds.stdout))) == (0, [])
    table = cli("check", "contract.json", env=azure_env, cwd=tmp_path)
    assert table.returncode == 0 and table.stdout.splitlines()[-1] == (
        "contract holds: 1 request(s), 3 runs, tolerance exact")

    fake_server.answers.extend(["Paris."] * 2)
    answers = cli("check", "contract.json", "--runs", "2", "--json", env=azure_env, cwd=tmp_path)
    assert answers.returncode == 1 and drift_kinds(json.loads(answers.stdout)) == ["answers", "agreement"]

    fake_server.fingerprint = "fp_fake_2"
    fingerprint = cli("check", "contract.json", env=azure_env, cwd=tmp_path)
    assert fingerprint.returncode == 1
    assert "  Name a capital.: fingerprint: new fingerprint fp_fake_2 (the baseline saw fp_fake_1)" in (
        fingerprint.stdout.splitlines())

    failing = cli("check", "contract.json", "--json", env={**azure_env, "OPENAI_API_KEY": "bad-key-zzzzzzzzzz"},
                  cwd=tmp_path)
    assert failing.returncode == 3 and drift_kinds(json.loads(failing.stdout)) == ["unanswered"]
    assert "bad-key-zzzzzzzzzz" not in failing.stdout + failing.stderr


def test_a_contract_from_a_suite_run_now_is_checked_on_answers(fake_server, azure_env, tmp_path):
    suite = write_suite(tmp_path / "sums.jsonl", ["2+2?", "3+3?"], extractor="number")
    fake_server.answers.extend(["It is 4.", "4", "6", "The answer is 6."])
    made = cli("baseline", "save", "--suite", suite, "--tolerance", "answer", "--runs", "2", "--concurrency", "1",
               "-o", "contract.json", env=azure_env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert [line for line in made.stdout.splitlines() if line.endswith("runs agree)")] == [
        "  2+2?: '4' (2 of 2 runs agree)", "  3+3?: '6' (2 of 2 runs agree)"]
    [row] = json.loads(cli("history", "list", "--json", env=azure_env, cwd=tmp_path).stdout)
    assert row["kind"] == "suite" and f"saved as {row['id']}" in made.stdout

    fake_server.answers.extend(["4", "4.0", "6", "six is 6"])
    holds = cli("check", "contract.json", "--concurrency", "1", env=azure_env, cwd=tmp_path)
    assert holds.returncode == 0, holds.stdout + holds.stderr

    fake_server.answers.extend(["4", "4", "7", "7"])
    drifted = cli("check", "contract.json", "--concurrency", "1", "--json", env=azure_env, cwd=tmp_path)
    assert drifted.returncode == 1
    report = json.loads(drifted.stdout)
    assert [(item["label"], [d["kind"] for d in item["drifts"]]) for item in report["items"]] == [
        ("2+2?", []), ("3+3?", ["answers", "agreement"])]


@pytest.mark.parametrize("args, message", [
    (["baseline", "save", "nope", "-o", "c.json"], "There is no experiment 'nope'"),
    (["baseline", "save", "nope", "-o", "c.json", "--tolerance", "close"], "tolerance 'close' is not one of"),
    (["baseline", "save", "--suite", "s.jsonl", "-o", "c.json", "--extractor", "word"], "extractor 'word' is not"),
    (["baseline", "save", "-o", "c.json"], "one of the arguments experiment_id --suite is required"),
    (["check", "missing.json"], "contract file missing.json cannot be read"),
    (["check", "bad.json"], "The file is not JSON"),
    (["check", "contract.json", "--runs", "0"], f"runs must be a whole number from 1 to {MAX_RUNS}"),
])
def test_contract_mistakes_exit_2_and_send_nothing(fake_server, azure_env, tmp_path, args, message):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "s.jsonl").write_text('{"prompt": "2+2?"}\n')
    (tmp_path / "contract.json").write_text(json.dumps({
        "format": "repro-lab-contract", "version": 1, "created_at": "2026-01-01T00:00:00+00:00",
        "backend": {"provider": "azure", "model": "gpt-test"}, "tolerance": "exact",
        "items": [{"label": "p", "request": {"prompt": "p"}, "extractor": None, "runs": 2, "answered": 2,
                   "agreeing": 2, "expected": "x", "fingerprints": []}]}))
    done = cli(*args, env=azure_env, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert fake_server.received == []
    assert not (tmp_path / "c.json").exists()
