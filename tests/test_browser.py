"""A real Chromium against `streamlit run app.py`, with the loopback server configured as the Azure deployment."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.models import BackendInfo, RunRequest, RunResult
from core.history import Experiment, to_json
from ui.prompts import CLASSIC
from tests.environment import clean_environment

playwright = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PASSCODE = "red-panda-passcode"
PAYLOAD = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> & the red panda slept.'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_app(folder: Path, env: dict[str, str]):
    """`streamlit run app.py` on a loopback port, in a folder with only the repo's .streamlit/config.toml, so no
    developer .env or secrets.toml takes part; yields the URL, and checks the log for the key at the end."""
    port = _free_port()
    clean = clean_environment("APP_PASSCODE", "DATABASE_URL")
    (folder / ".streamlit").mkdir()
    shutil.copy(ROOT / ".streamlit" / "config.toml", folder / ".streamlit" / "config.toml")
    log = folder / "streamlit.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=folder, env={**clean, "REPRO_HISTORY_PATH": str(folder / "history.sqlite3"), **env,
                             "PYTHONPATH": str(ROOT)}, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("streamlit did not start: " + log.read_text())
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:  # a busy machine: what matters below is the log, not a clean exit
            process.kill()
            process.wait()
    assert env.get("OPENAI_API_KEY", "\0") not in log.read_text(), "the key reached the app's log"


@pytest.fixture(scope="module")
def azure_variables(_server) -> dict[str, str]:
    return {"OPENAI_API_BASE": _server.url, "OPENAI_API_VERSION": "2024-06-01", "OPENAI_API_KEY": _server.api_key,
            "OPENAI_API_DEPLOY": _server.deployment}


@pytest.fixture(scope="module")
def app_url(azure_variables, tmp_path_factory):
    """The app, configured by environment as the loopback Azure deployment."""
    with serve_app(tmp_path_factory.mktemp("app"), azure_variables) as url:
        yield url


@pytest.fixture(scope="module")
def gated_app_url(azure_variables, tmp_path_factory):
    with serve_app(tmp_path_factory.mktemp("gated"), {**azure_variables, "APP_PASSCODE": PASSCODE}) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium (make test does it)")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, url: str, scheme: str = "light"):
    """The Experiment page (the app opens on Seed vs no seed)."""
    page = browser.new_page(viewport={"width": 1500, "height": 2300}, color_scheme=scheme)
    page.goto(url + "/experiment")
    page.get_by_role("button", name="Run", exact=True).wait_for(timeout=60_000)
    return page


def settle(page) -> None:
    """Wait until the script run is over and the lazily drawn elements (metrics, tables, charts) are drawn."""
    page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for(timeout=60_000)
    page.locator("[data-testid=stStatusWidget]").wait_for(state="detached", timeout=60_000)
    page.locator("[data-testid=stSkeleton]").first.wait_for(state="detached", timeout=30_000)


def run_experiment(page, runs: int = 3) -> None:
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator("[data-verdict]").wait_for(timeout=60_000)
    page.get_by_text("Side by side").wait_for(timeout=60_000)
    settle(page)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_run_cards_and_diff_highlights(fake_server, app_url, browser, scheme):
    fake_server.answers.extend(["The red panda ate bamboo in the quiet forest."] * 4
                               + ["The red panda ate apples in the quiet forest."])
    page = open_page(browser, app_url, scheme)
    run_experiment(page, runs=5)
    assert page.locator(".rl-card[data-run]").count() == 2  # A ×4 stacked, and B
    assert page.get_by_text(re.compile(r"^4 of 5 agree; run \d parts at word 5$")).is_visible()
    left, right = page.locator(".rl-side[data-side=left] mark"), page.locator(".rl-side[data-side=right] mark")
    assert left.first.inner_text().strip() == "bamboo" and right.first.inner_text().strip() == "apples"
    assert page.locator(".rl-side .rl-fork").count() == 2
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"experiment-{scheme}.png", full_page=True)
    page.close()


def test_model_output_with_html_is_shown_as_text_and_runs_nothing(fake_server, app_url, browser):
    fake_server.answers.extend([PAYLOAD] * 4 + ["The red panda slept."])
    page = open_page(browser, app_url)
    run_experiment(page, runs=5)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src=x]").count() == 0
    assert PAYLOAD in page.locator(".rl-card .rl-text").all_inner_texts()
    assert PAYLOAD in page.locator(".rl-side[data-side=left]").inner_text()  # the diff escapes it too
    page.close()


def test_the_key_is_nowhere_in_the_page(fake_server, app_url, browser):
    page = open_page(browser, app_url)
    page.get_by_role("button", name="Test connection").click()
    page.get_by_text("Connected: gpt-test answered").wait_for(timeout=30_000)
    run_experiment(page, runs=5)
    assert "Key: set" in page.inner_text("body")
    assert fake_server.api_key not in page.content()
    assert fake_server.api_key not in page.inner_text("body")
    page.close()


def test_seed_page_verdicts_side_by_side(fake_server, app_url, browser):
    page = open_page(browser, app_url)
    page.get_by_role("link", name="Seed vs no seed").click()
    page.get_by_role("button", name="Run both", exact=True).click()
    page.get_by_text("A fixed seed makes the sampling repeatable").wait_for(timeout=60_000)
    settle(page)
    assert page.locator(".rl-v-title").all_inner_texts() == ["Without a seed", "With seed 42"]
    assert page.get_by_text("5 of 5 identical — reproducible").is_visible()
    assert page.get_by_text(re.compile(r"^5 different answers, they part at word \d+$")).is_visible()
    page.screenshot(path=ARTIFACTS / "seed-vs-no-seed.png", full_page=True)
    page.close()


def test_a_visitor_without_the_passcode_sees_only_the_gate(fake_server, gated_app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(gated_app_url)
    page.get_by_role("button", name="Enter").wait_for(timeout=60_000)
    settle(page)
    body = page.inner_text("body")
    assert "Enter the passcode" in body
    for hidden in ("Run", "Temperature", "Azure OpenAI", "gpt-test", "Test connection"):
        assert hidden not in body
    page.get_by_label("Passcode", exact=True).and_(page.locator("input")).fill("not it")
    page.get_by_role("button", name="Enter").click()
    page.get_by_text("That passcode is not right.").wait_for(timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "gate.png")
    page.get_by_label("Passcode", exact=True).and_(page.locator("input")).fill(PASSCODE)
    page.get_by_role("button", name="Enter").click()
    page.get_by_role("button", name="Run both", exact=True).wait_for(timeout=60_000)
    assert fake_server.received == []
    page.close()


def test_history_imports_an_export_and_opens_it_by_link(fake_server, app_url, browser, tmp_path):
    experiment = Experiment(
        id="exported-1", created_at="2026-11-01T10:00:00+00:00",
        request=RunRequest(prompt="Create a story about red panda.", system="You always produce 3-sentence answers.",
                           seed=42),
        backend=BackendInfo("azure", "gpt-4o", "res.openai.azure.com", "2024-06-01"), runs_planned=2, complete=True,
        runs=tuple(RunResult(index=i, latency_ms=100.0 + i, text=text, system_fingerprint="fp_x")
                   for i, text in enumerate(("The panda climbed.", "The panda slept."))))
    (tmp_path / "export.json").write_text(to_json(experiment))
    page = browser.new_page(viewport={"width": 1500, "height": 2300})
    page.goto(app_url + "/history")
    page.get_by_text("Import a JSON export").wait_for(timeout=60_000)
    page.locator("input[type=file]").set_input_files(tmp_path / "export.json")
    page.get_by_text("azure gpt-4o @ res.openai.azure.com").first.wait_for(timeout=60_000)
    settle(page)
    assert "experiment=" in page.url
    assert page.locator(".rl-card[data-run]").count() == 2
    link = page.url
    page.close()
    again = browser.new_page(viewport={"width": 1500, "height": 2300})
    again.goto(link)
    again.get_by_text("The panda slept.").first.wait_for(timeout=60_000)
    settle(again)
    again.screenshot(path=ARTIFACTS / "history.png", full_page=True)
    assert fake_server.api_key not in again.content()
    again.close()


def test_a_second_click_while_the_batch_runs_sends_nothing_more(fake_server, app_url, browser):
    """Regression: Streamlit stops the script run at the next click and starts another; the batch went with the
    stopped run (its requests cancelled, the quota counted again) and the new run sent a second one."""
    fake_server.latency_s = 1.5
    page = open_page(browser, app_url)
    run = page.get_by_role("button", name="Run", exact=True)
    run.click()
    page.get_by_text("Sending 5 identical requests").wait_for(timeout=30_000)
    run.click()
    page.get_by_text("this click sent nothing and took nothing from your quota").wait_for(timeout=30_000)
    page.get_by_text("Side by side").wait_for(timeout=60_000)
    settle(page)
    assert len(fake_server.received) == 5
    assert page.locator("[data-verdict]").count() == 1
    page.close()


def test_visitors_arriving_at_once_after_a_restart_get_the_app_and_the_default_prompts(
        fake_server, azure_variables, browser, tmp_path):
    """Regression: with many sessions opening at once, prompt boxes were empty, and a page link could be served
    without app.py when another session left Streamlit's legacy pages mode half-way through its first run."""
    arrivals = {"": "Run both", "/experiment": "Run", "/sweep": "Run sweep", "/history?experiment=none": None}
    with serve_app(tmp_path, azure_variables) as url:
        visits = [(path, browser.new_page(viewport={"width": 1500, "height": 1000})) for path in [*arrivals, ""]]
        for path, page in visits:
            page.goto(url + path, wait_until="commit")  # returns at once: the pages all load at the same time
        for path, page in visits:
            button = arrivals[path]
            if button:
                page.get_by_role("button", name=button, exact=True).wait_for(timeout=120_000)
            else:
                page.get_by_text("There is no experiment").wait_for(timeout=120_000)
            settle(page)
            navigation = page.locator("[data-testid=stSidebarNav]").inner_text()
            assert "Seed vs no seed" in navigation and "app" not in navigation.split(), path
            if button:
                for label, text in zip(("System prompt", "User prompt"), CLASSIC):
                    playwright.expect(page.get_by_label(label)).to_have_value(text, timeout=10_000)
            page.close()


def test_a_shared_link_is_the_first_visit_after_a_restart(fake_server, azure_variables, browser, tmp_path):
    """Streamlit's legacy pages/ mode must not serve the first visitor a page without app.py's navigation."""
    with serve_app(tmp_path, azure_variables) as url:
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.goto(url + "/history?experiment=not-there")
        page.get_by_text("There is no experiment").wait_for(timeout=60_000)
        settle(page)
        navigation = page.locator("[data-testid=stSidebarNav]").inner_text()
        assert "Seed vs no seed" in navigation and "History" in navigation
        assert "app" not in navigation.split()
        page.close()


def test_sweep_charts_the_cells_and_a_click_opens_one(fake_server, app_url, browser):
    page = browser.new_page(viewport={"width": 1500, "height": 2300})
    page.goto(app_url + "/sweep")
    page.get_by_role("button", name="Run sweep").wait_for(timeout=60_000)
    runs = page.get_by_label("Runs per cell")
    runs.fill("2")
    runs.press("Enter")
    page.get_by_text("= 24 requests").wait_for(timeout=30_000)
    page.get_by_role("button", name="Run sweep").click()
    page.get_by_text("Pick a cell in the table").wait_for(timeout=60_000)
    settle(page)
    assert len(fake_server.received) == 24
    assert page.locator("[data-testid=stVegaLiteChart]").count() == 2
    table = page.locator("[data-testid=stDataFrame]").last.bounding_box()
    page.mouse.click(table["x"] + 18, table["y"] + 35 + 17)  # the first row's selection box
    page.get_by_role("heading", name="T=0 · seed 42").wait_for(timeout=30_000)
    page.locator("[data-verdict]").wait_for(timeout=30_000)
    settle(page)
    assert page.get_by_text("2 of 2 identical — reproducible").is_visible()
    assert page.locator(".rl-card[data-run]").count() == 1  # the two identical runs, stacked as "A ×2"
    page.screenshot(path=ARTIFACTS / "sweep.png", full_page=True)
    page.close()
