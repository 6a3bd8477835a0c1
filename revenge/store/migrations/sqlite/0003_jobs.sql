-- The job queue (jobs-and-storage.md §4): one table, claimed with SKIP LOCKED on PostgreSQL and
-- BEGIN IMMEDIATE on SQLite; at most one queued and one running job per dedupe key.
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    dedupe_key TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress REAL NOT NULL DEFAULT 0,
    detail TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    node TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE UNIQUE INDEX jobs_dedupe_queued ON jobs (dedupe_key) WHERE state = 'queued';
CREATE UNIQUE INDEX jobs_dedupe_running ON jobs (dedupe_key) WHERE state = 'running';
CREATE INDEX jobs_due ON jobs (state, kind, priority DESC, run_at, seq);
CREATE INDEX jobs_lease ON jobs (state, lease_until);
