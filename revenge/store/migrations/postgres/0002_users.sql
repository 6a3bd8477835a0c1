-- Accounts, sign-ins, API keys and per-user watch state (users.md); the built-in admin inherits
-- every round-one resume point.
CREATE TABLE users (
    id UUID PRIMARY KEY,
    username TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    disabled BOOLEAN NOT NULL DEFAULT false,
    password_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX users_username ON users (lower(username));
CREATE TABLE sign_ins (
    id_hash TEXT PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at DOUBLE PRECISION NOT NULL,
    last_seen_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    user_agent TEXT,
    address TEXT
);
CREATE INDEX sign_ins_user ON sign_ins (user_id);
CREATE TABLE api_keys (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    last_used_at DOUBLE PRECISION
);
CREATE INDEX api_keys_user ON api_keys (user_id);
CREATE TABLE watch_state (
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    media_id UUID NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    position_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    played BOOLEAN NOT NULL DEFAULT false,
    play_count INTEGER NOT NULL DEFAULT 0,
    last_played_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, media_id)
);
CREATE INDEX watch_state_recent ON watch_state (user_id, played, updated_at);
INSERT INTO meta (key, value) SELECT 'builtin_admin', gen_random_uuid()::text
    WHERE NOT EXISTS (SELECT 1 FROM meta WHERE key = 'builtin_admin');
INSERT INTO users (id, username, role, disabled, password_hash, created_at)
    SELECT value::uuid, 'admin', 'admin', false, '', now() FROM meta WHERE key = 'builtin_admin';
INSERT INTO watch_state (user_id, media_id, position_seconds, played, play_count, last_played_at, updated_at)
    SELECT (SELECT value::uuid FROM meta WHERE key = 'builtin_admin'), p.media_id,
           (SELECT q.position_seconds FROM progress q WHERE q.media_id = p.media_id
            ORDER BY q.updated_at DESC LIMIT 1),
           bool_or(p.completed), count(*) FILTER (WHERE p.completed),
           max(p.updated_at) FILTER (WHERE p.completed), max(p.updated_at)
    FROM progress p GROUP BY p.media_id;
DROP TABLE progress;
