"""Exact tokens, segments, divergences, groups and numbers from `core.analysis.compare` on fixed inputs."""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path

import pytest

from core.analysis import compare as compare_module
from core.analysis.compare import (
    MATRIX_MAX_RUNS,
    Fingerprints,
    Group,
    compare,
    count_fingerprints,
    group_letter,
    group_outputs,
    similarity_matrix,
    verdict,
)
from core.analysis.diff import Divergence, Segment, diff, first_divergence, tokenize
from core.models import RunError, RunResult

FOX = "The quick brown fox jumps over the lazy dog."
TEN_THOUSAND = "".join(f"word{k} " for k in range(10_000))


def ok(index: int, text: str, fingerprint: str | None = "fp_a") -> RunResult:
    return RunResult(index=index, latency_ms=10.0, text=text, system_fingerprint=fingerprint)


def failed(index: int) -> RunResult:
    return RunResult.failed(index, 30_000.0, RunError("timeout", "no answer within 30 s"))


def checked_diff(a: str, b: str) -> list[Segment]:
    """The diff, after checking that its left and right sides rebuild both texts."""
    segments = diff(a, b)
    assert "".join(s.a for s in segments) == a
    assert "".join(s.b for s in segments) == b
    for segment in (s for s in segments if s.chars):
        assert "".join(c.a for c in segment.chars) == segment.a
        assert "".join(c.b for c in segment.chars) == segment.b
    return segments


def eq(text: str) -> Segment:
    return Segment("equal", text, text)


# Tokens


def test_tokens_are_words_with_the_whitespace_after_them():
    assert tokenize("  Hello,  world!\n\nBye") == ["  ", "Hello,  ", "world!\n\n", "Bye"]
    assert tokenize("") == []
    assert tokenize(" \t\n") == [" \t\n"]


def test_scripts_without_spaces_fall_back_to_characters():
    assert tokenize("我用Python写代码 2024年。") == ["我", "用", "Python", "写", "代", "码 ", "2024", "年", "。"]
    assert tokenize("東京\u3000大阪") == ["東", "京\u3000", "大", "阪"]
    assert tokenize("สวัสดีครับ") == ["ส", "วั", "ส", "ดี", "ค", "รั", "บ"]


def test_a_combining_mark_stays_with_its_character():
    assert tokenize("か\u3099ぎ") == ["か\u3099", "ぎ"]
    assert tokenize("cafe\u0301 au lait") == ["cafe\u0301 ", "au ", "lait"]


TRICKY = [
    "",
    " leading and trailing ",
    "tabs\tand\r\nwindows\rline\x0bends\x0c",
    "non\u00a0breaking\u2009thin\u3000ideographic",
    "Nice 👍🏽 family 👨‍👩‍👧 flag 🇫🇷 café cafe\u0301",
    "שלום עולם\u200f مرحبا بالعالم 42",
    "今天天气很好。東京は晴れです。สวัสดีครับ",
    '<p class="x">Hello <b>world</b></p><script>alert("&amp;")</script>',
    "\u0301 a mark with nothing before it, \u200d and a lone joiner",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tokens_rebuild_the_text_exactly(text):
    assert "".join(tokenize(text)) == text


def test_tokens_rebuild_random_text_exactly():
    rng = random.Random(20240601)
    alphabet = "ab Z\t\n\r\u00a0\u3000\u0301\u200d今天สวั👍🏽🇫<>&é"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert "".join(tokenize(text)) == text


# Diffs


def test_identical_texts_are_one_equal_segment():
    assert checked_diff(FOX, FOX) == [eq(FOX)]


def test_one_word_changed_in_the_middle():
    assert checked_diff(FOX, FOX.replace("brown", "red")) == [
        eq("The quick "),
        Segment("replace", "brown ", "red "),
        eq("fox jumps over the lazy dog."),
    ]


def test_a_short_alike_replacement_is_refined_by_character():
    assert checked_diff("Pick a colour scheme.", "Pick a color scheme.") == [
        eq("Pick a "),
        Segment("replace", "colour ", "color ", (eq("colo"), Segment("delete", "u", ""), eq("r "))),
        eq("scheme."),
    ]


def test_adjacent_changes_merge_into_one_replace():
    assert checked_diff("alpha beta gamma delta", "alpha one two delta") == [
        eq("alpha "),
        Segment("replace", "beta gamma ", "one two "),
        eq("delta"),
    ]


def test_a_shifted_word_stays_equal_rather_than_substituted():
    assert checked_diff("Answer: yes ", "yes indeed ") == [
        Segment("delete", "Answer: ", ""),
        eq("yes "),
        Segment("insert", "", "indeed "),
    ]


def test_divergence_at_the_first_word():
    assert checked_diff("Yes, the answer is 42.", "No, the answer is 42.") == [
        Segment("replace", "Yes, ", "No, "),
        eq("the answer is 42."),
    ]


def test_one_text_a_prefix_of_the_other():
    assert checked_diff("The answer is ", "The answer is 42.") == [eq("The answer is "), Segment("insert", "", "42.")]
    assert checked_diff("The answer is 42.", "The answer is ") == [eq("The answer is "), Segment("delete", "42.", "")]


def test_a_prefix_that_stops_inside_a_word_replaces_that_word():
    assert checked_diff("The answer is", "The answer is 42.") == [
        eq("The answer "),
        Segment("replace", "is", "is 42.", (eq("is"), Segment("insert", "", " 42."))),
    ]


def test_one_text_empty():
    assert checked_diff("", "Hello world") == [Segment("insert", "", "Hello world")]
    assert checked_diff("Hello world", "") == [Segment("delete", "Hello world", "")]


def test_both_texts_empty():
    assert checked_diff("", "") == []


def test_whitespace_only_differences():
    assert checked_diff("one two  three\n", "one two three") == [
        eq("one "),
        Segment(
            "replace",
            "two  three\n",
            "two three",
            (eq("two "), Segment("delete", " ", ""), eq("three"), Segment("delete", "\n", "")),
        ),
    ]


def test_emoji_modifiers_and_joined_emoji_change_as_one_character():
    assert checked_diff("Nice 👍🏽 work", "Nice 👍🏿 work") == [
        eq("Nice "),
        Segment("replace", "👍🏽 ", "👍🏿 ", (Segment("replace", "👍🏽", "👍🏿"), eq(" "))),
        eq("work"),
    ]
    assert checked_diff("Family: 👨‍👩‍👧", "Family: 👨‍👩‍👦") == [
        eq("Family: "),
        Segment("replace", "👨‍👩‍👧", "👨‍👩‍👦", (Segment("replace", "👨‍👩‍👧", "👨‍👩‍👦"),)),
    ]


def test_composed_and_decomposed_accents_differ_byte_for_byte():
    assert checked_diff("café au lait", "cafe\u0301 au lait") == [
        Segment("replace", "café ", "cafe\u0301 ", (eq("caf"), Segment("replace", "é", "e\u0301"), eq(" "))),
        eq("au lait"),
    ]


def test_right_to_left_text_keeps_logical_order():
    assert checked_diff("שלום עולם יפה", "שלום עולם טוב") == [eq("שלום עולם "), Segment("replace", "יפה", "טוב")]
    assert checked_diff("السعر 42 دولار", "السعر 43 دولار") == [
        eq("السعر "),
        Segment("replace", "42 ", "43 ", (eq("4"), Segment("replace", "2", "3"), eq(" "))),
        eq("دولار"),
    ]


def test_cjk_without_spaces_diffs_by_character():
    assert checked_diff("今天天气很好。", "今天天气不好。") == [
        eq("今天天气"),
        Segment("replace", "很", "不"),
        eq("好。"),
    ]
    assert checked_diff("東京は晴れです", "東京は雨です") == [
        eq("東京は"),
        Segment("replace", "晴れ", "雨"),
        eq("です"),
    ]


def test_ten_thousand_words_with_one_changed():
    changed = TEN_THOUSAND.replace("word5000 ", "CHANGED ")
    cut = TEN_THOUSAND.index("word5000 ")
    assert checked_diff(TEN_THOUSAND, changed) == [
        eq(TEN_THOUSAND[:cut]),
        Segment("replace", "word5000 ", "CHANGED "),
        eq(TEN_THOUSAND[cut + len("word5000 ") :]),
    ]


def test_ten_thousand_words_that_fork():
    prefix = TEN_THOUSAND[: TEN_THOUSAND.index("word2000 ")]
    a = prefix + "".join(f"alpha{k} " for k in range(8_000))
    b = prefix + "".join(f"beta{k} " for k in range(8_000))
    assert checked_diff(a, b) == [eq(prefix), Segment("replace", a[len(prefix) :], b[len(prefix) :])]


def test_html_is_diffed_as_plain_text():
    assert checked_diff("<p>Hello <b>world</b></p>", "<p>Hello <i>world</i></p>") == [
        eq("<p>Hello "),
        Segment(
            "replace",
            "<b>world</b></p>",
            "<i>world</i></p>",
            (eq("<"), Segment("replace", "b", "i"), eq(">world</"), Segment("replace", "b", "i"), eq("></p>")),
        ),
    ]


# First divergence


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (FOX, FOX, None),
        (FOX, FOX.replace("brown", "red"), Divergence(2, 2, 10)),
        ("Yes, the answer is 42.", "No, the answer is 42.", Divergence(0, 0, 0)),
        ("The answer is ", "The answer is 42.", Divergence(3, 3, 14)),
        ("The answer is", "The answer is 42.", Divergence(2, 2, 11)),
        ("", "Hello", Divergence(0, 0, 0)),
        ("", "", None),
        ("  Hello world", "  Hello there", Divergence(2, 1, 8)),
        ("one two  three", "one two three", Divergence(1, 1, 4)),
        ("Nice 👍🏽 work", "Nice 👍🏿 work", Divergence(1, 1, 5)),
        ("שלום עולם יפה", "שלום עולם טוב", Divergence(2, 2, 10)),
        ("今天天气很好。", "今天天气不好。", Divergence(4, 4, 4)),
        ("สวัสดีครับ", "สวัสดีค่ะ", Divergence(4, 4, 6)),
        ("<p>Hello <b>world</b></p>", "<p>Hello <i>world</i></p>", Divergence(1, 1, 9)),
    ],
)
def test_first_divergence(a, b, expected):
    assert first_divergence(a, b) == expected
    assert first_divergence(b, a) == expected


def test_first_divergence_in_ten_thousand_words():
    changed = TEN_THOUSAND.replace("word7777 ", "CHANGED ")
    assert first_divergence(TEN_THOUSAND, changed) == Divergence(7777, 7777, TEN_THOUSAND.index("word7777 "))


# Groups, similarity, fingerprints


def test_groups_are_exact_most_frequent_first_and_skip_failed_runs():
    results = [ok(0, "B"), ok(1, "A"), failed(2), ok(3, "A"), ok(4, "C"), ok(5, "B"), ok(6, "A")]
    assert group_outputs(results) == [Group("A", 3, (1, 3, 6)), Group("B", 2, (0, 5)), Group("C", 1, (4,))]


def test_groups_list_runs_by_index_whatever_order_they_completed_in():
    results = [ok(5, "B"), ok(4, "A"), ok(1, "B"), ok(0, "A")]
    assert group_outputs(results) == [Group("A", 2, (0, 4)), Group("B", 2, (1, 5))]


def test_loose_groups_ignore_whitespace_and_case():
    results = [ok(0, "Hello world"), ok(1, "hello  World\n"), ok(2, "Hello world"), ok(3, "Helloworld!")]
    assert group_outputs(results) == [
        Group("Hello world", 2, (0, 2)),
        Group("hello  World\n", 1, (1,)),
        Group("Helloworld!", 1, (3,)),
    ]
    assert group_outputs(results, loose=True) == [Group("Hello world", 3, (0, 1, 2)), Group("Helloworld!", 1, (3,))]


def test_similarity_matrix_is_normalised_indel_over_tokens():
    # "a b c" and "a b d" share 2 of their 3 + 3 tokens: 2 × 2 / 6.
    matrix = similarity_matrix(["a b c", "a b d", "", "a b c"])
    assert matrix == [
        [1.0, pytest.approx(2 / 3), 0.0, 1.0],
        [pytest.approx(2 / 3), 1.0, 0.0, pytest.approx(2 / 3)],
        [0.0, 0.0, 1.0, 0.0],
        [1.0, pytest.approx(2 / 3), 0.0, 1.0],
    ]
    assert similarity_matrix(["", ""]) == [[1.0, 1.0], [1.0, 1.0]]
    assert similarity_matrix([]) == []


@pytest.mark.parametrize(
    ("a", "b", "shared", "total"),
    [
        (FOX, FOX, 9, 9 + 9),
        (FOX, FOX.replace("brown", "red"), 8, 9 + 9),
        ("Yes, the answer is 42.", "No, the answer is 42.", 4, 5 + 5),
        ("The answer is ", "The answer is 42.", 3, 3 + 4),
        ("", "Hello world", 0, 0 + 2),
        ("one two  three\n", "one two three", 1, 3 + 3),
        ("Nice 👍🏽 work", "Nice 👍🏿 work", 2, 3 + 3),
        ("שלום עולם יפה", "שלום עולם טוב", 2, 3 + 3),
        ("今天天气很好。", "今天天气不好。", 6, 7 + 7),
        ("<p>Hello <b>world</b></p>", "<p>Hello <i>world</i></p>", 1, 2 + 2),
        (TEN_THOUSAND, TEN_THOUSAND.replace("word5000 ", "CHANGED "), 9_999, 10_000 + 10_000),
    ],
)
def test_similarity_is_twice_the_shared_tokens_over_all_tokens(a, b, shared, total):
    assert similarity_matrix([a, b])[0][1] == pytest.approx(2 * shared / total)


def test_fingerprints_count_successful_runs_and_flag_a_mix():
    results = [ok(0, "x", "fp_b"), ok(1, "x", "fp_a"), ok(2, "x", "fp_a"), ok(3, "x", None), failed(4)]
    assert count_fingerprints(results) == Fingerprints({"fp_a": 2, "fp_b": 1}, missing=1, mixed=True)
    assert count_fingerprints(results[1:3]) == Fingerprints({"fp_a": 2}, missing=0, mixed=False)


# The whole comparison


BATCH = [
    ok(0, "The answer is 42."),
    ok(1, "The answer is 42."),
    ok(2, "The answer is 41.", "fp_b"),
    failed(3),
    ok(4, "The Answer is  42."),
    ok(5, "The answer is 42.", None),
]


def test_compare_a_batch_that_diverges():
    result = compare(BATCH)
    # Token similarity: A–B 3 of 4 shared (0.75), A–C 2 of 4 (0.5), B–C 1 of 4 (0.25); 14 / 20 off the diagonal.
    assert result.summary.to_dict() == {
        "runs": 6,
        "successful": 5,
        "errors": 1,
        "unique_outputs": 3,
        "modal_count": 3,
        "identical_rate": 0.6,
        "all_identical": False,
        "first_divergence_word": 1,
        "shared_prefix_words": 1,
        "mean_similarity": 0.7,
        "min_similarity": 0.25,
        "fingerprints": {"counts": {"fp_a": 3, "fp_b": 1}, "missing": 1, "mixed": True},
        "note": None,
    }
    assert result.groups == (
        Group("The answer is 42.", 3, (0, 1, 5)),
        Group("The answer is 41.", 1, (2,)),
        Group("The Answer is  42.", 1, (4,)),
    )
    assert result.loose_groups == (Group("The answer is 42.", 4, (0, 1, 4, 5)), Group("The answer is 41.", 1, (2,)))
    assert result.modal == "The answer is 42."
    assert result.matrix_runs == (0, 1, 2, 4, 5)
    assert result.matrix == (
        (1.0, 1.0, 0.75, 0.5, 1.0),
        (1.0, 1.0, 0.75, 0.5, 1.0),
        (0.75, 0.75, 1.0, 0.25, 0.75),
        (0.5, 0.5, 0.25, 1.0, 0.5),
        (1.0, 1.0, 0.75, 0.5, 1.0),
    )
    assert result.most_dissimilar == (2, 4)
    assert result.shared_prefix == "The "
    assert result.divergences == {0: None, 1: None, 2: Divergence(3, 3, 14), 4: Divergence(1, 1, 4), 5: None}
    assert result.default_pair() == (0, 4)


def test_compare_does_not_depend_on_the_order_runs_completed_in():
    assert compare(BATCH[::-1]) == compare(BATCH)


def test_compare_identical_runs():
    result = compare([ok(3, "Same answer."), ok(7, "Same answer."), ok(9, "Same answer.")])
    summary = result.summary
    assert (summary.unique_outputs, summary.modal_count, summary.identical_rate) == (1, 3, 1)
    assert (summary.all_identical, summary.first_divergence_word, summary.shared_prefix_words) == (True, None, 2)
    assert (summary.mean_similarity, summary.min_similarity, summary.note) == (1, 1, None)
    assert result.shared_prefix == "Same answer."
    assert result.divergences == {3: None, 7: None, 9: None}
    assert result.most_dissimilar == (3, 7)
    assert result.default_pair() == (3, 7)


def test_compare_whitespace_variants_differ_exactly_but_not_loosely():
    result = compare([ok(0, "Yes.\n"), ok(1, "Yes."), ok(2, "yes. ")])
    assert (result.summary.unique_outputs, result.summary.all_identical) == (3, False)
    assert result.loose_groups == (Group("Yes.\n", 3, (0, 1, 2)),)
    assert result.summary.first_divergence_word == 0


def test_compare_with_no_successful_run_says_so():
    result = compare([failed(0), failed(1)])
    assert result.summary.to_dict() == {
        "runs": 2,
        "successful": 0,
        "errors": 2,
        "unique_outputs": 0,
        "modal_count": 0,
        "identical_rate": None,
        "all_identical": False,
        "first_divergence_word": None,
        "shared_prefix_words": None,
        "mean_similarity": None,
        "min_similarity": None,
        "fingerprints": {"counts": {}, "missing": 0, "mixed": False},
        "note": "no successful runs: nothing to compare",
    }
    assert (result.groups, result.loose_groups, result.modal) == ((), (), None)
    assert (result.matrix, result.matrix_runs, result.most_dissimilar) == ((), (), None)
    assert (result.shared_prefix, result.divergences) == ("", {})
    assert result.default_pair() is None
    assert compare([]).summary.note == "no successful runs: nothing to compare"


def test_compare_with_one_successful_run_says_so():
    result = compare([failed(0), ok(1, "Only me.", None)])
    assert result.summary.to_dict() == {
        "runs": 2,
        "successful": 1,
        "errors": 1,
        "unique_outputs": 1,
        "modal_count": 1,
        "identical_rate": None,
        "all_identical": False,
        "first_divergence_word": None,
        "shared_prefix_words": None,
        "mean_similarity": None,
        "min_similarity": None,
        "fingerprints": {"counts": {}, "missing": 1, "mixed": False},
        "note": "one successful run: nothing to compare it with",
    }
    assert (result.modal, result.matrix, result.matrix_runs) == ("Only me.", ((1.0,),), (1,))
    assert result.divergences == {1: None}
    assert (result.most_dissimilar, result.shared_prefix, result.default_pair()) == (None, "", None)


def test_summary_is_json_ready():
    assert json.loads(json.dumps(compare(BATCH).summary.to_dict())) == compare(BATCH).summary.to_dict()


@pytest.mark.parametrize("module", ["compare.py", "diff.py"])
def test_compare_imports_nothing_beyond_the_standard_library_numpy_rapidfuzz_and_core(module):
    tree = ast.parse((Path(__file__).parents[1] / "core" / "analysis" / module).read_text(encoding="utf-8"))
    names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    names += [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    packages = {name.split(".")[0] for name in names}
    assert packages <= {"__future__", "re", "collections", "dataclasses", "functools", "itertools", "typing", "numpy",
                        "rapidfuzz", "core"}


def _batch(*texts: str | None) -> list[RunResult]:
    return [RunResult(index=k, latency_ms=1.0, text=t) if t is not None else
            RunResult.failed(k, 1.0, RunError("server", "boom")) for k, t in enumerate(texts)]


@pytest.mark.parametrize("texts, sentence", [
    (("a b c",) * 5, "5 of 5 identical — reproducible"),
    (("a", "b", "c", "d", "e"), "5 different answers, they part at word 1"),
    (("a b c", "a b c", "a b x", "a b c", "a b c"), "4 of 5 agree; run 3 parts at word 3"),
    (("a b c", "a x c", "a b c", "a b c", "a b y"), "3 of 5 agree; 2 runs part, the first at word 2"),
    (("same", "same", None), "2 of 2 identical — reproducible (1 failed)"),
    (("only",), "One successful run: nothing to compare it with"),
    (("a b",) * 999 + ("a c",), "999 of 1,000 agree; run 1000 parts at word 2"),
    (("a",) * 1200, "1,200 of 1,200 identical — reproducible"),
])
def test_the_verdict_is_one_sentence_a_room_can_read(texts, sentence):
    assert verdict(compare(_batch(*texts))) == sentence


def test_groups_are_lettered_from_the_modal_answer():
    comparison = compare(_batch("b", "a", "a", "c", "a", "b", None))
    assert [comparison.letter(k) for k in range(7)] == ["B", "A", "A", "C", "A", "B", None]
    assert [group_letter(k) for k in (0, 25, 26, 27, 701, 702)] == ["A", "Z", "AA", "AB", "ZZ", "AAA"]


def test_each_group_knows_where_it_leaves_the_shared_path():
    comparison = compare(_batch("one two three four", "one two three four", "one two six seven", "one five"))
    modal, second, third = comparison.groups
    assert comparison.fork(second) == Divergence(token_index=2, word_index=2, char_offset=8)
    assert comparison.fork(third) == Divergence(token_index=1, word_index=1, char_offset=4)
    assert comparison.fork(modal) == Divergence(token_index=1, word_index=1, char_offset=4)
    assert compare(_batch("x y", "x y")).fork(compare(_batch("x y", "x y")).groups[0]) is None


def test_the_group_matrix_is_ordered_like_the_groups():
    comparison = compare(_batch("b b", "a a", "a a", "a b"))
    assert [g.text for g in comparison.groups] == ["a a", "b b", "a b"]
    matrix = comparison.group_matrix
    assert [row[k] for k, row in enumerate(matrix)] == [1.0, 1.0, 1.0]
    assert matrix[0][1] == 0.0 and matrix[0][2] == matrix[2][0] == 0.5


def _run_level_reference(texts: list[str]) -> tuple[float, float, tuple[int, int], int]:
    """Mean and min similarity, the most dissimilar pair and the run least like the modal one, from the run matrix."""
    matrix = similarity_matrix(texts)
    pairs = [(matrix[i][j], i, j) for i in range(len(texts)) for j in range(i + 1, len(texts))]
    off_diagonal = [value for i, row in enumerate(matrix) for j, value in enumerate(row) if i != j]
    modal_run = texts.index(max(texts, key=lambda text: (texts.count(text), -texts.index(text))))
    least_like_modal = min((value, k) for k, value in enumerate(matrix[modal_run]) if k != modal_run)[1]
    return sum(off_diagonal) / len(off_diagonal), min(off_diagonal), min(pairs)[1:], least_like_modal


@pytest.mark.parametrize("runs", [12, MATRIX_MAX_RUNS + 1, 140])
def test_group_level_numbers_equal_the_run_by_run_ones(runs):
    """Regression: the summary, the most dissimilar pair and the default pair come from the scores of distinct texts
    (each scored once), and must equal what the N × N run matrix gives."""
    rng = random.Random(runs)
    answers = ["a b c d", "a b x d", "a y c", "q r s t u", "a b c d e"]
    texts = [rng.choice(answers[: 2 + k % 4]) for k in range(runs)]
    comparison = compare(_batch(*texts))
    mean, lowest, pair, least_like_modal = _run_level_reference(texts)
    assert comparison.summary.mean_similarity == pytest.approx(mean, abs=1e-12)
    assert comparison.summary.min_similarity == lowest
    assert comparison.most_dissimilar == pair
    assert comparison.default_pair() == (comparison.groups[0].run_indices[0], least_like_modal)
    assert comparison.matrix == (tuple(map(tuple, similarity_matrix(texts))) if runs <= MATRIX_MAX_RUNS else ())
    assert comparison.matrix_runs == tuple(range(runs))
    assert len(comparison.group_matrix) == len(comparison.groups) == comparison.summary.unique_outputs


def test_each_distinct_text_is_tokenised_and_normalised_once(monkeypatch):
    """Regression: 600 runs of 3 answers cost 3 tokenisations and 3 normalisations, not 600."""
    calls = {"tokenize": 0, "normalised": 0}

    def counted(name, func):
        def wrapper(text):
            calls[name] += 1
            return func(text)
        return wrapper

    monkeypatch.setattr(compare_module, "tokenize", counted("tokenize", tokenize))
    monkeypatch.setattr(compare_module, "normalised", counted("normalised", compare_module.normalised))
    comparison = compare(_batch(*(["one two", "one three", "four"] * 200)))
    assert comparison.summary.unique_outputs == 3
    assert calls == {"tokenize": 3, "normalised": 3}
    assert [comparison.letter(k) for k in range(4)] == ["A", "B", "C", "A"]
