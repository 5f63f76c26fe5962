"""Run cards in Chromium at a laptop's 1280×720: a long unbroken fingerprint, finish reason, notice or error stays
inside its card (in the app against the loopback server, and as ui.html's markup on its own); grouped cards, the
verdict block, the stale label and the compact grid as the shared results view draws them, in light and dark."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.models import RunError, RunResult
from tests.test_browser import ARTIFACTS, ROOT, _free_port, run_experiment, settle
from tests.test_browser import app_url, azure_variables, browser  # noqa: F401 (fixtures this module uses)
from ui.groups import stack_card
from ui.html import PALETTE, STYLE, run_card

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1280, "height": 720}
UNBROKEN = ("fp_" + "9b3c0e71" * 40)[:300]
SLACK_PX = 1  # sub-pixel rounding

# Each card: its box, and what of it lies outside the card left or right, or (for its own rows) below.
MEASURE = """cards => cards.map(card => {
  const box = card.getBoundingClientRect();
  const outside = [...card.querySelectorAll('*')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.left < box.left - %(slack)s || r.right > box.right + %(slack)s
      || (e.parentElement === card && (r.top < box.top - %(slack)s || r.bottom > box.bottom + %(slack)s));
  }).map(e => e.outerHTML.slice(0, 60));
  return {box: [box.left, box.top, box.right, box.bottom], outside, overflow: card.scrollWidth - card.clientWidth};
})""" % {"slack": SLACK_PX}


def measured(page) -> list[dict]:
    return page.locator(".rl-card[data-run]").evaluate_all(MEASURE)


def overlapping(boxes: list[list[float]]) -> list[tuple[int, int]]:
    """Pairs of boxes that share more than the slack."""
    return [(i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes) if i < j
            and min(a[2], b[2]) - max(a[0], b[0]) > SLACK_PX and min(a[3], b[3]) - max(a[1], b[1]) > SLACK_PX]


def assert_contained(cards: list[dict]) -> None:
    for k, card in enumerate(cards):
        assert card["outside"] == [], f"card {k} overflows: {card['outside']}"
        assert card["overflow"] <= SLACK_PX, f"card {k} scrolls sideways by {card['overflow']} px"
    assert overlapping([card["box"] for card in cards]) == []


def test_a_long_fingerprint_stays_inside_its_card(fake_server, app_url, browser):  # noqa: F811
    fake_server.fingerprint = UNBROKEN
    fake_server.answers.extend(f"The red panda slept {k} hours." for k in range(5))  # five groups: five cards
    page = browser.new_page(viewport=LAPTOP)
    page.goto(app_url + "/experiment")
    page.get_by_role("button", name="Run", exact=True).wait_for(timeout=60_000)
    run_experiment(page, runs=5)
    cards = measured(page)
    assert len(cards) == 5
    assert page.locator(".rl-card[data-run]").first.inner_text().replace("\n", "").count(UNBROKEN) == 1
    page.locator(".rl-card[data-run]").first.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "cards-long-fingerprint.png")
    assert_contained(cards)
    page.close()


def test_every_long_field_of_a_card_wraps_inside_it(browser):  # noqa: F811
    """The markup alone, three cards a row as the app lays them out: the finish reason, notice and error too."""
    results = [
        RunResult(index=0, latency_ms=812.0, text="The red panda slept.", system_fingerprint=UNBROKEN,
                  finish_reason="stop"),
        RunResult(index=1, latency_ms=790.0, text="The red panda slept.", finish_reason=UNBROKEN, notice=UNBROKEN),
        RunResult.failed(2, 15.0, RunError("server", f"The server failed: {UNBROKEN}", 500), retries=2),
        RunResult(index=3, latency_ms=801.0, text="x" * 900, system_fingerprint="fp_1", finish_reason="length"),
    ]
    stacked = [RunResult(index=k, latency_ms=800.0 + k, text="y" * 400, system_fingerprint=UNBROKEN + str(k),
                         finish_reason=UNBROKEN, notice=UNBROKEN) for k in (4, 5)]
    columns = "".join(f"<div>{markup}</div>" for markup in
                      [run_card(results[0], "A"), *map(run_card, results[1:]), stack_card(stacked, "B", None)])
    page = browser.new_page(viewport=LAPTOP)
    page.set_content(STYLE + '<div style="display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:1rem;'
                     f'width:960px;font-family:sans-serif">{columns}</div>')
    cards = measured(page)
    assert len(cards) == 5
    page.screenshot(path=ARTIFACTS / "cards-long-fields.png")
    assert_contained(cards)
    page.close()


DEMO = """
import streamlit as st

from core.models import RunRequest
from tests.test_results_view import ATE, OTHER, SLEPT, runs
from ui.html import STYLE
from ui.results import show_results

st.set_page_config(page_title="Results", layout="wide")
st.html(STYLE)
n = int(st.query_params.get("n", "8"))
st.title("Experiment")
st.text_area("Prompt", "Create a story about a red panda.", height=68)  # what a page has above its results
st.button("Run", type="primary")
show_results(runs(*[ATE] * (n - 3), SLEPT, SLEPT, OTHER), "demo", stale=st.query_params.get("stale") == "1",
             made_by="azure gpt-4o · T 0.7 · top_p 1 · seed none · N " + str(n),
             request=RunRequest(prompt="A story.", temperature=0.7))
"""
SCREENS = ARTIFACTS / "screens"


@contextlib.contextmanager
def serve_script(folder: Path, script: str):
    """`streamlit run` of one script on a loopback port, with the repo's theme (light and dark); yields the URL."""
    (folder / ".streamlit").mkdir()
    shutil.copy(ROOT / ".streamlit" / "config.toml", folder / ".streamlit" / "config.toml")
    (folder / "demo.py").write_text(script)
    port = _free_port()
    with open(folder / "streamlit.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "demo.py", "--server.headless", "true", "--server.address",
             "127.0.0.1", "--server.port", str(port)], cwd=folder, stdout=log, stderr=subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "HOME": str(folder), "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _healthy(url):
            if time.monotonic() > deadline:
                pytest.fail("streamlit did not start: " + (folder / "streamlit.log").read_text())
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok"
    except OSError:
        return False


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
    with serve_script(tmp_path_factory.mktemp("demo"), DEMO) as url:
        yield url


def open_demo(browser, url: str, scheme: str = "light"):  # noqa: F811
    page = browser.new_page(viewport=LAPTOP, color_scheme=scheme)
    page.goto(url)
    page.locator(".rl-verdict").wait_for(timeout=60_000)
    settle(page)
    return page


def luminance(rgb: str) -> float:
    """WCAG relative luminance of a computed "rgb(r, g, b)" or "rgba(…)" colour."""
    channels = [float(part) / 255 for part in re.findall(r"[\d.]+", rgb)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


PAGE_BACKGROUND = "() => getComputedStyle(document.querySelector('[data-testid=stApp]')).backgroundColor"
COLOURS = "e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_grouped_cards_and_the_verdict_read_in_both_themes(demo_url, browser, scheme):  # noqa: F811
    page = open_demo(browser, demo_url, scheme)
    verdict = page.locator(".rl-verdict").bounding_box()
    assert verdict["y"] + verdict["height"] <= LAPTOP["height"], "the verdict is below the fold"
    cards = page.locator(".rl-card[data-group]")
    assert cards.evaluate_all("cards => cards.map(c => c.dataset.group)") == ["A", "B", "C"]
    badges = page.locator(".rl-card .rl-badge")
    assert badges.all_inner_texts() == ["A ×5", "B ×2", "C"]
    background = page.evaluate(PAGE_BACKGROUND)
    for k, (fill, ink) in enumerate(PALETTE[:3]):
        colour, behind = badges.nth(k).evaluate(COLOURS)
        assert contrast(colour, behind) >= 4.5, (k, colour, behind)
    text, _ = page.locator(".rl-card .rl-text").first.evaluate(COLOURS)
    assert contrast(text, background) >= 7, (text, background)
    sentence, _ = page.locator(".rl-v-sentence").evaluate(COLOURS)
    assert contrast(sentence, background) >= 7
    page.get_by_text("…shared 22 words…").click()  # the fold opens
    assert page.locator(".rl-card[data-group=B] details[open]").count() == 1
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENS / f"cards-grouped-{scheme}.png")
    page.close()


def test_results_from_previous_settings_are_dimmed_and_labelled(demo_url, browser):  # noqa: F811
    page = open_demo(browser, demo_url + "/?stale=1")
    label = page.get_by_text("From the previous settings — run again to refresh")
    assert label.is_visible()
    opacity = "e => getComputedStyle(e.closest('[data-testid=stElementContainer]')).opacity"
    assert label.evaluate(opacity) == "1"
    assert float(page.locator(".rl-verdict").evaluate(opacity)) < 0.5
    page.screenshot(path=SCREENS / "results-stale.png")
    page.close()


def test_a_run_picked_in_the_compact_grid_opens_beside_it(demo_url, browser):  # noqa: F811
    page = open_demo(browser, demo_url + "/?n=22", "dark")
    grid = page.locator("[data-testid=stDataFrame]")
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    header = row = 35  # px: glide-data-grid draws the rows on a canvas, so the row's box is clicked by position
    page.mouse.click(box["x"] + 16, box["y"] + header + row * 1.5)  # run 2's selection box
    page.locator(".rl-card[data-runs='1']").wait_for(timeout=30_000)
    opened = page.locator(".rl-card[data-runs='1']")
    assert opened.get_attribute("data-group") == "A"
    assert opened.locator(".rl-badge").inner_text() == "A"
    page.screenshot(path=SCREENS / "cards-grid-dark.png")
    page.close()
