-- The library (metadata.md §4): shows, seasons, images, item fields on media, search (FTS5 over
-- text normalised in Python, kept by triggers).
CREATE TABLE images (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    mime TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'ready',
    created_at TEXT NOT NULL
);
CREATE TABLE shows (
    id TEXT PRIMARY KEY,
    show_key TEXT NOT NULL UNIQUE,
    root TEXT NOT NULL,
    title TEXT NOT NULL,
    original_title TEXT,
    sort_title TEXT NOT NULL,
    year INTEGER,
    overview TEXT,
    genres TEXT NOT NULL DEFAULT '[]',
    provider_ids TEXT NOT NULL DEFAULT '{}',
    primary_image TEXT,
    backdrop_image TEXT,
    local_fields TEXT NOT NULL DEFAULT '[]',
    metadata_state TEXT NOT NULL DEFAULT 'local',
    title_norm TEXT NOT NULL DEFAULT '',
    search_title TEXT NOT NULL DEFAULT '',
    search_overview TEXT NOT NULL DEFAULT '',
    added_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX shows_sort ON shows (sort_title COLLATE NOCASE, id);
CREATE TABLE seasons (
    show_id TEXT NOT NULL REFERENCES shows(id) ON DELETE CASCADE,
    season INTEGER NOT NULL,
    primary_image TEXT,
    PRIMARY KEY (show_id, season)
);
ALTER TABLE media ADD COLUMN kind TEXT NOT NULL DEFAULT 'video';
ALTER TABLE media ADD COLUMN sort_title TEXT;
ALTER TABLE media ADD COLUMN original_title TEXT;
ALTER TABLE media ADD COLUMN year INTEGER;
ALTER TABLE media ADD COLUMN overview TEXT;
ALTER TABLE media ADD COLUMN genres TEXT NOT NULL DEFAULT '[]';
ALTER TABLE media ADD COLUMN show_id TEXT REFERENCES shows(id) ON DELETE SET NULL;
ALTER TABLE media ADD COLUMN season INTEGER;
ALTER TABLE media ADD COLUMN episode INTEGER;
ALTER TABLE media ADD COLUMN episode_end INTEGER;
ALTER TABLE media ADD COLUMN episode_title TEXT;
ALTER TABLE media ADD COLUMN premiered TEXT;
ALTER TABLE media ADD COLUMN provider_ids TEXT NOT NULL DEFAULT '{}';
ALTER TABLE media ADD COLUMN primary_image TEXT;
ALTER TABLE media ADD COLUMN backdrop_image TEXT;
ALTER TABLE media ADD COLUMN local_fields TEXT NOT NULL DEFAULT '[]';
ALTER TABLE media ADD COLUMN metadata_state TEXT NOT NULL DEFAULT 'local';
ALTER TABLE media ADD COLUMN stack_key TEXT;
ALTER TABLE media ADD COLUMN part INTEGER;
ALTER TABLE media ADD COLUMN fingerprint TEXT;
ALTER TABLE media ADD COLUMN local_sig TEXT;
ALTER TABLE media ADD COLUMN title_norm TEXT NOT NULL DEFAULT '';
ALTER TABLE media ADD COLUMN search_title TEXT NOT NULL DEFAULT '';
ALTER TABLE media ADD COLUMN search_overview TEXT NOT NULL DEFAULT '';
CREATE INDEX media_sort ON media (sort_title COLLATE NOCASE, id);
CREATE INDEX media_added ON media (added_at, id);
CREATE INDEX media_show ON media (show_id, season, episode);
CREATE INDEX media_kind ON media (kind);
CREATE INDEX media_size ON media (size);
CREATE VIRTUAL TABLE media_fts USING fts5 (title, overview, tokenize = 'unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE shows_fts USING fts5 (title, overview, tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO media_fts (rowid, title, overview) SELECT rowid, search_title, search_overview FROM media;
CREATE TRIGGER media_fts_insert AFTER INSERT ON media BEGIN INSERT INTO media_fts (rowid, title, overview) VALUES (new.rowid, new.search_title, new.search_overview); END;
CREATE TRIGGER media_fts_update AFTER UPDATE OF search_title, search_overview ON media BEGIN DELETE FROM media_fts WHERE rowid = old.rowid; INSERT INTO media_fts (rowid, title, overview) VALUES (new.rowid, new.search_title, new.search_overview); END;
CREATE TRIGGER media_fts_delete AFTER DELETE ON media BEGIN DELETE FROM media_fts WHERE rowid = old.rowid; END;
CREATE TRIGGER shows_fts_insert AFTER INSERT ON shows BEGIN INSERT INTO shows_fts (rowid, title, overview) VALUES (new.rowid, new.search_title, new.search_overview); END;
CREATE TRIGGER shows_fts_update AFTER UPDATE OF search_title, search_overview ON shows BEGIN DELETE FROM shows_fts WHERE rowid = old.rowid; INSERT INTO shows_fts (rowid, title, overview) VALUES (new.rowid, new.search_title, new.search_overview); END;
CREATE TRIGGER shows_fts_delete AFTER DELETE ON shows BEGIN DELETE FROM shows_fts WHERE rowid = old.rowid; END;
