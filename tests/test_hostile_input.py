"""Bad text from the command line and the environment: refused with exit 2, a message naming what to fix, and
nothing sent."""

from __future__ import annotations

import json

import pytest

from tests.test_cli import cli


@pytest.mark.parametrize("args, message", [
    ([b"--prompt", b"caf\xe9 au lait"], "prompt contains bytes that are not valid UTF-8 at position 3"),
    ([b"--prompt", b"p", b"--system", b"\xff\xfe"],
     "system prompt contains bytes that are not valid UTF-8 at position 0"),
])
@pytest.mark.parametrize("saving", [[], ["--no-save"]], ids=["saved", "no-save"])
def test_invalid_utf8_in_argv_is_refused_naming_the_field(fake_server, azure_env, tmp_path, args, message, saving):
    done = cli("run", *args, *saving, env=azure_env, cwd=tmp_path)
    assert (done.returncode, done.stderr) == (2, f"error: {message}; retype that part or save the text as UTF-8.\n")
    assert fake_server.received == []


@pytest.mark.parametrize("key, message", [
    ("{key}\n", "OPENAI_API_KEY ends with a line break"),
    ("{key}\r\n", "OPENAI_API_KEY ends with a line break"),
    ("{key} ", "OPENAI_API_KEY ends with a space"),
    (" {key}", "OPENAI_API_KEY starts with a space"),
    ("test-key\n0123456789abcdef", "OPENAI_API_KEY contains a line break at position 8"),
    ("test-kéy-0123456789abcdef", "OPENAI_API_KEY contains a character that is not ASCII at position 6"),
], ids=["newline", "crlf", "trailing-space", "leading-space", "inner-newline", "non-ascii"])
def test_a_key_that_cannot_be_sent_is_refused_naming_the_variable(fake_server, azure_env, tmp_path, key, message):
    key = key.format(key=fake_server.api_key)
    done = cli("run", "--prompt", "p", "--runs", "1", env={**azure_env, "OPENAI_API_KEY": key}, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {message}")
    assert "Could not reach" not in done.stdout + done.stderr
    assert key.strip() not in done.stdout + done.stderr
    assert fake_server.received == []


def test_minus_zero_temperature_is_shown_and_sent_as_zero(fake_server, azure_env, tmp_path):
    table = cli("run", "--prompt", "p", "--runs", "1", "--temperature", "-0", "--no-save", env=azure_env, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert " · temperature 0 · " in table.stdout.splitlines()[0]
    as_json = cli("run", "--prompt", "p", "--runs", "1", "--temperature", "-0.0", "--no-save", "--json",
                  env=azure_env, cwd=tmp_path)
    assert '"temperature": 0.0' in as_json.stdout and '"temperature": -0' not in as_json.stdout
    assert [json.dumps(r.body["temperature"]) for r in fake_server.received] == ["0.0", "0.0"]
