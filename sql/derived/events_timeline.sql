/*
Title: events_timeline
Description: Every clinician-documented event known as of $as_of (CRS/ICANS grades, treatments,
  vasopressors, pathology, organomegaly) placed on its patient's time axis: the infusion it belongs
  to and its day post-infusion in the site time zone.
Grain: one row per event (stg.events row) of a patient with an infusion.
Source criterion: clinical-rules.md §1 (Day post-infusion: calendar days in the site time zone;
  an event belongs to the latest infusion at or before it); contract.md §3 (a row is known from its
  observed_at, and with --as-loaded also from its loaded_at).
Parameters: $as_of, $as_loaded, $rules_version
Upstream tables: stg.events, derived.infusion_episodes (derived.placed_on_infusion), ref.scope (patients of an incremental build)
*/
CREATE OR REPLACE TABLE derived.events_timeline AS
-- known is read by derived.placed_on_infusion through query_table(), which ST03 does not see
WITH known AS ( -- noqa: ST03
    SELECT *
    FROM stg.events
    WHERE derived.known_as_of(observed_at, loaded_at, $as_of, $as_loaded)
      -- incremental builds evaluate only the patients in ref.scope
      AND derived.in_build_scope(patient_id)
),

placed AS (
    -- clinical-rules.md §1: the latest infusion at or before each row (before the first: the first)
    SELECT * FROM derived.placed_on_infusion('known')
)

SELECT
    -- ids
    p.patient_id,
    p.infusion_id,
    p.event_type,
    -- values (grades and vasopressor counts in value_num; booleans as 1/0; notes in value_text)
    p.value_num,
    p.value_text,
    -- timestamps
    p.observed_at,
    p.day,
    p.loaded_at,
    -- lineage
    p.row_key,
    p.source_file || ':' || p.source_line AS source,
    p.load_seq,
    $rules_version AS rules_version
FROM placed AS p;
