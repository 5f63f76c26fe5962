"""Probe an endpoint: which parameters it rejects, whether it honours the seed, whether a warm cache or the load on
the server changes a seeded answer; a report card kept in the history, and what later runs leave out because of it.

plan.py (what is sent, its cost) → run.py (the coroutine) → findings.py (verdicts, the report card) → saved.py
(the history); capabilities.py turns a report into requests the endpoint accepts.
"""

from core.probe.capabilities import AdaptedBackend, Capabilities, strip_rejected
from core.probe.findings import (ColdWarmFinding, LoadFinding, LoadRung, ParameterFinding, ProbeReport, Sample,
                                 SeedFinding, SkippedRung)
from core.probe.plan import LADDER, LOCAL_LADDER, ProbePlan, parse_ladder
from core.probe.run import DecodesTogether, Probe, Step, run_probe
from core.probe.saved import latest_report, load_report, save_probe

__all__ = ["LADDER", "LOCAL_LADDER", "AdaptedBackend", "Capabilities", "ColdWarmFinding", "DecodesTogether",
           "LoadFinding", "LoadRung", "ParameterFinding", "Probe", "ProbePlan", "ProbeReport", "Sample", "SeedFinding",
           "SkippedRung", "Step", "latest_report", "load_report", "parse_ladder", "run_probe", "save_probe",
           "strip_rejected"]
