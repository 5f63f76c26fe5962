"""Adding a provider is one registration: the settings, make_backend and the command line offer it unchanged."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys

import pytest

from core.backends import Provider, make_backend, provider, registry
from core.backends.local import LocalConfig
from core.errors import ConfigurationError
from core.models import BatchPlan, RunRequest
from core.runner import run_batch
from core.settings import backend_choices, load_settings
from tests.test_cli import cli


@pytest.fixture
def toy(monkeypatch):
    """tests/toy_provider.py, imported (and so registered) for this test only: the registry is restored after it."""
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))
    monkeypatch.delitem(sys.modules, "tests.toy_provider", raising=False)
    return importlib.import_module("tests.toy_provider")


def test_a_registered_provider_is_offered_chosen_and_built(toy):
    assert backend_choices() == ("auto", "azure", "compatible", "openai", "toy", "local")
    settings = load_settings(environ={"TOY_MODEL": "echo-1"}, dotenv_path=None)
    assert settings.available() == ["toy", "local"]  # registered after local, tried before it: local is the fallback
    assert settings.resolve() == "toy"
    assert provider("toy").title == "Toy echo" and settings.providers["toy"].describe() == [("Model", "echo-1")]
    backend = make_backend(settings)
    assert isinstance(backend, toy.EchoBackend)
    results = asyncio.run(run_batch(backend, RunRequest(prompt="hello toy"), BatchPlan(3, 3)))
    assert [r.text for r in results] == ["hello toy"] * 3


def test_a_provider_without_its_settings_is_skipped_or_named(toy):
    assert load_settings(environ={}, dotenv_path=None).available() == ["local"]
    with pytest.raises(ConfigurationError, match="^The toy backend needs TOY_MODEL.$"):
        make_backend(load_settings(environ={}, dotenv_path=None, backend="toy"))


def test_a_name_is_registered_once(toy):
    with pytest.raises(ValueError, match="'toy' is already registered"):
        toy.register(Provider("toy", "Another toy", paid=False, config=LocalConfig, build=toy.echo_backend))


def test_the_command_line_runs_a_provider_named_in_repro_providers(tmp_path):
    env = {"REPRO_PROVIDERS": "tests.toy_provider", "TOY_MODEL": "echo-1"}
    done = cli("run", "--prompt", "hello toy", "--backend", "toy", "--runs", "2", "--no-save", "--json",
               env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["backend"]["provider"] == "toy"
    assert [run["text"] for run in data["runs"]] == ["hello toy", "hello toy"]
    refused = cli("run", "--prompt", "p", "--backend", "toy", "--no-save", env={"TOY_MODEL": "echo-1"}, cwd=tmp_path)
    assert refused.returncode == 2 and "invalid choice: 'toy'" in refused.stderr
