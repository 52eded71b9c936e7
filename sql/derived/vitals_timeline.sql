/*
Title: vitals_timeline
Description: Every vital-sign reading known as of $as_of placed on its patient's time axis: the
  infusion it belongs to and its day post-infusion in the site time zone.
Grain: one row per vital-sign reading (stg.vitals row) of a patient with an infusion.
Source criterion: clinical-rules.md §1 (Day post-infusion: calendar days in the site time zone;
  an observation belongs to the latest infusion at or before it); contract.md §3 (a row is known
  from its observed_at, and with --as-loaded also from its loaded_at).
Parameters: $as_of, $as_loaded, $rules_version
Upstream tables: stg.vitals, derived.infusion_episodes (derived.placed_on_infusion), ref.scope (patients of an incremental build)
*/
CREATE OR REPLACE TABLE derived.vitals_timeline AS
-- known is read by derived.placed_on_infusion through query_table(), which ST03 does not see
WITH known AS ( -- noqa: ST03
    SELECT *
    FROM stg.vitals
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
    p.kind,
    -- values (canonical units; o2_device name in value_text)
    p.value,
    p.value_text,
    p.unit,
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
