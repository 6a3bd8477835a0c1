-- Pages without reading whole media rows (issue 14): one partial index per sort order over the
-- listed rows (stack parts after the first hidden), covering what the page's count and its
-- ordered OFFSET read (index-only scans; the sort columns are INCLUDEd because PostgreSQL needs the
-- base column of an expression key for an index-only scan); the page then reads only its own rows
-- (postgres_library.page_select).
CREATE INDEX media_listed_title ON media (lower(sort_title), id) INCLUDE (sort_title, kind) WHERE stack_key IS NULL OR part = 1;
CREATE INDEX media_listed_added ON media (added_at DESC, id) INCLUDE (kind) WHERE stack_key IS NULL OR part = 1;
CREATE INDEX media_listed_year ON media (year DESC NULLS LAST, lower(sort_title), id) INCLUDE (sort_title, kind) WHERE stack_key IS NULL OR part = 1;
-- autovacuum keeps the visibility map (index-only scans) and the statistics fresh after metadata
-- refreshes and small scans too, not only after a fifth of the table changed
ALTER TABLE media SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
