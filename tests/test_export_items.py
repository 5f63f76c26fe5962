"""A sweep, suite run or probe exported and imported whole (the item with its child experiments), checked whole
before anything is written; and a saved probe shown by `history show`."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import UTC, datetime

import pytest

from core.errors import InvalidImport, StorageError, UnknownExperiment
from core.history import (MAX_IMPORT_CHILDREN, MAX_IMPORT_RUNS, export_item, from_json, import_item, read_item,
                          to_json)
from core.history.sqlite import SQLiteStore
from core.models import MAX_RUNS
from core.probe import latest_report, load_report
from core.runner import Fanout
from core.suite import SuitePlan, load_suite_run, record_suite
from tests.test_cli import cli
from tests.test_import_hostile import fill_the_disk
from tests.test_suite import SCRIPT, scripted_suite


@pytest.fixture(scope="module")
def fanout():
    with Fanout(None) as fanout:
        yield fanout


@pytest.fixture(scope="module")
def suite_export(fanout, tmp_path_factory) -> tuple[SQLiteStore, str, str]:
    """A suite run of 4 prompts × 3 runs saved in a store of its own: (that store, its id, its JSON export)."""
    source = SQLiteStore(tmp_path_factory.mktemp("source") / "history.sqlite3")
    suite, backend = scripted_suite(SCRIPT)
    recording = record_suite(source, fanout, backend, suite, SuitePlan(runs=3, seed=7))
    list(recording)
    return source, recording.experiment_id, export_item(source, recording.experiment_id)


def without_ids(experiments) -> list:
    return [dataclasses.replace(e, id="", parent_id=None) for e in experiments]


def test_a_suite_run_round_trips_whole_into_a_fresh_store(suite_export, store):
    source, suite_id, exported = suite_export
    document = json.loads(exported)
    assert document["experiment"]["kind"] == "suite" and len(document["children"]) == 4
    new_id = import_item(store, read_item(exported))
    assert new_id != suite_id and [row.id for row in store.list()] == [new_id]
    [imported] = without_ids([store.get(new_id)])
    assert imported.meta.pop("imported") is True  # marked as from elsewhere; all else as it was
    assert [imported] == without_ids([source.get(suite_id)])
    children = store.children(new_id)
    assert without_ids(children) == without_ids(source.children(suite_id))
    assert {child.parent_id for child in children} == {new_id}
    assert not {child.id for child in children} & {child.id for child in source.children(suite_id)}
    assert sum(len(child.runs) for child in children) == 12
    assert load_suite_run(store, new_id).summary() == load_suite_run(source, suite_id).summary()
    assert read_item(export_item(store, new_id)).children[3].meta == {"prompt": 3, "label": "p3"}


def test_an_experiment_exports_as_before_and_from_json_refuses_a_whole_suite(suite_export):
    source, suite_id, exported = suite_export
    child = source.children(suite_id)[0]
    assert "children" not in json.loads(export_item(source, child.id))
    assert export_item(source, child.id) == to_json(child)
    with pytest.raises(InvalidImport, match="a suite with 4 child experiments; import it whole"):
        from_json(exported)
    with pytest.raises(UnknownExperiment, match="There is no experiment 'nope'"):
        export_item(source, "nope")


def tampered(exported: str, change) -> str:
    document = copy.deepcopy(json.loads(exported))
    change(document)
    return json.dumps(document)


def _set(path: str, value):
    """A change that puts `value` at the dotted `path` (numbers index lists)."""
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]

    def change(document):
        for key in parents:
            document = document[key]
        document[last] = value
    return change


def _many_children(count: int, runs: int):
    def change(document):
        child = document["children"][0]
        run = child["runs"][0]
        document["children"] = [{**child, "runs_planned": runs, "runs": [{**run, "index": k} for k in range(runs)]}
                                for _ in range(count)]
    return change


TAMPERED = [
    (_set("children.1.runs.0.usage.total_tokens", 2**63),
     "children[1].runs[0].usage.total_tokens must be a whole number from 0 to 2,147,483,647"),
    (_set("children.2.runs.1.text", "a\ud800"), "children[2].runs[1].text holds a lone surrogate U+D800"),
    (_set("children.0.kind", "suite"), "children[0].kind must be 'experiment', got 'suite'"),
    (_set("children.3.runs_planned", MAX_RUNS + 1), "children[3].runs_planned must be a whole number from 1 to 1,000"),
    (_set("children.0.runs.2.index", 0), "children[0].runs must have distinct indices"),
    (_set("children.1.created_at", "yesterday"), "children[1].created_at must be an ISO 8601 time"),
    (_set("children.0.request", {"prompt": 1}), "children[0].request.prompt must be text"),
    (_set("children", {"0": {}}), "children must be a list"),
    (_set("experiment.meta", {}), "experiment.meta cannot be read as a suite: KeyError: 'suite'"),
    (_set("children.0.meta.prompt", 99), "experiment.meta cannot be read as a suite: ValueError: children name "
                                         "prompts [99] the suite of 4 does not have"),
    (_set("experiment.created_at", "9999-12-31T00:00:00+00:00"), "experiment.created_at is in the future"),
    (_set("experiment.kind", "experiment"), "children must be empty for an experiment"),
    (_set("experiment.kind", "folder"), "experiment.kind must be one of experiment, sweep, suite, probe"),
    (_set("experiment.runs_planned", MAX_IMPORT_RUNS + 1),
     "experiment.runs_planned must be a whole number from 1 to 10,000"),
    (lambda d: d["experiment"].__setitem__("runs", d["children"][0]["runs"]),
     "experiment.runs must be empty for a suite (its runs are its prompts')"),
    (_many_children(MAX_IMPORT_CHILDREN + 1, 1), "children has 4,001 items; the limit is 4,000"),
    (_many_children(MAX_IMPORT_RUNS // MAX_RUNS + 1, MAX_RUNS), "children hold 11,000 runs together; the limit is 10,000"),
]


@pytest.mark.parametrize("change, message", TAMPERED, ids=[message.split(" ")[0] for _, message in TAMPERED])
def test_a_tampered_suite_document_is_refused_naming_the_field_with_nothing_written(suite_export, store, change,
                                                                                    message):
    text = tampered(suite_export[2], change)
    with pytest.raises(InvalidImport) as refused:
        import_item(store, read_item(text))
    assert str(refused.value).startswith(message)
    assert store.list() == []


def test_the_limits_themselves_are_accepted(suite_export, tmp_path):
    store = SQLiteStore(tmp_path / "history.sqlite3")
    text = tampered(suite_export[2], _many_children(MAX_IMPORT_RUNS // MAX_RUNS, MAX_RUNS))
    new_id = import_item(store, read_item(text))
    assert sum(len(child.runs) for child in store.children(new_id)) == MAX_IMPORT_RUNS


def test_a_child_the_store_refuses_takes_the_whole_item_back_out(suite_export, db):
    """The fourth child's last run fails as a full disk would: the parent and the first three children, written in
    the same transaction, are not kept either."""
    store = db.open()
    fill_the_disk(db, "NEW.text = '5' AND NEW.run_index = 2")
    item = read_item(suite_export[2])
    assert [run.text for child in item.children for run in child.runs if run.index == 2] == ["4", "4", "4", "5"]
    with pytest.raises(StorageError, match="disk is full|No space left on device"):
        import_item(store, item)
    assert store.list() == []
    with db.connect() as conn:
        assert [conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone() for table in ("experiments", "runs")] == [
            (0,), (0,)]


@pytest.fixture
def probed(fake_server, azure_env, tmp_path) -> dict:
    """`probe --json` of the loopback server, saved in tmp_path's history."""
    done = cli("probe", "--runs", "2", "--ladder", "0,2", "--max-tokens", "4", "--yes", "--json",
               env=azure_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_history_show_prints_a_saved_probes_report_card_and_its_steps(probed, azure_env, tmp_path):
    shown = cli("history", "show", probed["probe_id"], env=azure_env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert probed["summary"] in shown.stdout.splitlines()
    assert "seed honoured" in shown.stdout and "load sensitivity" in shown.stdout
    assert shown.stdout.count("\nstep ") == 7 + 3 + 4 + 2  # parameters, seed A/B/none, 4 fresh prompts, 2 rungs
    as_json = json.loads(cli("history", "show", probed["probe_id"], "--json", env=azure_env, cwd=tmp_path).stdout)
    assert (as_json["report"], as_json["summary"], as_json["problems"]) == (
        probed["report"], probed["summary"], probed["problems"])


def test_a_saved_probe_is_exported_and_imported_whole(probed, azure_env, tmp_path):
    document = json.loads(cli("history", "export", probed["probe_id"], env=azure_env, cwd=tmp_path).stdout)
    document["experiment"]["created_at"] = datetime.now(UTC).isoformat()  # newer than the probe made here
    (tmp_path / "probe.json").write_text(json.dumps(document))
    imported = cli("history", "import", "probe.json", env=azure_env, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    new_id = imported.stdout.strip()
    again = json.loads(cli("history", "show", new_id, "--json", env=azure_env, cwd=tmp_path).stdout)
    assert (again["probe_id"], again["summary"], again["report"]) == (new_id, probed["summary"], probed["report"])
    # The newest card came from elsewhere: what this instance sends still follows its own probe.
    store = SQLiteStore(tmp_path / "history.sqlite3")
    assert [row.id for row in store.list(kind="probe")][0] == new_id
    assert latest_report(store, load_report(store, new_id).backend)[0] == probed["probe_id"]


def test_a_probe_whose_card_cannot_be_read_is_not_imported(probed, azure_env, tmp_path):
    document = json.loads(cli("history", "export", probed["probe_id"], env=azure_env, cwd=tmp_path).stdout)
    del document["experiment"]["meta"]["report"]["parameters"]
    with pytest.raises(InvalidImport, match=r"^experiment\.meta\.report\.parameters"):
        read_item(json.dumps(document))


def test_the_cli_refuses_what_it_cannot_export_or_import_with_exit_2(suite_export, azure_env, tmp_path):
    source, suite_id, exported = suite_export
    (tmp_path / "history.sqlite3").write_bytes(source.path.read_bytes())
    missing = cli("history", "export", "nope", env=azure_env, cwd=tmp_path)
    assert missing.returncode == 2 and "There is no experiment 'nope'" in missing.stderr
    as_csv = cli("history", "export", suite_id, "--format", "csv", env=azure_env, cwd=tmp_path)
    assert as_csv.returncode == 2 and "--format csv is a row per run of one experiment" in as_csv.stderr
    assert as_csv.stdout == ""
    (tmp_path / "tampered.json").write_text(tampered(exported, TAMPERED[0][0]))
    refused = cli("history", "import", "tampered.json", env=azure_env, cwd=tmp_path)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith(f"error: {TAMPERED[0][1]}") and refused.stderr.count("\n") == 1
    listing = json.loads(cli("history", "list", "--json", env=azure_env, cwd=tmp_path).stdout)
    assert [row["id"] for row in listing] == [suite_id]
