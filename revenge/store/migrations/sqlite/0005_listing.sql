-- Pages without reading whole media rows (issue 14): one partial index per sort order over the
-- listed rows (stack parts after the first hidden), so a page's count is a scan of the narrow
-- index, not of every (wide) media row, and a deep OFFSET walks index entries; the page then reads
-- only its own rows (library_store.page_select).
CREATE INDEX media_listed_title ON media (sort_title COLLATE NOCASE, id, kind) WHERE stack_key IS NULL OR part = 1;
CREATE INDEX media_listed_added ON media (added_at DESC, id, kind) WHERE stack_key IS NULL OR part = 1;
CREATE INDEX media_listed_year ON media (year IS NULL, year DESC, sort_title COLLATE NOCASE, id, kind) WHERE stack_key IS NULL OR part = 1;
