"""Hostile imports: the corpus in tests/hostile/ (small files), the huge ones generated here, random JSON from
hypothesis; each is refused with an InvalidImport naming the field before anything is written, or imported whole."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.errors import InvalidImport, StorageError
from core.models import MAX_RUNS
from core.history import MAX_IMPORT_BYTES, from_json, import_experiment
from core.history.archive import MAX_IMPORT_DEPTH, MAX_RAW_CHARS, MAX_TEXT_CHARS
from core.history.postgres import PostgresStore
from core.history.sqlite import SQLiteStore
from tests import pgserver

HOSTILE = Path(__file__).resolve().parent / "hostile"
VALID = json.loads((HOSTILE / "valid.json").read_text())

# Each file of the corpus and the start of the one-line message that refuses it.
CORPUS = {
    "nan-latency.json": "experiment.runs[0].latency_ms must be a finite number, got nan.",
    "infinite-latency.json": "experiment.runs[0].latency_ms must be a finite number, got inf.",
    "overflowing-latency.json": "experiment.runs[0].latency_ms must be a finite number, got inf.",
    "token-count-2-63.json": "experiment.runs[0].usage.total_tokens must be a whole number from 0 to 2,147,483,647, "
                             "got 9223372036854775808.",
    "seed-2-63.json": "experiment.request.seed must be a whole number from -9,223,372,036,854,775,808 to "
                      "9,223,372,036,854,775,807, got 9223372036854775808.",
    "runs-planned-2-63.json": f"experiment.runs_planned must be a whole number from 1 to {MAX_RUNS:,}, "
                              "got 9223372036854775808.",
    "status-beyond-integer.json": "experiment.runs[0].error.status must be a whole number from 0 to 2,147,483,647, "
                                  "got 2147483648.",
    "negative-retries.json": "experiment.runs[0].retries must be a whole number from 0 to 2,147,483,647, got -1.",
    "lone-surrogate-text.json": "experiment.runs[0].text holds a lone surrogate U+D800 at position 1",
    "lone-surrogate-prompt.json": "experiment.request.prompt holds a lone surrogate U+DFFF at position 1",
    "lone-surrogate-meta-name.json": "experiment.meta (a name in it) holds a lone surrogate U+DC00 at position 0",
    "nan-in-meta.json": "experiment.meta.x[1] must be a finite number, got nan.",
    "too-many-alternatives.json": "experiment.runs[0].logprobs[0].top has 21 items; the limit is 20.",
    "duplicate-run-index.json": "experiment.runs must have distinct indices from 0 to runs_planned - 1 (1) in order",
    "deep-meta.json": f"The file nests lists and objects 72 deep; an export nests at most {MAX_IMPORT_DEPTH}.",
    "not-utf8.json": "The file is not JSON: it is not UTF-8 text (invalid continuation byte at byte 415).",
}


def changed(**runs_and_fields) -> dict:
    """The valid export with experiment fields replaced (`runs` as a list of run changes for copies of run 0)."""
    document = copy.deepcopy(VALID)
    experiment = document["experiment"]
    run_changes = runs_and_fields.pop("runs", None)
    if run_changes is not None:
        experiment["runs"] = [{**experiment["runs"][0], **change} for change in run_changes]
    experiment.update(runs_and_fields)
    return document


def generated() -> dict[str, tuple[bytes, str]]:
    """Hostile files too big to keep in the repository, with the start of their message."""
    deep = b'{"format": "repro-lab-experiment", "version": 1, "experiment": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    return {
        "nested 100,000 deep": (deep, "The file nests lists and objects 100,001 deep"),
        "over 20 MB": (b" " * (MAX_IMPORT_BYTES + 1) + json.dumps(VALID).encode(),
                       "The file is over the 20 MB an import may have (20,971,520 bytes)."),
        "too many runs": (json.dumps(changed(runs_planned=MAX_RUNS,
                                             runs=[{"index": k} for k in range(MAX_RUNS + 1)])).encode(),
                          f"experiment.runs has {MAX_RUNS + 1:,} items; the limit is {MAX_RUNS:,}."),
        "a 200,001-character answer": (json.dumps(changed(runs=[{"text": "x" * (MAX_TEXT_CHARS + 1)}])).encode(),
                                       "experiment.runs[0].text has 200,001 characters; the limit is 200,000."),
        "a raw body over 1,000,000": (json.dumps(changed(runs=[{"raw": "x" * (MAX_RAW_CHARS + 1)}])).encode(),
                                      "experiment.runs[0].raw has 1,000,001 characters; the limit is 1,000,000."),
    }


@pytest.fixture(scope="module")
def stores(tmp_path_factory, postgres_url) -> list[SQLiteStore | PostgresStore]:
    """One store of each kind for the module (hypothesis runs many examples against the same ones)."""
    return [SQLiteStore(tmp_path_factory.mktemp("hostile") / "history.sqlite3"),
            PostgresStore(pgserver.new_database(postgres_url))]


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_every_corpus_file_is_refused_naming_what_is_wrong(name, stores):
    with pytest.raises(InvalidImport) as caught:
        from_json((HOSTILE / name).read_bytes())
    assert str(caught.value).startswith(CORPUS[name])
    assert "\n" not in str(caught.value)


def test_the_corpus_is_complete_and_small():
    assert sorted(path.name for path in HOSTILE.iterdir()) == sorted([*CORPUS, "valid.json"])
    assert sum(path.stat().st_size for path in HOSTILE.iterdir()) < 16_000


@pytest.mark.parametrize("name", sorted(generated()))
def test_huge_files_are_refused_before_they_cost_anything(name):
    data, message = generated()[name]
    with pytest.raises(InvalidImport) as caught:
        from_json(data)
    assert str(caught.value).startswith(message)


def test_the_valid_corpus_file_and_the_limits_themselves_are_accepted(stores):
    at_the_limits = changed(runs_planned=MAX_RUNS, runs=[{"index": k, "text": "x" * MAX_TEXT_CHARS if k == 0 else "a",
                                                          "retries": 2**31 - 1} for k in range(MAX_RUNS)],
                            meta={"big": 2**63 - 1, "small": -(2**63), "nested": [[[[{"a": "\u0000"}]]]]})
    at_the_limits["experiment"]["request"]["seed"] = -(2**63)
    for document in (VALID, at_the_limits):
        experiment = from_json(json.dumps(document))
        for store in stores:
            saved = store.get(import_experiment(store, experiment))
            assert saved == dataclasses.replace(experiment, id=saved.id, parent_id=None)


def fill_the_disk(db, when: str) -> None:
    """From now on, inserting a run for which the SQL condition `when` holds fails as a full disk would."""
    with db.connect() as conn:
        if db.kind == "sqlite":
            conn.execute(f"CREATE TRIGGER disk_full BEFORE INSERT ON runs WHEN {when} "
                         "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
        else:
            conn.execute("CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS "
                         "$$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$")
            conn.execute(f"CREATE TRIGGER disk_full BEFORE INSERT ON runs FOR EACH ROW WHEN ({when}) "
                         "EXECUTE FUNCTION disk_full()")


def test_a_failed_import_leaves_nothing_behind(db):
    """The experiment and its runs are written in one transaction: the second run's failure undoes the first."""
    store = db.open()
    fill_the_disk(db, "NEW.run_index = 1")
    experiment = from_json(json.dumps(changed(runs_planned=3, runs=[{"index": k} for k in range(3)])))
    with pytest.raises(StorageError, match="disk is full|No space left on device"):
        import_experiment(store, experiment)
    assert store.list() == []
    with db.connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone() == (0,)


ANY_CHARACTER = st.characters(exclude_categories=()) | st.characters(categories=["Cs"])  # lone surrogates too
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(ANY_CHARACTER, max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(ANY_CHARACTER, max_size=8), inner, max_size=4),
    max_leaves=20,
)

# A value of the same JSON kind as the one it replaces, so that many mutated exports are valid and get stored.
SAME_KIND = {str: st.text(ANY_CHARACTER), bool: st.booleans(), float: st.floats(),
             int: st.integers(min_value=0, max_value=3) | st.integers(min_value=-(2**64), max_value=2**64)}
HOSTILE_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _paths(value, path=()):
    """Every place in a JSON document that a value could be put."""
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _paths(item, (*path, key))


@st.composite
def mutated_exports(draw) -> str:
    """The valid export with one place (or a new field) holding a random JSON value."""
    document = copy.deepcopy(VALID)
    path = draw(st.sampled_from(list(_paths(document))[1:]))
    *parents, last = path
    target = document
    for key in parents:
        target = target[key]
    if isinstance(target, dict) and draw(st.integers(0, 4)) == 0:
        last = draw(st.text(max_size=8))
    original = target.get(last) if isinstance(target, dict) else target[last]
    target[last] = draw(SAME_KIND.get(type(original), JSON_VALUES) if draw(st.booleans()) else JSON_VALUES)
    return json.dumps(document)


def refused_or_imported_whole(text: str | bytes, stores: list) -> None:
    """The property: from_json raises nothing but a one-line InvalidImport, and what it accepts every store keeps."""
    try:
        experiment = from_json(text)
    except InvalidImport as exc:
        assert str(exc) and "\n" not in str(exc)
        event("refused")
        return
    event("imported")
    for store in stores:
        saved = store.get(import_experiment(store, experiment))
        assert saved == dataclasses.replace(experiment, id=saved.id, parent_id=None)


@HOSTILE_SETTINGS
@given(st.one_of(JSON_VALUES.map(json.dumps), st.binary(max_size=200)))
def test_random_json_or_bytes_is_refused_with_an_invalid_import(stores, text):
    refused_or_imported_whole(text, stores)


@HOSTILE_SETTINGS
@given(mutated_exports())
def test_a_mutated_export_is_refused_with_an_invalid_import_or_imported_whole(stores, text):
    refused_or_imported_whole(text, stores)


def test_nan_and_infinity_are_refused_wherever_they_are():
    for literal in ("NaN", "Infinity", "-Infinity", "1e999"):
        for field in ("latency_ms", "logprobs"):
            value = literal if field == "latency_ms" else f'[{{"token": "a", "logprob": {literal}, "top": []}}]'
            text = json.dumps(changed(runs=[{field: "HOLE"}])).replace('"HOLE"', value)
            with pytest.raises(InvalidImport, match=rf"experiment\.runs\[0\]\.{field}.* must be a finite number"):
                from_json(text)
    assert math.isinf(json.loads("1e999"))  # why a parse_constant alone would not be enough


def test_a_store_refuses_with_a_storage_error_what_an_import_would_have_refused(stores):
    """Runs from a hostile server reach add_run without from_json: the store says why, and raises nothing else."""
    experiment = from_json(json.dumps(VALID))
    for store in stores:
        experiment_id = store.create(experiment.request, experiment.backend, 2)
        for bad in ({"text": "a\ud800"}, {"retries": 2**63}):
            with pytest.raises(StorageError, match="UnicodeEncodeError|OverflowError|NumericValueOutOfRange"):
                store.add_run(experiment_id, dataclasses.replace(experiment.runs[0], **bad))
        assert store.get(experiment_id).runs == ()


def test_nul_in_an_import_is_kept_exactly(db):
    store = db.open()
    experiment = from_json(json.dumps(changed(runs=[{"text": "a\u0000b", "notice": "\u0000"}],
                                              meta={"\u0000": "\u0000\ufdd0"})))
    saved = store.get(import_experiment(store, experiment))
    assert (saved.runs[0].text, saved.runs[0].notice, saved.meta) == ("a\x00b", "\x00", {"\x00": "\x00\ufdd0"})
