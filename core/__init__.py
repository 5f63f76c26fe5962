"""Repro Lab's engine, never importing streamlit: what the pages and the command line may use.

settings (one loader) → backends (a registry, one module per provider) → runner (N identical requests at once)
→ analysis (compare, diff, statistics, causes) → history (where experiments are kept). Submodules hold the rest.
"""

from core.analysis.causes import ForkCause, fork_causes
from core.analysis.compare import MATRIX_MAX_RUNS, Comparison, Group, Summary, compare, group_letter, verdict
from core.analysis.diff import Divergence, Segment, diff, first_divergence
from core.analysis.drift import Drift, drift
from core.analysis.forks import ForkSide, fork_between, token_strip
from core.analysis.statistics import BatchStatistics, batch_statistics, compare_batches, runs_needed, upper_bound
from core.analysis.tree import divergence_tree, render_lines
from core.backends import Backend, Provider, make_backend, provider, providers, register
from core.backends.local import MODES as LOCAL_MODES
from core.backends.local import DEMO_MAX_TOKENS, LocalBackend, estimate_seconds
from core.errors import (BackendError, ConfigurationError, InvalidImport, InvalidRequest, ReproError, StorageError,
                         UnknownExperiment)
from core.history import (MAX_IMPORT_BYTES, PARTS, Experiment, ExperimentRow, HistoryItem, HistoryLocation, Store,
                          export_item, from_json, import_experiment, import_item, open_store, read_item, to_csv, to_json)
from core.history.recorder import Recorder, Recording, load_sweep, rerun
from core.models import BackendInfo, BatchPlan, RunError, RunRequest, RunResult, parse_seed
from core.policy import FailureLog, Limits, Quota, client_identity
from core.probe import (LADDER, LOCAL_LADDER, AdaptedBackend, Capabilities, Probe, ProbePlan, ProbeReport, SkippedRung,
                        latest_report, load_report, parse_ladder, run_probe, save_probe, strip_rejected)
from core.runner import Fanout, Relay
from core.settings import Settings, load_settings, read_access, read_history, read_limits, read_sources
from core.suite import (Suite, SuitePlan, SuiteRun, load_suite, load_suite_run, parse_suite, record_suite,
                        stream_suite)
from core.sweep import Cell, CellSummary, SweepPlan, SweepResult, parse_seeds, parse_temperatures

__all__ = [
    "LADDER", "LOCAL_LADDER", "AdaptedBackend", "Capabilities", "Probe", "ProbePlan", "ProbeReport", "SkippedRung",
    "latest_report", "load_report", "parse_ladder", "run_probe", "save_probe", "strip_rejected",
    "DEMO_MAX_TOKENS", "LOCAL_MODES", "MATRIX_MAX_RUNS", "estimate_seconds", "MAX_IMPORT_BYTES", "Backend",
    "BackendError", "BackendInfo", "BatchPlan", "BatchStatistics",
    "Cell", "CellSummary", "Comparison", "ConfigurationError", "Divergence", "Drift", "Experiment", "ExperimentRow",
    "FailureLog", "Fanout", "ForkCause", "ForkSide", "Group", "HistoryItem", "HistoryLocation", "InvalidImport", "InvalidRequest",
    "Limits", "LocalBackend", "Provider", "Quota", "Recorder", "Recording", "Relay", "ReproError", "RunError",
    "RunRequest", "RunResult", "Segment", "Settings", "StorageError", "Store", "Suite", "SuitePlan", "SuiteRun",
    "Summary", "SweepPlan", "SweepResult", "UnknownExperiment", "batch_statistics", "client_identity", "compare",
    "compare_batches", "diff", "divergence_tree", "drift", "first_divergence", "fork_between", "fork_causes",
    "export_item", "from_json", "group_letter", "import_experiment", "import_item", "load_settings", "load_suite", "load_suite_run", "load_sweep",
    "make_backend", "open_store", "parse_seed", "parse_seeds", "parse_suite", "parse_temperatures", "provider",
    "providers", "PARTS", "read_access", "read_item", "read_history", "read_limits", "read_sources", "record_suite", "register",
    "render_lines", "rerun", "runs_needed", "stream_suite", "to_csv", "to_json", "token_strip", "upper_bound",
    "verdict",
]
