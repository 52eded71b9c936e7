/*
Title: infusion_episodes
Description: Each CAR-T infusion known as of $as_of opens an episode that lasts until the
  patient's next infusion (re-infusion or second product starts a new episode).
Grain: one row per patient per infusion.
Source criterion: clinical-rules.md §1 (Time axis: an event belongs to the latest infusion at or before it).
Parameters: $as_of, $as_loaded, $site_tz (settings), $rules_version
Upstream tables: stg.infusions, ref.scope (patients of an incremental build)
*/
CREATE OR REPLACE TABLE derived.infusion_episodes AS
WITH known AS (
    SELECT *
    FROM stg.infusions
    WHERE derived.known_as_of(observed_at, loaded_at, $as_of, $as_loaded)
      -- incremental builds evaluate only the patients in ref.scope
      AND derived.in_build_scope(patient_id)
),

latest_version AS (
    -- an infusion re-sent with changes: its last delivery is the one in force
    SELECT *
    FROM known
    QUALIFY row_number() OVER (PARTITION BY patient_id, infusion_id ORDER BY load_seq DESC) = 1
)

SELECT
    -- ids
    patient_id,
    infusion_id,
    row_number() OVER (PARTITION BY patient_id ORDER BY observed_at, infusion_id) AS infusion_seq,
    -- attributes
    product,
    target_antigen,
    indication,
    coalesce(site_timezone, $site_tz) AS site_tz,
    -- timestamps
    observed_at AS infused_at,
    lead(observed_at) OVER (PARTITION BY patient_id ORDER BY observed_at, infusion_id) AS episode_end,
    $rules_version AS rules_version
FROM latest_version;
