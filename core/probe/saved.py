"""A probe in the history: one item of kind "probe" whose meta holds the report card, with a child experiment per
step holding that step's runs; read back, the newest report of an endpoint says what it rejects."""

from __future__ import annotations

from datetime import UTC, datetime

from core.errors import InvalidImport, UnknownExperiment
from core.history.archive import IMPORTED, decode, reads_items
from core.history.store import Experiment, Store
from core.models import BackendInfo
from core.probe.findings import ProbeReport
from core.probe.run import Probe

KIND = "probe"


def save_probe(store: Store, probe: Probe) -> str:
    """Save the report card and every step's runs; returns the history id."""
    steps = probe.steps
    runs = sum(len(step.runs) for step in steps)
    probe_id = store.create(steps[-1].request, probe.report.backend, runs, kind=KIND,
                            meta={"report": probe.report.to_dict()})
    for step in steps:
        store.add_experiment(Experiment(id="", created_at=_now(), request=step.request, backend=probe.report.backend,
                                        runs_planned=len(step.runs), complete=True, runs=step.runs,
                                        parent_id=probe_id, meta={"label": step.label}))
    store.finish(probe_id)
    return probe_id


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def load_report(store: Store, probe_id: str) -> ProbeReport:
    """A saved probe's report card (Capabilities.of(report) says what the endpoint rejects)."""
    saved = store.get(probe_id)
    if saved is None or saved.kind != KIND:
        raise UnknownExperiment(f"There is no probe {probe_id!r} in the history; it may have been deleted.")
    try:
        return report_of(saved)
    except InvalidImport as exc:
        raise UnknownExperiment(f"The probe {probe_id!r} in the history cannot be read: {exc}") from None


def report_of(saved: Experiment) -> ProbeReport:
    """A probe item's report card; InvalidImport names what is wrong with it."""
    return decode(ProbeReport, saved.meta.get("report"), "experiment.meta.report")


reads_items(KIND, lambda item: report_of(item.experiment))


def latest_report(store: Store, endpoint: BackendInfo) -> tuple[str, ProbeReport] | None:
    """The newest probe of this endpoint (same provider, model, host, API version and mode) made here, with its id:
    an imported card is shown in History but does not change what this instance sends."""
    for row in store.list(provider=endpoint.provider, kind=KIND):
        if (row.model, row.endpoint_host) == (endpoint.model, endpoint.endpoint_host):
            saved = store.get(row.id)
            if saved is None or saved.meta.get(IMPORTED):
                continue
            try:
                report = report_of(saved)
            except InvalidImport:  # a card this version cannot read: the one before it may still say something
                continue
            if report.backend == endpoint:
                return row.id, report
    return None
