"""A tab reloaded while its batch runs, in a real Chromium against `streamlit run app.py`: the new session says the
batch was interrupted after k of N runs, and History holds the runs that arrived. The loopback server answers slowly,
one request at a time (REPRO_GLOBAL_CONCURRENCY=1), so the reload lands mid-batch."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import pytest

from tests.test_browser import browser, open_page, serve_app, settle  # noqa: F401 - browser is a fixture

pytestmark = pytest.mark.browser
RUNS = 5  # the slider's default


@pytest.fixture
def slow_app_url(fake_server, azure_env, tmp_path):
    fake_server.latency_s = 1.0
    with serve_app(tmp_path, {**azure_env, "REPRO_GLOBAL_CONCURRENCY": "1"}) as url:
        yield url


def test_a_reload_mid_batch_points_to_the_runs_kept_in_history(fake_server, slow_app_url, browser):  # noqa: F811
    page = open_page(browser, slow_app_url)
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator(".rl-card[data-run]").first.wait_for(timeout=30_000)  # one run in, four to come
    assert "?batch=" in page.url  # the running batch is named where a reload finds it
    page.reload()

    notice = page.get_by_text(re.compile(r"^Your last batch was interrupted after \d+ of 5 runs"))
    notice.wait_for(timeout=60_000)
    arrived = int(re.search(r"after (\d+) of", notice.inner_text())[1])
    assert 1 <= arrived < RUNS
    link = page.get_by_role("link", name="open it in History")
    assert link.count() == 1  # one notice

    page.goto(urljoin(page.url, link.get_attribute("href")))
    kept = page.get_by_text(re.compile(r"\d+/5 runs"))
    kept.wait_for(timeout=60_000)
    settle(page)
    saved = int(re.search(r"(\d+)/5 runs", kept.inner_text())[1])
    # Every run that had arrived is kept; the old tab's session may finish its batch before Streamlit drops it.
    assert arrived <= saved <= RUNS
    assert ("incomplete" in kept.inner_text()) == (saved < RUNS)
    assert f"{saved} of {saved} identical" in page.locator("[data-verdict]").first.inner_text()  # the runs, shown
    assert len(fake_server.received) <= RUNS  # the reload sent nothing again
    page.close()
