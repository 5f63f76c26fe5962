"""The Suite page in a real Chromium at a laptop's 1280×720 against the loopback server: a small uploaded suite runs
end to end, the overall verdict fits the screen in large type, and a prompt's row opens its runs."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.test_browser import ARTIFACTS, settle
from tests.test_browser import app_url, azure_variables, browser  # noqa: F401 (fixtures this module uses)

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1280, "height": 720}
SUMS = ("2+2?", "1+3?", "5-1?")
ROW_PX = 35  # the height of a row (and of the header) in Streamlit's data grid


def write_suite(path) -> str:
    path.write_text("".join(json.dumps({"prompt": p, "expected": "4", "extractor": "number"}) + "\n" for p in SUMS))
    return str(path)


def open_suite_page(browser, url: str):  # noqa: F811 (browser: the fixture, passed on)
    page = browser.new_page(viewport=LAPTOP)
    page.goto(url + "/suite")
    page.get_by_text("My own file").wait_for(timeout=60_000)
    settle(page)
    return page


def test_a_small_suite_runs_end_to_end_and_its_verdict_fits_a_laptop_screen(fake_server, app_url, browser,
                                                                              tmp_path):
    fake_server.answers.extend(["Answer: 4"] * 8 + ["Answer: 5"])  # one run of one prompt is wrong
    page = open_suite_page(browser, app_url)
    page.get_by_text("My own file").click()
    page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(write_suite(tmp_path / "sums.jsonl"))
    page.get_by_text("The 3 prompts of sums.jsonl").wait_for(timeout=30_000)
    page.get_by_label("Runs per prompt").fill("3")
    page.get_by_label("Runs per prompt").press("Enter")
    page.get_by_text("3 prompts × 3 runs = 9 requests").wait_for(timeout=30_000)
    page.get_by_role("button", name="Run suite").click()

    verdict = page.locator("[data-suite-verdict]")
    verdict.wait_for(timeout=60_000)
    settle(page)
    assert len(fake_server.received) == 9
    assert verdict.locator(".rl-v-sentence").inner_text() == "TARr@3 67% · TARa@3 67% · accuracy 89%"
    assert "8/9 = 89% · 56.5–98.0%" in verdict.inner_text()
    verdict.evaluate("e => e.scrollIntoView({block: 'center'})")
    box = verdict.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= LAPTOP["height"], box
    assert box["x"] >= 0 and box["x"] + box["width"] <= LAPTOP["width"], box
    size = verdict.locator(".rl-v-sentence").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 30  # read from the back of a room
    (ARTIFACTS / "screens").mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "screens" / "suite-1280.png")

    grid = page.locator("[data-testid=stDataFrame]").last
    grid.scroll_into_view_if_needed()
    settle(page)
    heading = page.get_by_text("Prompt 1: 2+2?")
    for _ in range(3):  # a click that lands while the canvas grid is still being laid out selects nothing
        corner = grid.bounding_box()
        page.mouse.click(corner["x"] + 15, corner["y"] + ROW_PX * 1.5)  # the first row's selection box
        try:
            heading.wait_for(timeout=10_000)
            break
        except PlaywrightTimeout:
            continue
    heading.wait_for(timeout=10_000)
    settle(page)
    assert page.locator("[data-verdict]").count() == 1  # the prompt's own results view
    heading.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=ARTIFACTS / "screens" / "suite-1280-prompt.png")
    page.close()
