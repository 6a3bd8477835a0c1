-- What the admin Library page polls while a scan runs (issue 16, web-client.md rule 24: list queries
-- indexed): the tracks whose conversion failed come from a partial index over those few rows instead
-- of a LIKE over every probe (the query repeats the literal: SQLite uses a partial index only for a
-- WHERE that contains the index's own term), and the latest job of a kind is one index step, not a
-- walk back over every later (trickplay, keyframe) job.
CREATE INDEX media_subtitles_failed ON media (root, rel_path) WHERE probe LIKE '%"state":"failed"%';
CREATE INDEX media_subtitles_pending ON media (id) WHERE probe LIKE '%"state":"pending"%';
CREATE INDEX jobs_kind_latest ON jobs (kind, seq);
