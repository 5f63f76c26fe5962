"""The demo as a room sees it, in Chromium against the loopback server: the verdict in view without scrolling at
1280×720, results dimmed once a setting changes, presentation mode, a narrow (150 % zoom) window; screenshots in
light and dark at 1280×720 and 1920×1080 under artifacts/screens/."""

from __future__ import annotations

import time

import pytest

from tests.test_browser import ARTIFACTS, settle
from tests.test_browser import app_url, azure_variables, browser  # noqa: F401 (fixtures this module uses)

pytestmark = pytest.mark.browser

SCREENS = ARTIFACTS / "screens"
LAPTOP = {"width": 1280, "height": 720}
FULL_HD = {"width": 1920, "height": 1080}
STALE = "From the previous settings"


def open_at(browser, url: str, viewport: dict, scheme: str = "light", scale: float = 1):  # noqa: F811
    page = browser.new_page(viewport=viewport, color_scheme=scheme, device_scale_factor=scale)
    page.goto(url)
    page.get_by_role("button", name="Run").first.wait_for(timeout=60_000)
    settle(page)
    return page


def run_the_classic_demo(page) -> None:
    """Click Run both and wait for the whole pair view: the legend is drawn after both verdicts and both diffs
    (the status widget alone may not have appeared yet when the second verdict arrives)."""
    page.get_by_role("button", name="Run both", exact=True).click()
    page.locator("[data-verdict]").nth(1).wait_for(timeout=60_000)
    page.locator(".rl-legend").wait_for(timeout=60_000)
    settle(page)


SCROLLED = "Math.max(window.scrollY, ...[...document.querySelectorAll('.stMain, .stApp')].map(e => e.scrollTop))"


def in_view(page, locator, within_s: float = 10) -> bool:
    """Whether the element comes to lie wholly inside the viewport, below the top bar, with nothing scrolled, within
    `within_s` (on a busy machine the browser may still be laying out what the run drew last)."""
    deadline = time.monotonic() + within_s
    while not _inside(page, locator):
        if time.monotonic() > deadline:
            return False
        page.wait_for_timeout(200)
    return True


def _inside(page, locator) -> bool:
    box, size = locator.bounding_box(), page.viewport_size
    top_bar = page.locator("[data-testid=stHeader]").bounding_box()
    return (page.evaluate(SCROLLED) == 0 and top_bar["y"] + top_bar["height"] <= box["y"]
            and box["y"] + box["height"] <= size["height"] and 0 <= box["x"]
            and box["x"] + box["width"] <= size["width"])


def shoot(page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENS / f"{name}.png")


@pytest.mark.parametrize("viewport", [LAPTOP, FULL_HD], ids=["1280x720", "1920x1080"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_after_the_classic_demo_both_verdicts_are_in_view(fake_server, app_url, browser,  # noqa: F811
                                                          viewport, scheme):
    page = open_at(browser, app_url, viewport, scheme)
    assert page.locator("h1").first.inner_text() == "Seed vs no seed"  # the app opens on the classic demo
    shoot(page, f"seed-before-{viewport['width']}x{viewport['height']}-{scheme}")
    run_the_classic_demo(page)
    verdicts = page.locator("[data-verdict]")
    assert verdicts.count() == 2
    for k in range(2):
        assert in_view(page, verdicts.nth(k).locator(".rl-v-sentence")), f"verdict {k} is below the fold"
    assert page.get_by_text("5 of 5 identical — reproducible").is_visible()
    shoot(page, f"seed-{viewport['width']}x{viewport['height']}-{scheme}")
    page.close()


def test_the_experiment_verdict_is_in_view_after_a_run(fake_server, app_url, browser):  # noqa: F811
    page = open_at(browser, app_url + "/experiment", LAPTOP)
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator("[data-verdict]").wait_for(timeout=60_000)
    settle(page)
    assert in_view(page, page.locator("[data-verdict] .rl-v-sentence"))
    shoot(page, "experiment-1280x720-light")
    page.close()


def test_changing_the_temperature_after_a_run_marks_the_results_stale(fake_server, app_url, browser):  # noqa: F811
    page = open_at(browser, app_url, LAPTOP)
    run_the_classic_demo(page)
    assert page.get_by_text(STALE).count() == 0
    slider = page.get_by_role("slider", name="Temperature")
    slider.focus()
    slider.press("ArrowRight")
    page.get_by_text(STALE).first.wait_for(timeout=30_000)
    page.get_by_text("Both scenarios:").wait_for(timeout=30_000)
    settle(page)
    shoot(page, "seed-stale-1280x720-light")
    assert page.locator("[data-verdict]").count() == 2  # still there, dimmed and labelled
    shoot(page, "seed-stale-1280x720-light")
    page.close()


def test_changing_the_seed_after_a_run_marks_the_results_stale(fake_server, app_url, browser):  # noqa: F811
    page = open_at(browser, app_url + "/experiment", LAPTOP)
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator("[data-verdict]").wait_for(timeout=60_000)
    settle(page)
    seed = page.get_by_label("Seed", exact=True)
    seed.fill("7")
    seed.press("Enter")
    page.get_by_text(STALE).first.wait_for(timeout=30_000)
    page.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_present_in_the_url_hides_the_sidebar_and_shows_full_width_diffs(fake_server, app_url, browser,  # noqa: F811
                                                                          scheme):
    page = open_at(browser, app_url + "/?present=1", LAPTOP, scheme)
    assert not page.locator("[data-testid=stSidebar]").is_visible()
    assert in_view(page, page.get_by_role("button", name="Run both", exact=True))
    shoot(page, f"present-before-1280x720-{scheme}")
    run_the_classic_demo(page)
    assert in_view(page, page.locator("[data-verdict] .rl-v-sentence").first)
    width = page.viewport_size["width"]
    diffs = page.locator(".rl-diff")
    assert diffs.count() == 2  # one per scenario, one above the other, each across the page
    assert all(diffs.nth(k).bounding_box()["width"] > 0.8 * width for k in range(2))
    shoot(page, f"present-1280x720-{scheme}")
    page.close()


def test_at_150_percent_zoom_the_sidebar_leaves_the_page_most_of_the_width(fake_server, app_url, browser):  # noqa: F811
    zoomed = {"width": round(1280 / 1.5), "height": round(720 / 1.5)}  # what 150 % zoom leaves of a 1280×720 window
    page = open_at(browser, app_url, zoomed, scale=1.5)
    sidebar = page.locator("[data-testid=stSidebar]")
    if sidebar.is_visible():
        assert sidebar.bounding_box()["width"] < zoomed["width"] / 3
    shoot(page, "seed-150-percent-light")
    page.close()
