"""The Probe page in a real Chromium at a laptop's 1280×720 against the loopback server acting as a reasoning model:
the cost is confirmed, the probe runs, its one-line summary is on screen and the rejected temperature has its row."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.test_browser import ARTIFACTS, settle
from tests.test_browser import app_url, azure_variables, browser  # noqa: F401 (fixtures this module uses)

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1280, "height": 720}


def test_a_probe_of_a_reasoning_model_shows_its_summary_and_the_rejected_temperature(fake_server, app_url, browser):
    fake_server.reasoning = True
    page = browser.new_page(viewport=LAPTOP)
    page.goto(app_url + "/probe")
    confirm = page.get_by_text("Yes, send", exact=False)
    confirm.wait_for(timeout=60_000)
    settle(page)
    assert page.get_by_role("button", name="Probe the endpoint").is_disabled()  # not before the cost is confirmed
    confirm.click()
    page.get_by_role("button", name="Probe the endpoint").click()

    summary = page.get_by_text("rejects temperature, top_p, logprobs", exact=False)
    summary.wait_for(timeout=120_000)
    settle(page)
    summary.evaluate("e => e.scrollIntoView({block: 'center'})")
    box = summary.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= LAPTOP["height"], box
    assert box["x"] >= 0 and box["x"] + box["width"] <= LAPTOP["width"], box
    assert "seed honoured" in summary.inner_text()
    # The request that changed only temperature was refused with the server's words, and the card says so.
    refusals = [r for r in fake_server.received if r.body.get("temperature") == 0.5]
    assert refusals
    grid = page.locator("[data-testid=stDataFrame]").first
    grid.scroll_into_view_if_needed()
    settle(page)
    # The grid draws on a canvas; its accessible table (filled a moment later) holds the cells' text.
    expect(grid).to_contain_text("parameter temperature", timeout=30_000)
    expect(grid).to_contain_text("does not support 0.5")
    (ARTIFACTS / "screens").mkdir(parents=True, exist_ok=True)
    summary.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=ARTIFACTS / "screens" / "probe-1280.png")
    page.close()
