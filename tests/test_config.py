"""Settings precedence, provider selection, and bad input refused before anything is sent."""

from __future__ import annotations

import math
import os

import pytest

from core.backends import make_backend
from core.settings import load_settings
from core.errors import ConfigurationError, InvalidRequest
from core.models import BatchPlan, RunRequest

CLASSIC = {"OPENAI_API_BASE": "https://res.openai.azure.com/", "OPENAI_API_VERSION": "2024-06-01",
           "OPENAI_API_KEY": "azure-key-123456", "OPENAI_API_DEPLOY": "gpt-4o"}


def settings(env, **kw):
    return load_settings(environ=env, dotenv_path=None, **kw)


def test_classic_demo_variables_configure_azure_and_keep_the_key_there():
    s = settings(CLASSIC)
    assert s.resolve() == "azure"
    azure = s.providers["azure"]
    assert azure.endpoint == "https://res.openai.azure.com/"
    assert azure.deployment == "gpt-4o"
    assert azure.api_key == "azure-key-123456"
    assert s.providers["openai"].api_key is None  # the key belongs to Azure: never sent to api.openai.com
    assert s.available() == ["azure", "local"]


def test_sdk_names_configure_azure_too():
    s = settings({"AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com", "AZURE_OPENAI_API_KEY": "k-123456",
                  "OPENAI_API_VERSION": "2024-10-21", "AZURE_OPENAI_DEPLOYMENT": "dep"})
    info = make_backend(s).info
    assert (info.provider, info.model, info.endpoint_host, info.api_version) == (
        "azure", "dep", "x.openai.azure.com", "2024-10-21")


def test_auto_prefers_azure_then_compatible_then_openai_then_local():
    compatible = {"COMPATIBLE_BASE_URL": "http://127.0.0.1:11434/v1", "COMPATIBLE_MODEL": "llama3"}
    assert settings({**CLASSIC, **compatible}).resolve() == "azure"
    assert settings({**compatible, "OPENAI_API_KEY": "sk-1234"}).resolve() == "compatible"
    assert settings({"OPENAI_API_KEY": "sk-1234"}).resolve() == "openai"
    assert settings({}).resolve() == "local"


def test_half_configured_azure_is_skipped_with_a_note_naming_what_is_missing():
    s = settings({"OPENAI_API_BASE": "https://res.openai.azure.com/", "OPENAI_API_KEY": "k-123456"})
    assert s.resolve() == "local"
    [note] = s.notes()
    assert "OPENAI_API_DEPLOY" in note and "OPENAI_API_VERSION" in note


def test_explicit_backend_with_missing_settings_names_them():
    with pytest.raises(ConfigurationError, match="COMPATIBLE_BASE_URL"):
        make_backend(settings({}, backend="compatible"))


def test_precedence_arguments_over_secrets_over_environment_over_dotenv(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("REPRO_LOCAL_MODE=cache\nREPRO_TIMEOUT=11\nCOMPATIBLE_MODEL=from-dotenv\n")
    s = load_settings(environ={"REPRO_TIMEOUT": "22", "COMPATIBLE_MODEL": "from-env"}, dotenv_path=dotenv,
                      secrets={"COMPATIBLE_MODEL": "from-secrets"})
    assert (s.providers["local"].mode, s.timeout_s, s.providers["compatible"].model) == ("cache", 22.0, "from-secrets")
    overridden = load_settings(environ={}, dotenv_path=dotenv, local_mode="deterministic")
    assert overridden.providers["local"].mode == "deterministic"


def test_repr_never_holds_a_secret():
    s = settings(CLASSIC)
    assert "azure-key-123456" not in repr(s)
    assert "azure-key-123456" in s.secrets  # still there for the backend, and for redaction


@pytest.mark.parametrize("env, message", [
    ({"REPRO_BACKEND": "bedrock"}, "Unknown backend 'bedrock'"),
    ({"REPRO_LOCAL_MODE": "fast"}, "Unknown local mode"),
    ({"REPRO_LOCAL_THREADS": "0"}, "REPRO_LOCAL_THREADS must be a whole number from 1 to 256, got '0'"),
    ({"REPRO_LOCAL_THREADS": "two"}, "REPRO_LOCAL_THREADS must be a whole number"),
    ({"REPRO_TIMEOUT": "soon"}, "REPRO_TIMEOUT"),
    ({"REPRO_TIMEOUT": "0"}, "REPRO_TIMEOUT"),
])
def test_bad_settings_are_refused(env, message):
    with pytest.raises(ConfigurationError, match=message):
        settings(env)


def test_the_embedded_engine_uses_the_threads_it_is_given_else_every_core():
    assert make_backend(settings({"REPRO_LOCAL_THREADS": "1"})).n_threads == 1
    assert make_backend(settings({})).n_threads == os.cpu_count()


def test_an_endpoint_that_is_not_a_url_is_refused():
    with pytest.raises(ConfigurationError, match="http\\(s\\) URL"):
        make_backend(settings({**CLASSIC, "OPENAI_API_BASE": "res.openai.azure.com"}))


@pytest.mark.parametrize("fields, message", [
    ({"prompt": ""}, "prompt is empty"),
    ({"prompt": "   \n"}, "prompt is empty"),
    ({"prompt": "a\x00b"}, "U\\+0000"),
    ({"prompt": "caf\udce9"}, "prompt contains bytes that are not valid UTF-8 at position 3"),
    ({"system": "\ud800 lone"}, "system prompt contains bytes that are not valid UTF-8 at position 0"),
    ({"prompt": "x" * 32_001}, "limit is 32,000"),
    ({"temperature": 2.5}, "outside 0–2"),
    ({"temperature": -0.1}, "outside 0–2"),
    ({"temperature": "hot"}, "temperature must be a number"),
    ({"temperature": float("nan")}, "temperature must be a number"),
    ({"top_p": 0}, "top_p"),
    ({"top_p": -0.0}, "got 0.0\\.$"),
    ({"top_p": 1.5}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"seed": 1.5}, "seed must be a whole number"),
    ({"seed": True}, "seed must be a whole number"),
    ({"seed": 2**63}, "signed 64-bit"),
    ({"seed": -(2**63) - 1}, "signed 64-bit"),
])
def test_bad_requests_are_refused_with_the_field_named(fields, message):
    with pytest.raises(InvalidRequest, match=message):
        RunRequest(**{"prompt": "hello", **fields})


@pytest.mark.parametrize("runs, concurrency", [(0, 1), (1001, 1), (5, 0), (2.0, 1)])
def test_bad_batch_plans_are_refused(runs, concurrency):
    with pytest.raises(InvalidRequest):
        BatchPlan(runs, concurrency)


def test_minus_zero_becomes_zero_so_nothing_shows_minus_zero():
    request = RunRequest(prompt="p", temperature=-0.0)
    assert math.copysign(1, request.temperature) == 1
    assert f"{request.temperature:g}" == "0"
    assert RunRequest(prompt="p", temperature=0).temperature == 0 and RunRequest(prompt="p", temperature=-0.0) == (
        RunRequest(prompt="p", temperature=0.0))


@pytest.mark.parametrize("env, message", [
    ({**CLASSIC, "OPENAI_API_KEY": "azure-key-123456\n"}, "OPENAI_API_KEY ends with a line break"),
    ({**CLASSIC, "OPENAI_API_KEY": "\tazure-key-123456"}, "OPENAI_API_KEY starts with a tab"),
    ({**CLASSIC, "OPENAI_API_KEY": "azure-key\x00123456"}, "OPENAI_API_KEY contains a control character at position 9"),
    ({**CLASSIC, "OPENAI_API_KEY": "azure-key-123456\u00a0"}, "OPENAI_API_KEY ends with a blank character"),
    ({**CLASSIC, "OPENAI_API_KEY": "azure\u2019key-123456"}, "OPENAI_API_KEY contains a character that is not ASCII"),
    ({**CLASSIC, "OPENAI_API_KEY": None, "AZURE_OPENAI_API_KEY": "azure-key-123456 "},
     "AZURE_OPENAI_API_KEY ends with a space"),
    ({"OPENAI_API_KEY": "sk-123456\r\n"}, "OPENAI_API_KEY ends with a line break"),
    ({"COMPATIBLE_BASE_URL": "http://127.0.0.1:8000/v1", "COMPATIBLE_MODEL": "m", "COMPATIBLE_API_KEY": "k-12 34\n5"},
     "COMPATIBLE_API_KEY contains a line break at position 7"),
])
def test_a_key_that_cannot_go_into_a_header_is_refused_naming_its_variable(env, message):
    env = {name: value for name, value in env.items() if value is not None}
    with pytest.raises(ConfigurationError, match=f"^{message}") as refused:
        make_backend(settings(env))
    key = next(value for name, value in env.items() if name.endswith("API_KEY"))
    assert key.strip() not in str(refused.value)


def test_a_key_from_secrets_that_is_not_text_is_refused():
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY must be text, got int"):
        load_settings(environ={}, secrets={"OPENAI_API_KEY": 123456}, dotenv_path=None).resolve()


def test_a_bad_key_of_a_provider_not_in_use_leaves_the_others_usable():
    assert settings({"OPENAI_API_KEY": "sk-123456\n", "REPRO_BACKEND": "local"}).resolve() == "local"
    compatible = {"COMPATIBLE_BASE_URL": "http://127.0.0.1:8000/v1", "COMPATIBLE_MODEL": "m"}
    assert settings({**compatible, "OPENAI_API_KEY": "sk-123456\n"}).resolve() == "compatible"


def test_valid_unusual_text_round_trips_untouched():
    text = "שלום 👋🏽 <b>bold</b> e\u0301\ttab\nline"
    assert RunRequest(prompt=text).prompt == text
    assert RunRequest(prompt="x", seed=-(2**63)).seed == -(2**63)


def test_credentials_in_a_url_never_reach_the_backend_identity():
    backend = make_backend(settings({"COMPATIBLE_BASE_URL": "http://user:hunter2@proxy.local:8000/v1",
                                     "COMPATIBLE_MODEL": "m"}))
    assert backend.info.endpoint_host == "proxy.local:8000"
    assert "hunter2" not in repr(backend.info)
    with pytest.raises(ConfigurationError) as refused:
        make_backend(settings({"COMPATIBLE_BASE_URL": "ftp://user:hunter2@proxy.local/", "COMPATIBLE_MODEL": "m"}))
    assert "hunter2" not in str(refused.value)
