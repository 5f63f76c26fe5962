"""Experiment history: each request, who answered it and every run the moment it arrives, in SQLite or PostgreSQL.

One schema and one list of migrations serve both databases. Also here: JSON export and import (checked against
limits before anything is written), and CSV export.

The recorder, which runs batches while it saves them, is imported from `core.history.recorder`: it needs the
runner and the backends, and this package must stay importable by the settings that those backends read.
"""

from core.history.archive import (
    CSV_COLUMNS,
    MAX_IMPORT_BYTES,
    MAX_IMPORT_CHILDREN,
    MAX_IMPORT_RUNS,
    PARTS,
    HistoryItem,
    export_item,
    from_json,
    import_experiment,
    import_item,
    read_item,
    strict_json,
    to_csv,
    to_json,
)
from core.history.location import DEFAULT_SQLITE_PATH, HistoryLocation, open_store
from core.history.store import Experiment, ExperimentRow, Store

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_SQLITE_PATH",
    "MAX_IMPORT_BYTES",
    "MAX_IMPORT_CHILDREN",
    "MAX_IMPORT_RUNS",
    "PARTS",
    "Experiment",
    "ExperimentRow",
    "HistoryItem",
    "HistoryLocation",
    "Store",
    "export_item",
    "from_json",
    "import_experiment",
    "import_item",
    "open_store",
    "read_item",
    "strict_json",
    "to_csv",
    "to_json",
]
