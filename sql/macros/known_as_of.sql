/*
Title: known_as_of
Description: Scalar macro: is a stored row known at the moment of an evaluation? True when its
  known time is at or before `as_of`, and, for a replay of the nightly runs (`as_loaded`), when it
  had also been loaded by then.
Grain: one boolean per row.
Source criterion: contract.md §3 (`--as-of`: a row is known from coalesce(resulted_at, observed_at);
  with `--as-loaded` it must also have been loaded by then).
Parameters: none read from the rules file. Macro arguments: known_at (coalesce(resulted_at,
  observed_at), or observed_at for feeds without a resulted time), loaded_at, as_of, as_loaded
  (the calling file's $as_of and $as_loaded).
Upstream tables: none
*/
CREATE OR REPLACE MACRO derived.known_as_of(known_at, loaded_at, as_of, as_loaded) AS (
    known_at <= as_of AND (NOT as_loaded OR loaded_at <= as_of)
);
