"""Two `streamlit run app.py` replicas with one DATABASE_URL, driven by a real Chromium: the hourly quota and the cap
on requests in flight hold across both, and across a restart. The backend is the loopback server, which counts the
requests it has in flight; every page comes from 127.0.0.1, so both replicas see one visitor, "ip:127.0.0.1".
"""

from __future__ import annotations

import contextlib
import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pgserver

sync_api = pytest.importorskip("playwright.sync_api")
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, serve_app, settle  # noqa: E402 - needs playwright, checked above

pytestmark = pytest.mark.browser
RUNS_SLIDER = "Runs (identical requests)"


@pytest.fixture
def browser() -> Iterator:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def replica_env(_server, postgres_url: str) -> dict[str, str]:
    """The loopback server as the Azure deployment, and a new, empty database shared by every replica."""
    return {"OPENAI_API_BASE": _server.url, "OPENAI_API_VERSION": "2024-06-01", "OPENAI_API_KEY": _server.api_key,
            "OPENAI_API_DEPLOY": _server.deployment, "DATABASE_URL": pgserver.new_database(postgres_url)}


class Replicas:
    """`streamlit run` replicas, each started in a folder of its own under `root`."""

    def __init__(self, root: Path, env: dict[str, str], stack: contextlib.ExitStack):
        self._root, self._env, self._stack, self._names = root, env, stack, itertools.count(1)

    def start(self) -> tuple[str, contextlib.ExitStack]:
        """A new replica's URL, and what stops it."""
        own = contextlib.ExitStack()
        folder = self._root / f"replica-{next(self._names)}"
        folder.mkdir()
        url = own.enter_context(serve_app(folder, self._env))
        self._stack.push(own)
        return url, own


@contextlib.contextmanager
def replicas(root: Path, env: dict[str, str]) -> Iterator[Replicas]:
    with contextlib.ExitStack() as stack:
        yield Replicas(root, env, stack)


def experiment_page(browser, url: str, runs: int):
    """A new visitor tab on the replica's Experiment page, the runs slider at `runs` (from the default 5)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(url + "/experiment")
    page.get_by_role("button", name="Run", exact=True).wait_for(timeout=60_000)
    settle(page)
    slider, chosen = page.get_by_role("slider", name=RUNS_SLIDER), page.get_by_text(f"This run: {runs} requests")
    deadline = time.monotonic() + 30
    while not chosen.count():  # one press at a time: a press that lands while the page is redrawn may be lost
        assert time.monotonic() < deadline, f"the runs slider never reached {runs}"
        now = int(re.match(r"This run: (\d+)", page.get_by_text(re.compile(r"^This run: ")).inner_text())[1])
        if now != runs:
            slider.focus()
            slider.press("ArrowRight" if now < runs else "ArrowLeft")
        settle(page)
    return page


def quota_left(page) -> str:
    """What the cost line says is left of the hour, like "2 of 12 requests left this hour"."""
    settle(page)
    return page.get_by_text(re.compile(r"^This run: ")).inner_text().rsplit(" · ", 1)[-1]


def run(page) -> str:
    """Click Run; the results' verdict, or the refusal, as the page says it."""
    page.get_by_role("button", name="Run", exact=True).click()
    said = page.locator("[data-verdict]").or_(page.get_by_text(re.compile("^Nothing was sent")))
    said.first.wait_for(timeout=60_000)
    settle(page)
    return said.first.inner_text()


def test_two_replicas_share_one_hourly_quota_and_a_restart_keeps_it(fake_server, replica_env, browser, tmp_path):
    env = {**replica_env, "REPRO_REQUESTS_PER_HOUR": "12", "REPRO_MAX_RUNS": "10"}
    with replicas(tmp_path, env) as started:
        (first, stop_first), (second, _) = started.start(), started.start()
        page = experiment_page(browser, first, 10)
        assert "Nothing was sent" not in run(page)
        assert len(fake_server.received) == 10
        assert quota_left(page) == "2 of 12 requests left this hour"

        other = experiment_page(browser, second, 5)
        assert quota_left(other) == "2 of 12 requests left this hour"  # not 12: replica 1's ten count here
        assert "This needs 5 requests but 2 of your 12 per hour are left" in run(other)
        other.close()
        other = experiment_page(browser, second, 2)
        assert "Nothing was sent" not in run(other)
        assert quota_left(other) == "0 of 12 requests left this hour"

        page.close()
        page = experiment_page(browser, first, 2)
        assert "This needs 2 requests but 0 of your 12 per hour are left" in run(page)
        page.close()
        stop_first.close()  # replica 1 stops, and a new process takes its place
        first, _ = started.start()
        page = experiment_page(browser, first, 2)
        assert quota_left(page) == "0 of 12 requests left this hour"
        assert "This needs 2 requests but 0 of your 12" in run(page)
    assert len(fake_server.received) == 12


def test_ten_visitors_on_two_replicas_never_exceed_the_shared_cap(fake_server, replica_env, browser, tmp_path):
    fake_server.latency_s = 1.0  # 50 requests at 8 at a time: about 7 s, so the batches overlap
    env = {**replica_env, "REPRO_GLOBAL_CONCURRENCY": "8", "REPRO_REQUESTS_PER_HOUR": "1000"}
    with replicas(tmp_path, env) as started:
        urls = [started.start()[0], started.start()[0]]
        pages = [browser.new_page(viewport={"width": 1400, "height": 1200}) for _ in range(10)]
        for k, page in enumerate(pages):  # all ten load at once: one after the other would take a minute
            page.goto(urls[k % 2] + "/experiment", wait_until="commit")
        for page in pages:
            page.get_by_role("button", name="Run", exact=True).wait_for(timeout=60_000)
            settle(page)
        for page in pages:
            page.get_by_role("button", name="Run", exact=True).click()
        for page in pages:
            page.locator("[data-verdict]").first.wait_for(timeout=60_000)
            assert "5 of 5 identical" in page.locator("[data-verdict]").first.inner_text()
            page.close()
    assert len(fake_server.received) == 50
    assert fake_server.peak_in_flight == 8  # each replica alone would allow 8, so two would let 16 through
