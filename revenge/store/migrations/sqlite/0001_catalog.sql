-- The round-one catalog: media, streams, resume points, scans (playback.md §1).
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE media (
    id TEXT PRIMARY KEY,
    root TEXT NOT NULL,
    rel_path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    title TEXT NOT NULL,
    container TEXT,
    duration_seconds REAL,
    bit_rate INTEGER,
    video_codec TEXT,
    width INTEGER,
    height INTEGER,
    dynamic_range TEXT,
    probe TEXT NOT NULL,
    added_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (root, rel_path)
);
CREATE INDEX media_title ON media (title COLLATE NOCASE, id);
CREATE TABLE media_streams (
    media_id TEXT NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    idx INTEGER NOT NULL,
    stream_index INTEGER NOT NULL,
    codec TEXT,
    channels INTEGER,
    language TEXT,
    title TEXT,
    is_default INTEGER NOT NULL DEFAULT 0,
    is_forced INTEGER NOT NULL DEFAULT 0,
    is_text INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX media_streams_media ON media_streams (media_id);
CREATE TABLE progress (
    owner TEXT NOT NULL,
    media_id TEXT NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    position_seconds REAL NOT NULL,
    completed INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (owner, media_id)
);
CREATE TABLE scans (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    files_seen INTEGER NOT NULL DEFAULT 0,
    files_added INTEGER NOT NULL DEFAULT 0,
    files_updated INTEGER NOT NULL DEFAULT 0,
    files_removed INTEGER NOT NULL DEFAULT 0,
    errors TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE scan_failures (
    root TEXT NOT NULL,
    rel_path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (root, rel_path)
);

