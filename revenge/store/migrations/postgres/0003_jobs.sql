-- The job queue (jobs-and-storage.md §4): one table, claimed with SKIP LOCKED on PostgreSQL and
-- BEGIN IMMEDIATE on SQLite; at most one queued and one running job per dedupe key.
CREATE TABLE jobs (
    seq BIGSERIAL PRIMARY KEY,
    id UUID NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload JSONB NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    dedupe_key TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at TIMESTAMPTZ NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    cancel_requested BOOLEAN NOT NULL DEFAULT false,
    progress DOUBLE PRECISION NOT NULL DEFAULT 0,
    detail JSONB NOT NULL DEFAULT '{}',
    error TEXT,
    node TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX jobs_dedupe_queued ON jobs (dedupe_key) WHERE state = 'queued';
CREATE UNIQUE INDEX jobs_dedupe_running ON jobs (dedupe_key) WHERE state = 'running';
CREATE INDEX jobs_due ON jobs (kind, priority DESC, run_at, seq) WHERE state = 'queued';
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE state = 'running';
