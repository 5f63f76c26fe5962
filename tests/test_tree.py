"""The divergence tree, built exactly for hand-made runs, rendered as lines, and fast on 50 long runs."""

from __future__ import annotations

import math
import random

from core.analysis.compare import compare
from core.analysis.diff import tokenize
from core.models import Alternative, RunError, RunResult, TokenLogprob
from core.analysis.tree import Branch, divergence_tree, render_lines

SHARED = " ".join(f"w{k}" for k in range(37)) + " "


def ok(index: int, text: str, logprobs: tuple[TokenLogprob, ...] | None = None) -> RunResult:
    return RunResult(index=index, latency_ms=10.0, text=text, logprobs=logprobs)


def failed(index: int) -> RunResult:
    return RunResult.failed(index, 5.0, RunError("timeout", "no answer"))


def leaf(text: str, *runs: int) -> Branch:
    return Branch(len(text.split()), text, runs, (), None)


def paths(branch: Branch, before: str = "") -> dict[int, str]:
    """Each run's text, rebuilt by walking from the root to the leaf that holds it."""
    here = before + branch.text
    if not branch.children:
        return {run: here for run in branch.runs}
    out: dict[int, str] = {}
    for child in branch.children:
        out.update(paths(child, here))
    return out


def test_the_issue_example():
    runs = [ok(k, SHARED + "bamboo grove.") for k in range(4)] + [ok(4, SHARED + "forest floor.")]
    tree = divergence_tree(runs)
    assert tree == Branch(37, SHARED, (0, 1, 2, 3, 4), (leaf("bamboo grove.", 0, 1, 2, 3), leaf("forest floor.", 4)),
                          None)
    assert render_lines(tree) == [
        "37 words shared → 'bamboo' ×4 / 'forest' ×1",
        "  'bamboo' ×4 · 2 words · runs 1–4",
        "  'forest' ×1 · 2 words · run 5",
    ]


def test_nested_forks_ordered_by_count_then_first_run():
    runs = [
        ok(0, "The red panda climbed the tall tree."),
        ok(1, "The red panda slept."),
        ok(2, "The red panda climbed the bamboo."),
        failed(3),
        ok(4, "The red panda climbed the tall tree."),
        ok(5, "The red panda slept all day."),
        ok(6, "The red panda climbed the tall wall."),
    ]
    tree = divergence_tree(runs)
    assert tree == Branch(3, "The red panda ", (0, 1, 2, 4, 5, 6), (
        Branch(2, "climbed the ", (0, 2, 4, 6), (
            Branch(1, "tall ", (0, 4, 6), (leaf("tree.", 0, 4), leaf("wall.", 6)), None),
            leaf("bamboo.", 2),
        ), None),
        # "slept." and "slept " are different tokens: one run stops there, the other goes on.
        leaf("slept.", 1),
        leaf("slept all day.", 5),
    ), None)
    assert render_lines(tree) == [
        "3 words shared → 'climbed' ×4 / 'slept.' ×1 / 'slept' ×1",
        "  'climbed' ×4 · 2 words shared → 'tall' ×3 / 'bamboo.' ×1",
        "    'tall' ×3 · 1 word shared → 'tree.' ×2 / 'wall.' ×1",
        "      'tree.' ×2 · 1 word · runs 1, 5",
        "      'wall.' ×1 · 1 word · run 7",
        "    'bamboo.' ×1 · 1 word · run 3",
        "  'slept.' ×1 · 1 word · run 2",
        "  'slept' ×1 · 3 words · run 6",
    ]


def test_a_run_that_ends_where_others_go_on_is_an_end_leaf():
    tree = divergence_tree([ok(0, "Yes. "), ok(1, "Yes. Sure."), ok(2, "Yes. Sure!")])
    assert tree == Branch(1, "Yes. ", (0, 1, 2), (Branch(0, "", (0,), (), None), leaf("Sure.", 1), leaf("Sure!", 2)),
                          None)
    assert render_lines(tree) == [
        "1 word shared → (end) ×1 / 'Sure.' ×1 / 'Sure!' ×1",
        "  (end) ×1 · run 1",
        "  'Sure.' ×1 · 1 word · run 2",
        "  'Sure!' ×1 · 1 word · run 3",
    ]


def test_words_that_differ_only_in_the_whitespace_after_them_show_it():
    tree = divergence_tree([ok(0, "Hello world"), ok(1, "Hello world\n\nBye"), ok(2, "Hello world again")])
    assert render_lines(tree) == [
        "1 word shared → 'world' ×1 / 'world\\n\\n' ×1 / 'world ' ×1",
        "  'world' ×1 · 1 word · run 1",
        "  'world\\n\\n' ×1 · 2 words · run 2",
        "  'world ' ×1 · 2 words · run 3",
    ]


def test_runs_that_share_nothing_and_a_leading_line_break():
    tree = divergence_tree([ok(0, "A cat."), ok(1, "\nA dog."), ok(2, "Three words here")])
    assert tree.shared_words == 0 and tree.text == ""
    assert render_lines(tree) == [
        "0 words shared → 'A' ×1 / '\\n' ×1 / 'Three' ×1",
        "  'A' ×1 · 2 words · run 1",
        "  '\\n' ×1 · 2 words · run 2",
        "  'Three' ×1 · 3 words · run 3",
    ]


def test_identical_runs_are_one_leaf_and_failed_runs_are_left_out():
    tree = divergence_tree([ok(0, "Same."), failed(1), ok(2, "Same."), ok(3, "Same."), ok(5, "Same.")])
    assert tree == Branch(1, "Same.", (0, 2, 3, 5), (), None)
    assert render_lines(tree) == ["1 word · runs 1, 3–4, 6"]
    assert render_lines(divergence_tree([ok(7, "熊猫吃竹子")])) == ["5 words · run 8"]


def test_no_successful_run_no_tree():
    assert divergence_tree([failed(0), failed(1)]) is None
    assert divergence_tree([]) is None
    assert render_lines(None) == []


def test_long_words_are_cut_in_the_lines():
    tree = divergence_tree([ok(0, "a " + "x" * 40), ok(1, "a b")])
    assert render_lines(tree)[0] == "1 word shared → '" + "x" * 23 + "…' ×1 / 'b' ×1"


# Near ties, from the runs' logprobs


def lp(*tokens: tuple[str, float, float]) -> tuple[TokenLogprob, ...]:
    """(token, its probability, the runner-up's probability) → TokenLogprob with two alternatives."""
    return tuple(TokenLogprob(t, math.log(p), (Alternative(t, math.log(p)), Alternative("~", math.log(q))))
                 for t, p, q in tokens)


def test_near_ties_are_marked_at_each_fork():
    runs = [
        ok(0, "A red panda.", lp(("A", 0.9, 0.1), (" red", 0.45, 0.4), (" panda", 0.9, 0.05), (".", 0.99, 0.01))),
        ok(1, "A red fox.", lp(("A", 0.9, 0.1), (" red", 0.45, 0.4), (" fox", 0.2, 0.7), (".", 0.99, 0.01))),
        ok(2, "A blue bird.", lp(("A", 0.9, 0.1), (" blue", 0.4, 0.45), (" bird", 0.9, 0.05), (".", 0.99, 0.01))),
    ]
    tree = divergence_tree(runs)
    assert tree.near_tie is True  # " red" vs " blue": 0.45 against 0.4
    red = tree.children[0]
    assert red.text == "red " and red.near_tie is False  # " panda" 0.9 vs 0.05, " fox" 0.7 vs 0.2: clear calls
    assert all(child.near_tie is None for child in red.children)
    assert render_lines(tree)[:2] == ["1 word shared → 'red' ×2 / 'blue' ×1 · near tie",
                                      "  'red' ×2 · 1 word shared → 'panda.' ×1 / 'fox.' ×1"]


def test_near_tie_is_unknown_when_a_run_has_no_logprobs():
    with_logprobs = ok(0, "A red panda.", lp(("A", 0.9, 0.1), (" red", 0.45, 0.4), (" panda.", 0.9, 0.05)))
    tree = divergence_tree([with_logprobs, ok(1, "A blue panda.")])
    assert tree.near_tie is None
    assert divergence_tree([ok(0, "A b"), ok(1, "A c")]).near_tie is None


def test_an_ending_run_takes_the_next_token_of_the_others_as_the_fork():
    runs = [ok(0, "Yes", lp(("Yes", 0.9, 0.1))), ok(1, "Yes.", lp(("Yes", 0.9, 0.1), (".", 0.5, 0.45)))]
    assert divergence_tree(runs).near_tie is True


# Against the comparison engine, and fast


def long_runs(count: int = 50, chars: int = 4000, seed: int = 7) -> list[RunResult]:
    """Runs that share a random prefix and part at random points, as a sampled batch would."""
    rng = random.Random(seed)
    vocabulary = [f"word{k}" for k in range(300)] + ["the", "panda", "bamboo", "forest", "tree.", "\n\n"]
    base = [rng.choice(vocabulary) for _ in range(chars // 6)]
    runs = []
    for index in range(count):
        words = list(base)
        for _ in range(rng.randrange(4)):
            at = rng.randrange(len(words) // 3, len(words))
            words[at:] = [rng.choice(vocabulary) for _ in range(len(words) - at)]
        text = " ".join(words)[:chars]
        tokens = tokenize(text)
        runs.append(ok(index, text, lp(*((t, 0.6, 0.3) for t in tokens))))
    return runs


def test_every_run_is_rebuilt_from_its_path_and_the_root_matches_compare():
    runs = long_runs(count=30, chars=1500, seed=3)
    tree = divergence_tree(runs)
    assert paths(tree) == {r.index: r.text for r in runs}
    assert tree.shared_words == compare(runs).summary.shared_prefix_words
    assert tree.text == compare(runs).shared_prefix

    def check(branch: Branch) -> None:
        assert len(branch.children) != 1
        assert branch.runs == tuple(sorted(branch.runs))
        assert sorted(r for child in branch.children for r in child.runs) == list(branch.runs) or not branch.children
        counts = [(-len(child.runs), child.runs[0]) for child in branch.children]
        assert counts == sorted(counts)
        for child in branch.children:
            check(child)

    check(tree)
