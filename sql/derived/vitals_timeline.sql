/*
Title: vitals_timeline
Description: Every vital-sign reading known as of $as_of placed on its patient's time axis: the
  infusion it belongs to and its day post-infusion in the site time zone.
Grain: one row per vital-sign reading (stg.vitals row) of a patient with an infusion.
Source criterion: CLINICAL_RULES 1 (Day post-infusion: calendar days in the site time zone;
  an observation belongs to the latest infusion at or before it); CONTRACT 2 (a row is known
  from its observed_at, and with --as-loaded also from its loaded_at).
Parameters: $as_of, $as_loaded, $rules_version
Upstream tables: stg.vitals, derived.infusion_episodes, ref.scope (patients of an incremental build)
*/
CREATE OR REPLACE TABLE derived.vitals_timeline AS
WITH known AS (
    SELECT *
    FROM stg.vitals
    WHERE observed_at <= $as_of
      AND (NOT $as_loaded OR loaded_at <= $as_of)
      -- incremental builds evaluate only the patients in ref.scope (no patient there: every patient)
      AND (patient_id IN (SELECT s.patient_id FROM ref.scope AS s)
          OR NOT EXISTS (SELECT 1 FROM ref.scope AS s WHERE s.patient_id IS NOT NULL))
),

assigned AS (
    -- CLINICAL_RULES 1: a reading belongs to the latest infusion at or before it
    SELECT
        k.*,
        i.infusion_id
    FROM known AS k
    ASOF LEFT JOIN derived.infusion_episodes AS i
        ON k.patient_id = i.patient_id AND k.observed_at >= i.infused_at
),

placed AS (
    -- readings before the first infusion sit on the first episode, at negative days
    SELECT
        a.* EXCLUDE (infusion_id),
        coalesce(a.infusion_id, f.infusion_id) AS infusion_id
    FROM assigned AS a
    INNER JOIN derived.infusion_episodes AS f
        ON a.patient_id = f.patient_id AND f.infusion_seq = 1
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
    day_post_infusion(i.site_tz, p.observed_at, i.infused_at) AS day,
    p.loaded_at,
    -- lineage
    p.row_key,
    p.source_file || ':' || p.source_line AS source,
    p.load_seq,
    $rules_version AS rules_version
FROM placed AS p
INNER JOIN derived.infusion_episodes AS i
    ON p.patient_id = i.patient_id AND p.infusion_id = i.infusion_id;
