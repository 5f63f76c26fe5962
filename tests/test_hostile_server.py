"""A hostile chat server, through the real SDK path and the CLI: it echoes the key, hides it behind escapes, sends
formulas, impossible numbers and broken text. Every run still ends as a result; no secret is kept or shown."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from core.errors import redact
from core.models import RunRequest
from core.settings import load_settings
from tests.fakeserver import ABSURD_USAGE, BAD_TEXT, FORMULA_FIELDS, FORMULA_TEXTS
from tests.test_cli import cli
from tests.test_runner_http import run

# Characters that URL-encoding and JSON escaping change, so each echoed form differs from the key as written.
KEY = "sk-Hostile/Key+With=Chars_0123456789"
KEY_FORMS = (KEY, quote(KEY, safe=""), quote(KEY, safe="").replace("%2F", "%2f"), KEY.replace("/", "\\/"),
             "".join(f"\\u{ord(char):04x}" for char in KEY))


@pytest.fixture
def hostile_env(fake_server, azure_env):
    fake_server.api_key = KEY
    return {**azure_env, "OPENAI_API_KEY": KEY}


def settings_for(env):
    return load_settings(environ=env, dotenv_path=None)


def assert_no_key(text: str) -> None:
    found = [form for form in KEY_FORMS if form in text]
    assert not found, f"the key leaked as {found}"


@pytest.mark.parametrize("form", KEY_FORMS + (quote(KEY, safe="+"),))
def test_redact_replaces_the_key_as_written_encoded_or_escaped(form):
    assert redact(f"id={form}&x=1", [KEY]) == "id=***&x=1"
    assert redact("abc and abc", ["abc"]) == "abc and abc"  # too short to be a secret: left alone
    assert redact("Test connection", ["test"]) == "Test connection"  # the letters of a secret keep their case


def test_a_key_echoed_in_every_field_is_scrubbed_from_every_field(fake_server, hostile_env):
    fake_server.hostile = {"echo_key"}
    results = run(settings_for(hostile_env), runs=3)
    for result in results:
        assert result.ok, result.error
        assert (result.request_id, result.system_fingerprint, result.model, result.finish_reason) == (
            "***", "fp-***", "gpt-test-***", "stop:***")
        assert result.text == "Your key is ***; as a link: https://example.com/?key=***."
        assert json.loads(result.raw)["system_fingerprint"] == "fp-***"  # the raw body is kept, scrubbed
        assert_no_key(repr(result) + json.dumps(result.to_dict(raw=True), ensure_ascii=False))


def test_a_key_hidden_behind_json_escapes_is_scrubbed_from_the_raw_body(fake_server, hostile_env):
    fake_server.hostile = {"escaped_key"}
    [result] = run(settings_for(hostile_env), runs=1)
    assert result.ok and result.text
    assert json.loads(result.raw)["x_escaped"] == "***"
    assert_no_key(json.dumps(json.loads(result.raw), ensure_ascii=False))


def test_a_key_spelled_across_logprob_tokens_drops_them(fake_server, hostile_env):
    fake_server.hostile = {"echo_key"}
    [result] = run(settings_for(hostile_env), RunRequest(prompt="p", seed=1, logprobs=True), runs=1)
    assert fake_server.received[0].body["logprobs"] is True
    assert result.ok and result.text.startswith("Your key is ***")
    assert result.logprobs is None and result.raw is None
    assert "spelled out a secret" in result.notice


def test_the_cli_never_prints_or_stores_an_echoed_key(fake_server, hostile_env, tmp_path):
    fake_server.hostile = {"echo_key", "escaped_key"}
    unsaved = cli("run", "--prompt", "p", "--runs", "2", "--no-save", "--json", env=hostile_env, cwd=tmp_path)
    assert unsaved.returncode == 0, unsaved.stderr
    assert json.loads(unsaved.stdout)["runs"][0]["system_fingerprint"] == "fp-***"
    assert_no_key(unsaved.stdout + unsaved.stderr)

    saved = cli("run", "--prompt", "p", "--runs", "2", "--json", env=hostile_env, cwd=tmp_path)
    experiment = json.loads(saved.stdout)["experiment"]["id"]
    shown = [cli("history", "list", env=hostile_env, cwd=tmp_path),
             cli("history", "list", "--json", env=hostile_env, cwd=tmp_path),
             cli("history", "show", experiment, env=hostile_env, cwd=tmp_path),
             cli("history", "export", experiment, env=hostile_env, cwd=tmp_path),
             cli("history", "export", experiment, "--format", "csv", env=hostile_env, cwd=tmp_path)]
    assert [done.returncode for done in shown] == [0] * 5
    assert "fp-***" in shown[0].stdout
    assert_no_key(saved.stdout + saved.stderr + "".join(done.stdout + done.stderr for done in shown))
    assert_no_key((tmp_path / "history.sqlite3").read_bytes().decode("utf-8", "replace"))


def test_formulas_in_every_field_are_kept_as_sent(fake_server, azure_settings):
    """Scrubbing takes secrets out and nothing else: making formulas inert is the CSV writer's job."""
    fake_server.hostile = {"formulas"}
    results = run(azure_settings, runs=len(FORMULA_TEXTS), concurrency=1)
    assert [r.text for r in results] == list(FORMULA_TEXTS)
    assert {(r.request_id, r.model, r.system_fingerprint, r.finish_reason) for r in results} == {
        tuple(FORMULA_FIELDS[name] for name in ("id", "model", "system_fingerprint", "finish_reason"))}


def test_nul_is_kept_and_unpaired_surrogates_become_replacement_characters(fake_server, azure_settings):
    fake_server.hostile = {"bad_text"}
    [result] = run(azure_settings, runs=1)
    assert result.ok, result.error
    assert result.text == BAD_TEXT.replace("\ud800", "\ufffd").replace("\udcff", "\ufffd")
    assert "\x00" in result.text
    result.text.encode("utf-8")  # strict: what printing, SQLite and PostgreSQL need


def test_broken_text_is_printed_and_saved_by_the_cli(fake_server, azure_env, tmp_path):
    fake_server.hostile = {"bad_text"}
    done = cli("run", "--prompt", "p", "--runs", "2", "--json", env=azure_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [run["text"] for run in data["runs"]] == ["nul \x00 here, a lone \ufffd there, and \ufffd."] * 2
    assert data["experiment"]["complete"] is True
    [row] = json.loads(cli("history", "list", "--json", env=azure_env, cwd=tmp_path).stdout)
    assert row["runs_done"] == 2


def test_bytes_that_are_not_utf8_make_a_malformed_run(fake_server, azure_settings):
    fake_server.hostile = {"invalid_utf8"}
    [result] = run(azure_settings, runs=1)
    assert result.error.kind == "malformed"
    assert "not valid JSON" in result.error.message and "utf-8" in result.error.message


@pytest.mark.parametrize("usage", ABSURD_USAGE, ids=lambda usage: str(usage)[:40])
def test_impossible_token_counts_are_dropped_with_a_notice(fake_server, azure_settings, usage):
    fake_server.usage = usage
    [result] = run(azure_settings, runs=1)
    assert result.ok, result.error
    assert result.usage is None
    assert result.notice.startswith("The server reported impossible token counts (")
    assert result.notice.endswith("); they were dropped.")


def test_a_count_sent_as_text_is_never_shown(fake_server, hostile_env):
    fake_server.usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": "x" + KEY}
    [result] = run(settings_for(hostile_env), runs=1)
    assert "total not a number" in result.notice
    assert "Hostile" not in result.notice  # not even the part of the key a cut-off repr would show


def test_whole_numbers_sent_as_floats_are_counts(fake_server, azure_settings):
    fake_server.usage = {"prompt_tokens": 10.0, "completion_tokens": 2, "total_tokens": 12.0}
    [result] = run(azure_settings, runs=1)
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (10, 2, 12)
    assert isinstance(result.usage.total_tokens, int) and result.notice is None


@pytest.mark.parametrize("usage", [ABSURD_USAGE[0], ABSURD_USAGE[4]], ids=["10**20", "nan-inf"])
def test_impossible_token_counts_never_stop_the_cli_from_saving(fake_server, azure_env, tmp_path, usage):
    fake_server.usage = usage
    done = cli("run", "--prompt", "p", "--runs", "2", "--json", env=azure_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)  # strict JSON: no NaN or Infinity slipped through
    assert [run["usage"] for run in data["runs"]] == [None, None]
    assert all("impossible token counts" in run["notice"] for run in data["runs"])
    assert data["experiment"]["complete"] is True
    [row] = json.loads(cli("history", "list", "--json", env=azure_env, cwd=tmp_path).stdout)
    assert (row["id"], row["runs_done"]) == (data["experiment"]["id"], 2)


def test_impossible_logprobs_are_dropped_with_a_notice(fake_server, azure_settings):
    fake_server.hostile = {"absurd_logprobs"}
    [result] = run(azure_settings, RunRequest(prompt="p", seed=1, logprobs=True), runs=1)
    assert result.ok, result.error
    assert result.logprobs is None
    assert "impossible log-probabilities" in result.notice


def test_notices_add_up_instead_of_replacing_each_other(fake_server, azure_settings):
    fake_server.logprobs_supported = False
    fake_server.usage = ABSURD_USAGE[1]
    [result] = run(azure_settings, RunRequest(prompt="p", seed=1, logprobs=True), runs=1)
    assert "impossible token counts" in result.notice and "does not return logprobs" in result.notice


@pytest.mark.parametrize("body", [b'{"id": "x", "choices": ["not a choice"]}', b'{"choices": {"a": 1}}', b"[]"])
def test_json_not_shaped_like_a_completion_is_a_malformed_run(fake_server, azure_settings, body):
    fake_server.bodies.append(body)
    first, second = run(azure_settings, runs=2, concurrency=1)
    assert first.error.kind == "malformed" and "chat-completions format" in first.error.message
    assert second.ok


def test_string_fields_sent_as_numbers_become_text(fake_server, azure_settings):
    fake_server.bodies.append(b'{"id": 5, "model": 7, "system_fingerprint": 8, '
                              b'"choices": [{"finish_reason": 3, "message": {"content": 12}}]}')
    [result] = run(azure_settings, runs=1)
    assert (result.text, result.request_id, result.model, result.system_fingerprint, result.finish_reason) == (
        "12", "5", "7", "8", "3")


@pytest.mark.parametrize("logprobs, notice", [
    ({"content": [{"token": "hi"}]}, "log-probabilities were malformed"),
    ({"content": [{"token": "hi", "logprob": "NaN", "top_logprobs": []}]}, "impossible log-probabilities"),
    ({"content": [{"token": "hi", "logprob": -0.5, "top_logprobs": [{"token": "yo", "logprob": 1e400}]}]},
     "impossible log-probabilities"),
], ids=["missing", "nan-text", "infinite-alternative"])
def test_broken_logprobs_are_dropped_and_the_run_kept(fake_server, azure_settings, logprobs, notice):
    choice = {"finish_reason": "stop", "message": {"content": "hi"}, "logprobs": logprobs}
    fake_server.bodies.append(json.dumps({"id": "x", "model": "m", "choices": [choice]}).encode())
    [result] = run(azure_settings, RunRequest(prompt="p", logprobs=True), runs=1)
    assert (result.text, result.logprobs) == ("hi", None)
    assert notice in result.notice
