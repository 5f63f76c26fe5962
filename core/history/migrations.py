"""The history's schema, as the list of migrations that builds it: one portable schema for SQLite and PostgreSQL."""

# Portable SQL only (TEXT, INTEGER, BIGINT, DOUBLE PRECISION, BOOLEAN); entry k brings a database to version k + 1.
# Append, never edit: a database records the versions it has had applied in schema_version.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE experiments (
            id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            prompt TEXT NOT NULL,
            system TEXT NOT NULL,
            temperature DOUBLE PRECISION NOT NULL,
            top_p DOUBLE PRECISION NOT NULL,
            max_tokens INTEGER NOT NULL,
            seed BIGINT,
            logprobs BOOLEAN NOT NULL,
            top_logprobs INTEGER NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            endpoint_host TEXT,
            api_version TEXT,
            mode TEXT,
            runs_planned INTEGER NOT NULL,
            complete BOOLEAN NOT NULL DEFAULT FALSE
        )""",
        """CREATE TABLE runs (
            experiment_id TEXT NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
            run_index INTEGER NOT NULL,
            latency_ms DOUBLE PRECISION NOT NULL,
            text TEXT,
            error_kind TEXT,
            error_message TEXT,
            error_status INTEGER,
            finish_reason TEXT,
            system_fingerprint TEXT,
            model TEXT,
            request_id TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            total_tokens INTEGER,
            logprobs TEXT,
            retries INTEGER NOT NULL,
            raw TEXT,
            notice TEXT,
            PRIMARY KEY (experiment_id, run_index)
        )""",
    ),
    (
        "ALTER TABLE experiments ADD COLUMN kind TEXT NOT NULL DEFAULT 'experiment'",
        "ALTER TABLE experiments ADD COLUMN parent_id TEXT REFERENCES experiments (id) ON DELETE CASCADE",
        "ALTER TABLE experiments ADD COLUMN rerun_of TEXT",
        "ALTER TABLE experiments ADD COLUMN meta TEXT NOT NULL DEFAULT '{}'",
        "CREATE INDEX experiments_by_time ON experiments (created_at)",
        "CREATE INDEX experiments_by_parent ON experiments (parent_id)",
    ),
)
