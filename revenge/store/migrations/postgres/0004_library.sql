-- The library (metadata.md §4): shows, seasons, images, item fields on media, search (generated
-- to_tsvector('simple', …) columns over text normalised in Python, GIN-indexed; no unaccent).
CREATE TABLE images (
    id UUID PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    mime TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'ready',
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE shows (
    id UUID PRIMARY KEY,
    show_key TEXT NOT NULL UNIQUE,
    root TEXT NOT NULL,
    title TEXT NOT NULL,
    original_title TEXT,
    sort_title TEXT NOT NULL,
    year INTEGER,
    overview TEXT,
    genres JSONB NOT NULL DEFAULT '[]',
    provider_ids JSONB NOT NULL DEFAULT '{}',
    primary_image UUID,
    backdrop_image UUID,
    local_fields JSONB NOT NULL DEFAULT '[]',
    metadata_state TEXT NOT NULL DEFAULT 'local',
    title_norm TEXT NOT NULL DEFAULT '',
    search_title TEXT NOT NULL DEFAULT '',
    search_overview TEXT NOT NULL DEFAULT '',
    search_tsv TSVECTOR GENERATED ALWAYS AS (setweight(to_tsvector('simple', search_title), 'A') || setweight(to_tsvector('simple', search_overview), 'B')) STORED,
    added_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX shows_sort ON shows (lower(sort_title), id);
CREATE INDEX shows_search ON shows USING GIN (search_tsv);
CREATE TABLE seasons (
    show_id UUID NOT NULL REFERENCES shows(id) ON DELETE CASCADE,
    season INTEGER NOT NULL,
    primary_image UUID,
    PRIMARY KEY (show_id, season)
);
ALTER TABLE media ADD COLUMN kind TEXT NOT NULL DEFAULT 'video';
ALTER TABLE media ADD COLUMN sort_title TEXT;
ALTER TABLE media ADD COLUMN original_title TEXT;
ALTER TABLE media ADD COLUMN year INTEGER;
ALTER TABLE media ADD COLUMN overview TEXT;
ALTER TABLE media ADD COLUMN genres JSONB NOT NULL DEFAULT '[]';
ALTER TABLE media ADD COLUMN show_id UUID REFERENCES shows(id) ON DELETE SET NULL;
ALTER TABLE media ADD COLUMN season INTEGER;
ALTER TABLE media ADD COLUMN episode INTEGER;
ALTER TABLE media ADD COLUMN episode_end INTEGER;
ALTER TABLE media ADD COLUMN episode_title TEXT;
ALTER TABLE media ADD COLUMN premiered TEXT;
ALTER TABLE media ADD COLUMN provider_ids JSONB NOT NULL DEFAULT '{}';
ALTER TABLE media ADD COLUMN primary_image UUID;
ALTER TABLE media ADD COLUMN backdrop_image UUID;
ALTER TABLE media ADD COLUMN local_fields JSONB NOT NULL DEFAULT '[]';
ALTER TABLE media ADD COLUMN metadata_state TEXT NOT NULL DEFAULT 'local';
ALTER TABLE media ADD COLUMN stack_key TEXT;
ALTER TABLE media ADD COLUMN part INTEGER;
ALTER TABLE media ADD COLUMN fingerprint TEXT;
ALTER TABLE media ADD COLUMN local_sig TEXT;
ALTER TABLE media ADD COLUMN title_norm TEXT NOT NULL DEFAULT '';
ALTER TABLE media ADD COLUMN search_title TEXT NOT NULL DEFAULT '';
ALTER TABLE media ADD COLUMN search_overview TEXT NOT NULL DEFAULT '';
ALTER TABLE media ADD COLUMN search_tsv TSVECTOR GENERATED ALWAYS AS (setweight(to_tsvector('simple', search_title), 'A') || setweight(to_tsvector('simple', search_overview), 'B')) STORED;
CREATE INDEX media_sort ON media (lower(sort_title), id);
CREATE INDEX media_added ON media (added_at, id);
CREATE INDEX media_show ON media (show_id, season, episode);
CREATE INDEX media_kind ON media (kind);
CREATE INDEX media_size ON media (size);
CREATE INDEX media_search ON media USING GIN (search_tsv);
