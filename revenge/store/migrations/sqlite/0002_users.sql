-- Accounts, sign-ins, API keys and per-user watch state (users.md); the built-in admin inherits
-- every round-one resume point.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL COLLATE NOCASE UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    disabled INTEGER NOT NULL DEFAULT 0,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE sign_ins (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    user_agent TEXT,
    address TEXT
);
CREATE INDEX sign_ins_user ON sign_ins (user_id);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at REAL
);
CREATE INDEX api_keys_user ON api_keys (user_id);
CREATE TABLE watch_state (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    media_id TEXT NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    position_seconds REAL NOT NULL DEFAULT 0,
    played INTEGER NOT NULL DEFAULT 0,
    play_count INTEGER NOT NULL DEFAULT 0,
    last_played_at TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, media_id)
);
CREATE INDEX watch_state_recent ON watch_state (user_id, played, updated_at);
INSERT INTO meta (key, value) SELECT 'builtin_admin', lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2)))
    || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + abs(random()) % 4, 1)
    || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6)))
    WHERE NOT EXISTS (SELECT 1 FROM meta WHERE key = 'builtin_admin');
INSERT INTO users (id, username, role, disabled, password_hash, created_at)
    SELECT value, 'admin', 'admin', 0, '', strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM meta WHERE key = 'builtin_admin';
INSERT INTO watch_state (user_id, media_id, position_seconds, played, play_count, last_played_at, updated_at)
    SELECT (SELECT value FROM meta WHERE key = 'builtin_admin'), p.media_id,
           (SELECT q.position_seconds FROM progress q WHERE q.media_id = p.media_id
            ORDER BY q.updated_at DESC LIMIT 1),
           MAX(p.completed), SUM(p.completed),
           MAX(CASE WHEN p.completed THEN p.updated_at END), MAX(p.updated_at)
    FROM progress p GROUP BY p.media_id;
DROP TABLE progress;
