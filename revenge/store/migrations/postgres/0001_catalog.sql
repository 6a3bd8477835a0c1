-- The round-one catalog: media, streams, resume points, scans (playback.md §1), in PostgreSQL types.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE media (
    id UUID PRIMARY KEY,
    root TEXT NOT NULL,
    rel_path TEXT NOT NULL,
    size BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    title TEXT NOT NULL,
    container TEXT,
    duration_seconds DOUBLE PRECISION,
    bit_rate BIGINT,
    video_codec TEXT,
    width INTEGER,
    height INTEGER,
    dynamic_range TEXT,
    probe JSONB NOT NULL,
    added_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (root, rel_path)
);
CREATE INDEX media_title ON media (lower(title), id);
CREATE TABLE media_streams (
    media_id UUID NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    idx INTEGER NOT NULL,
    stream_index INTEGER NOT NULL,
    codec TEXT,
    channels INTEGER,
    language TEXT,
    title TEXT,
    is_default BOOLEAN NOT NULL DEFAULT false,
    is_forced BOOLEAN NOT NULL DEFAULT false,
    is_text BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX media_streams_media ON media_streams (media_id);
CREATE TABLE progress (
    owner TEXT NOT NULL,
    media_id UUID NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    position_seconds DOUBLE PRECISION NOT NULL,
    completed BOOLEAN NOT NULL DEFAULT false,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (owner, media_id)
);
CREATE TABLE scans (
    id UUID PRIMARY KEY,
    state TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    files_seen INTEGER NOT NULL DEFAULT 0,
    files_added INTEGER NOT NULL DEFAULT 0,
    files_updated INTEGER NOT NULL DEFAULT 0,
    files_removed INTEGER NOT NULL DEFAULT 0,
    errors JSONB NOT NULL DEFAULT '[]'
);
CREATE TABLE scan_failures (
    root TEXT NOT NULL,
    rel_path TEXT NOT NULL,
    size BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (root, rel_path)
);
