"""What the AppTest modules share: a clean environment for the app, a scripted backend, the loopback server as
Azure, and readers for what a page shows."""

from __future__ import annotations

import os
import re
from html import unescape
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import ui.resources
from tests.environment import ENGINE, PROVIDER_VARIABLES
from tests.scripted import ScriptedBackend

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def app_environment(monkeypatch, tmp_path):
    """No provider variable, .env or secrets from the developer's machine; a fresh backend cache and history."""
    for name in list(os.environ):
        if name.startswith(PROVIDER_VARIABLES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("REPRO_HISTORY_PATH", str(tmp_path / "history.sqlite3"))
    for name, value in ENGINE.items():
        monkeypatch.setenv(name, value)
    ui.resources._cached_backend.clear()
    ui.resources._cached_store.clear()
    yield
    ui.resources._cached_backend.clear()
    ui.resources._cached_store.clear()


@pytest.fixture
def scripted(monkeypatch):
    """Make the session hand the pages a ScriptedBackend; returns a setter for its script."""
    holder = {}

    def use(answer, fingerprints=("fp_scripted",), stagger_s=0.0) -> ScriptedBackend:
        holder["backend"] = ScriptedBackend(answer, fingerprints, stagger_s)
        return holder["backend"]

    monkeypatch.setattr(ui.resources, "make_backend", lambda settings: holder["backend"])
    return use


def app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception
    return at


def plain(markdown: str) -> str:
    """A message as the visitor reads it: the backslashes that keep untrusted text inert removed."""
    return re.sub(r"\\(.)", r"\1", markdown)


def captions(at: AppTest) -> list[str]:
    return [plain(c.value) for c in at.main.caption]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def html(at: AppTest) -> str:
    return "\n".join(h.value for h in at.html)


@pytest.fixture
def azure(monkeypatch, fake_server, azure_env):
    for name, value in azure_env.items():
        monkeypatch.setenv(name, value)
    return fake_server


EXPERIMENT = "pages/experiment.py"


def experiment() -> AppTest:
    """The Experiment page (the app opens on Seed vs no seed)."""
    return app(EXPERIMENT)


def verdicts(at: AppTest) -> list[str]:
    """The verdict sentences, top to bottom."""
    return [unescape(text) for text in re.findall(r'class="rl-v-sentence">([^<]*)<', html(at))]


def made_by_lines(at: AppTest) -> list[str]:
    """The settings line under each verdict."""
    return [unescape(text) for text in re.findall(r'class="rl-v-made">([^<]*)<', html(at))]


def numbers(at: AppTest) -> dict[str, str]:
    """The first verdict block's key numbers by name (unique, identical, divergence, agreement, fingerprints)."""
    return {name: unescape(value) for name, value in
            re.findall(r'data-number="(\w+)"><small>[^<]*</small><b>([^<]*)</b>', html(at).split("data-verdict")[1])}


def is_stale(at: AppTest) -> bool:
    """Whether the page labels its results as made with previous settings."""
    return 'class="rl-stale-label"' in html(at)
