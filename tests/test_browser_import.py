"""A real Chromium imports hostile exports on the History page: a 50 MB answer is refused before it is sent, an
over-long answer is refused in words, nothing is saved, and the tab stays alive to import a good file."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.models import BackendInfo, RunRequest, RunResult
from core.history import Experiment, to_json
from core.history.archive import MAX_TEXT_CHARS
from core.history.sqlite import SQLiteStore
from tests.test_browser import azure_variables, browser, serve_app, settle  # noqa: F401 - two are fixtures

pytestmark = pytest.mark.browser
HOSTILE = Path(__file__).resolve().parent / "hostile"


def export_with_answer(path: Path, answer: str) -> Path:
    experiment = Experiment(id="e", created_at="2026-11-01T10:00:00+00:00", request=RunRequest(prompt="p"),
                            backend=BackendInfo("azure", "gpt-4o"), runs_planned=1, complete=True,
                            runs=(RunResult(index=0, latency_ms=1.0, text=answer),))
    path.write_text(to_json(experiment))
    return path


@pytest.fixture(scope="module")
def history_app(azure_variables, tmp_path_factory):
    """The app, with its history file where the tests can look into it."""
    folder = tmp_path_factory.mktemp("imports")
    with serve_app(folder, azure_variables) as url:
        yield url, folder / "history.sqlite3"


def open_history(browser, url: str):
    page = browser.new_page(viewport={"width": 1500, "height": 1600})
    page.goto(url + "/history")
    page.get_by_text("Import a JSON export").wait_for(timeout=60_000)
    settle(page)
    return page


def still_alive(page) -> None:
    """The tab answers and the page still imports a good file."""
    assert page.evaluate("1 + 1") == 2
    page.locator("input[type=file]").set_input_files(HOSTILE / "valid.json")
    page.get_by_text("compatible m").first.wait_for(timeout=60_000)
    assert "experiment=" in page.url


def test_a_50_mb_answer_is_refused_before_upload_and_the_tab_lives_on(history_app, browser, tmp_path):
    url, history = history_app
    huge = export_with_answer(tmp_path / "huge.json", "x" * 50_000_000)
    page = open_history(browser, url)
    page.locator("input[type=file]").set_input_files(huge)
    page.get_by_text("File must be 20.0MB or smaller.").wait_for(timeout=60_000)
    settle(page)
    assert SQLiteStore(history).list() == []
    still_alive(page)
    page.close()


def test_an_over_long_answer_is_refused_in_words_and_nothing_is_saved(history_app, browser, tmp_path):
    url, history = history_app
    before = {row.id for row in SQLiteStore(history).list()}
    long = export_with_answer(tmp_path / "long.json", "y" * (MAX_TEXT_CHARS + 1))
    page = open_history(browser, url)
    page.locator("input[type=file]").set_input_files(long)
    page.get_by_text("Not imported: experiment.runs[0].text has 200,001 characters; the limit is 200,000.").wait_for(
        timeout=60_000)
    settle(page)
    assert {row.id for row in SQLiteStore(history).list()} == before
    assert "Traceback" not in page.inner_text("body")
    still_alive(page)
    page.close()
