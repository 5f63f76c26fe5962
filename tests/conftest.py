"""Shared fixtures: the loopback chat server and settings that point at it."""

from __future__ import annotations

import pytest

from core.settings import load_settings
from tests.fakeserver import FakeChatServer

# postgres_url, db and store: one throwaway PostgreSQL for the session; app_environment, scripted, azure for AppTest
pytest_plugins = ("tests.pgserver", "tests.apptest")


@pytest.fixture(scope="session")
def _server():
    server = FakeChatServer().start()
    yield server
    server.stop()


@pytest.fixture
def fake_server(_server: FakeChatServer) -> FakeChatServer:
    _server.reset()
    return _server


@pytest.fixture
def azure_env(fake_server: FakeChatServer) -> dict[str, str]:
    """The classic demo's four variables, pointed at the loopback server."""
    return {
        "OPENAI_API_BASE": fake_server.url,
        "OPENAI_API_VERSION": "2024-06-01",
        "OPENAI_API_KEY": fake_server.api_key,
        "OPENAI_API_DEPLOY": fake_server.deployment,
        "REPRO_TIMEOUT": "5",
    }


@pytest.fixture
def azure_settings(azure_env):
    return load_settings(environ=azure_env, dotenv_path=None)
