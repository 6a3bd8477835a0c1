-- What the admin Library page polls while a scan runs (issue 16, web-client.md rule 24: list queries
-- indexed): the tracks whose conversion failed from a partial index over those few rows, in the
-- order the status lists them, instead of a containment test of every probe; the latest job of a
-- kind in one index step, not a walk back over every later (trickplay, keyframe) job.
CREATE INDEX media_subtitles_failed ON media (root COLLATE "C", rel_path COLLATE "C") WHERE probe -> 'subtitles' @> '[{"state": "failed"}]'::jsonb;
CREATE INDEX media_subtitles_pending ON media (id) WHERE probe -> 'subtitles' @> '[{"state": "pending"}]'::jsonb;
CREATE INDEX jobs_kind_latest ON jobs (kind, seq DESC);
