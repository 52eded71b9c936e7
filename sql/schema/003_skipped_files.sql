/*
Title: 003_skipped_files
Description: Files that were read but could not be loaded at all (not a feed, not text, an unknown
  format), so that the digest's data-quality section and `meta.runs` can name them: a file that
  is skipped is otherwise nowhere in the database (meta.files holds loaded files only).
Grain: one row per file per time it was seen (a file left in the inbox is seen by every nightly run).
*/

CREATE TABLE meta.skipped_files (
    source_file VARCHAR NOT NULL,
    file_sha256 VARCHAR,
    reason VARCHAR NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL,      -- the load's stamp: now, or the as-of of a `nightly --as-of` run
    run_id VARCHAR
);
