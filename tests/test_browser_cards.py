"""Run cards keep a long unbroken fingerprint, finish reason, notice or error inside their borders, in Chromium at a
laptop's 1280×720: in the app against the loopback server, and as ui.html's markup on its own."""

from __future__ import annotations

import pytest

from core.models import RunError, RunResult
from tests.test_browser import ARTIFACTS, run_experiment
from tests.test_browser import app_url, azure_variables, browser  # noqa: F401 (fixtures this module uses)
from ui.html import STYLE, run_card

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
    page = browser.new_page(viewport=LAPTOP)
    page.goto(app_url)
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
    columns = "".join(f"<div>{run_card(result)}</div>" for result in results)
    page = browser.new_page(viewport=LAPTOP)
    page.set_content(STYLE + '<div style="display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:1rem;'
                     f'width:960px;font-family:sans-serif">{columns}</div>')
    cards = measured(page)
    assert len(cards) == 4
    page.screenshot(path=ARTIFACTS / "cards-long-fields.png")
    assert_contained(cards)
    page.close()
