"""The shared results view (ui.results, ui.groups, ui.verdict) drawn by AppTest from hand-made runs: the verdict
block, group badges and stacked cards, the folded shared start, the compact grid, the groups table at the fork, the
heatmap in group order, the stale label, and model text that stays text."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from streamlit.testing.v1 import AppTest

from core import compare, fork_causes
from core.models import RunError, RunRequest, RunResult, Usage
from ui.groups import LISTED_GROUPS, causes_list, groups_table
from ui.html import PALETTE
from ui.results import heatmap_cells
from ui.verdict import STALE_LABEL, contrast_line, verdict_html

SHARED = ("The red panda woke before dawn and climbed the tallest tree in the quiet forest, where the mist still hung "
          "between the branches, and then it ")
ATE, SLEPT = SHARED + "ate bamboo slowly.", SHARED + "slept again until noon."
OTHER = "A heron stood in the river."
PAYLOAD = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> & the red panda slept.'
VOID = {"br", "img", "hr", "input", "meta", "link"}


def runs(*texts: str, failed: tuple[int, ...] = ()) -> list[RunResult]:
    """A run per text, numbered in order, fingerprint fp_a; the indices in `failed` fail instead."""
    return [RunResult.failed(k, 12.0, RunError("server", "The server failed: 500", 500)) if k in failed
            else RunResult(index=k, latency_ms=800.0 + k, text=text, system_fingerprint="fp_a", finish_reason="stop",
                           usage=Usage(10, len(text.split()), 10 + len(text.split())))
            for k, text in enumerate(texts)]


class Elements(HTMLParser):
    """Every element of some markup: its tag, attributes and the text inside it, as a reader sees it."""

    def __init__(self, markup: str):
        super().__init__()
        self.found: list[dict] = []
        self._open: list[dict] = []
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, **{name: value or "" for name, value in attrs}, "text": ""}
        self.found.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_endtag(self, tag):
        while self._open and self._open.pop()["tag"] != tag:
            pass

    def handle_data(self, data):
        for element in self._open:
            element["text"] += data

    def having(self, css: str) -> list[dict]:
        return [element for element in self.found if css in element.get("class", "").split()]


def results_script(results, stale, request):
    from ui.results import show_results

    show_results(results, "view", made_by="scripted · T 0.7 · seed none · N runs", stale=stale, request=request)


def show(results: list[RunResult], *, stale: bool = False, request: RunRequest | None = None) -> AppTest:
    at = AppTest.from_function(results_script, args=(results, stale, request), default_timeout=30).run()
    assert not at.exception
    return at


def markup(at: AppTest) -> Elements:
    return Elements("\n".join(element.value for element in at.html))


def cards(at: AppTest) -> list[dict]:
    return markup(at).having("rl-card")


def test_each_group_gets_one_card_with_its_letter_and_colour():
    at = show(runs(ATE, ATE, SLEPT, ATE, OTHER, "", failed=(5,)))
    shown = cards(at)
    assert [(card.get("data-group"), card["data-run"], card.get("data-runs")) for card in shown] == [
        ("A", "0", "0 1 3"), ("B", "2", "2"), ("C", "4", "4"), (None, "5", None)]
    badges = markup(at).having("rl-badge")[:3]  # the cards come before the groups table
    assert [badge["text"] for badge in badges] == ["A ×3", "B", "C"]
    assert [badge["style"] for badge in badges] == [f"--rl-fill:{fill};--rl-ink:{ink}" for fill, ink in PALETTE[:3]]
    assert "rl-failed" in shown[3]["class"] and "The server failed: 500" in shown[3]["text"]
    assert "runs 1–2, 4" in shown[0]["text"]


def test_a_stack_counts_its_runs_and_a_letter_follows_the_group_size():
    at = show(runs(*[SLEPT] * 3, *[ATE] * 8, OTHER))
    shown = cards(at)
    assert [(card["data-group"], len(card["data-runs"].split())) for card in shown] == [("A", 8), ("B", 3), ("C", 1)]
    assert shown[0]["text"].startswith("A ×8runs 4–11")


def test_a_card_folds_the_shared_start_and_shows_the_text_from_a_few_words_before_the_fork():
    at = show(runs(ATE, ATE, SLEPT))
    page = markup(at)
    slept = next(card for card in page.having("rl-card") if card["data-group"] == "B")
    folded = SHARED.split()[:-4]  # the last four shared words stay in view
    summaries = [e["text"] for e in page.found if e["tag"] == "summary"]
    assert summaries == [f"…shared {len(folded)} words…"] * 2  # A's card and B's fold the same start
    details = [e["text"] for e in page.found if e["tag"] == "details"]
    assert details == [f"…shared {len(folded)} words…" + " ".join(folded) + " "] * 2
    assert slept["text"].endswith("the branches, and then it ◆ forkslept again until noon.")


def test_many_runs_become_a_compact_grid_that_keeps_the_group_letters():
    at = show(runs(*[ATE] * 10, *[SLEPT] * 2, OTHER, "x", failed=(13,)))
    [grid] = at.dataframe
    frame = grid.value
    assert list(frame.columns) == ["Run", "Group", "Latency (ms)", "Fingerprint", "Tokens", "Finish"]
    assert frame.Run.tolist() == list(range(1, 15))
    assert frame.Group.tolist() == ["A"] * 10 + ["B", "B", "C", "failed"]
    assert frame.Finish.tolist()[-1] == "failed: server"
    assert [card["data-group"] for card in cards(at)] == ["A", "B", "C"]


def test_twelve_runs_keep_their_cards_and_no_grid():
    at = show(runs(*[ATE] * 10, *[SLEPT] * 2))
    assert len(at.dataframe) == 0
    assert [card["data-group"] for card in cards(at)] == ["A", "B"]


def test_the_groups_table_previews_each_group_at_its_fork():
    at = show(runs(ATE, SLEPT, ATE))
    previews = [e["text"] for e in markup(at).having("rl-preview")]
    assert previews == ["…branches, and then it ate bamboo slowly.",
                        "…branches, and then it slept again until noon."]
    assert not any("red panda" in preview for preview in previews)
    cells = [cell["text"] for cell in markup(at).found if cell["tag"] == "td"]
    assert cells[:3] + cells[4:7] == ["A ×2", "1, 3", "modal", "B ×1", "2", f"word {len(SHARED.split()) + 1}"]


def test_the_groups_table_and_the_fork_causes_list_the_fifty_largest_groups_and_count_the_rest():
    """Regression: 1,000 distinct answers drew a 1,000-row groups table and 999 cause lines, 450 kB for the browser."""
    results = runs(*[ATE] * 3, *[f"{SHARED}then it counted to {k}." for k in range(117)])
    comparison = compare(results)
    table = Elements(groups_table(comparison))
    assert len(table.having("rl-preview")) == LISTED_GROUPS == 50
    assert [cell["text"] for cell in table.found if cell["tag"] == "td"][:2] == ["A ×3", "1–3"]
    assert [e["text"] for e in table.having("rl-more")] == ["68 more groups: the grid of runs gives each run's group."]
    causes = Elements(causes_list(fork_causes(results, RunRequest(prompt="p", temperature=0.7)), comparison))
    assert len(causes.having("rl-cause")) == 50
    assert [e["text"] for e in causes.having("rl-more")] == ["67 more groups: the grid of runs gives each run's group."]
    assert Elements(groups_table(compare(runs(ATE, SLEPT)))).having("rl-more") == []


def test_the_heatmap_puts_each_groups_runs_together():
    results = runs(ATE, SLEPT, ATE, OTHER, SLEPT, ATE)
    cells, labels = heatmap_cells(compare(results))
    assert labels == ["A · run 1", "A · run 3", "A · run 6", "B · run 2", "B · run 5", "C · run 4"]
    assert cells.set_index(["a", "b"]).similarity[("A · run 1", "A · run 6")] == 1.0
    at = show(results)
    [chart] = at.get("vega_lite_chart")
    spec = json.loads(chart.proto.spec)
    assert spec["encoding"]["x"]["sort"] == labels


def test_above_fifty_runs_the_heatmap_shows_groups():
    cells, labels = heatmap_cells(compare(runs(*[ATE] * 40, *[SLEPT] * 11, OTHER)))
    assert labels == ["A ×40", "B ×11", "C ×1"]
    assert len(cells) == 9


def test_the_stale_label_is_there_only_when_the_settings_changed():
    results = runs(ATE, SLEPT)
    assert STALE_LABEL not in "".join(h.value for h in show(results).html)
    stale = [h.value for h in show(results, stale=True).html if STALE_LABEL in h.value]
    assert stale == [f'<p class="rl-stale-label">{STALE_LABEL}</p>']


def test_the_verdict_block_states_what_the_batch_proves():
    page = markup(show(runs(*[ATE] * 50)))
    [block] = page.having("rl-verdict")
    assert page.having("rl-v-sentence")[0]["text"] == "50 of 50 identical — reproducible"
    assert page.having("rl-v-stats")[0]["text"] == "0 of 50 diverged → at most 5.8 % of requests diverge (95 %)"
    assert page.having("rl-v-made")[0]["text"] == "scripted · T 0.7 · seed none · N runs"
    numbers = {e["data-number"]: e["text"] for e in page.found if "data-number" in e}
    assert numbers == {"unique": "unique outputs1 / 50", "identical": "identical to the modal answer100%",
                       "divergence": "first divergenceall identical", "agreement": "identical pairs100%",
                       "fingerprints": "fingerprints1"}
    assert block is page.found[0]  # the first thing the view shows


def test_a_split_batch_gets_a_wilson_interval_and_its_pairwise_agreement():
    page = markup(show(runs(*[ATE] * 48, *[SLEPT] * 12)))
    assert page.having("rl-v-stats")[0]["text"] == "12 of 60 diverged → 11.8–31.8 % of requests diverge (95 %)"
    numbers = {e["data-number"]: e["text"] for e in page.found if "data-number" in e}
    assert numbers["agreement"] == "identical pairs67%"  # (C(48,2) + C(12,2)) / C(60,2) = 1194 / 1770
    assert page.having("rl-v-sentence")[0]["text"] == (f"48 of 60 agree; 12 runs part, the first at word "
                                                        f"{len(SHARED.split()) + 1}")


def test_each_fork_cause_is_one_line_with_its_group():
    at = show(runs(ATE, SLEPT, ATE, OTHER), request=RunRequest(prompt="A story.", temperature=0.7))
    items = [e for e in markup(at).found if e["tag"] == "li"]
    assert [item["text"] for item in items] == [
        "Bsamplingno seed at temperature 0.7: every run draws its own tokens",
        "Csamplingno seed at temperature 0.7: every run draws its own tokens"]


@pytest.mark.parametrize("many", [False, True], ids=["cards", "grid"])
def test_html_in_a_runs_text_is_shown_as_text(many):
    texts = [PAYLOAD, PAYLOAD, "The red panda slept."] + [PAYLOAD] * (12 if many else 0)
    at = show(runs(*texts))
    sent = "".join(h.value for h in at.html)
    assert "<img" not in sent and "<script" not in sent
    page = markup(at)
    assert any(PAYLOAD in card["text"] for card in page.having("rl-card"))
    assert any(PAYLOAD in preview["text"] for preview in page.having("rl-preview"))


def test_every_badge_ink_reads_on_its_fill():
    def luminance(colour: str) -> float:
        channels = [int(colour[k:k + 2], 16) / 255 for k in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    for fill, ink in PALETTE:
        light, dark = sorted((luminance(fill), luminance(ink)), reverse=True)
        assert (light + 0.05) / (dark + 0.05) >= 4.5, fill


def test_a_verdict_block_alone_carries_its_title_and_its_own_stale_label():
    comparison = compare(runs(ATE, ATE))
    fresh = Elements(verdict_html(comparison, "seed 42 · N 2", title="With seed 42"))
    stale = Elements(verdict_html(comparison, "seed 42 · N 2", title="With seed 42", stale=True))
    assert fresh.having("rl-v-title")[0]["text"] == "With seed 42" and not fresh.having("rl-stale-label")
    assert [e["text"] for e in stale.having("rl-stale-label")] == [STALE_LABEL]
    assert "rl-stale" in stale.having("rl-verdict")[0]["class"].split()


def test_two_batches_are_contrasted_in_one_line_with_fishers_exact_test():
    seeded = compare(runs(*["same answer"] * 10))
    unseeded = compare(runs(*[f"answer {k}" for k in range(10)]))
    assert contrast_line(("seed 42", seeded), ("no seed", unseeded)) == (
        "seed 42: 10/10 identical vs no seed: 1/10; p < 0.001, Fisher's exact test (one-sided): "
        "more than chance explains.")
    assert contrast_line(("seed 42", seeded), ("no seed", compare(runs("x", failed=(0,))))) == ""


def memo_script(first, second, keys):
    import streamlit as st

    from ui.results import compared

    st.session_state.setdefault("seen", []).append([compared(first, key) for key in keys] + [compared(second, keys[0])])


def test_a_view_compares_its_runs_once_and_again_only_when_they_change():
    first, second = runs(ATE, SLEPT, ATE), runs(ATE, ATE, ATE)
    at = AppTest.from_function(memo_script, args=(first, second, ["a", "b"]), default_timeout=30).run()
    at.run()
    (a, b, changed), again = at.session_state["seen"]
    assert a is not b and changed is not a and changed.summary.all_identical  # two views, then new runs in one
    assert again[1] is b  # the same runs under the same key: the kept comparison
    assert again[0] is not a and again[0] == a  # the first view's runs changed back: compared again


def test_only_the_last_few_views_keep_their_comparison():
    from ui.results import COMPARISONS_KEPT

    keys = [f"view {k}" for k in range(COMPARISONS_KEPT + 2)]
    at = AppTest.from_function(memo_script, args=(runs(ATE, SLEPT), runs(ATE), keys), default_timeout=30).run()
    assert len(at.session_state["results_compared"]) == COMPARISONS_KEPT
