/*
Title: events_timeline
Description: Every clinician-documented event known as of $as_of (CRS/ICANS grades, treatments,
  vasopressors, pathology, organomegaly) placed on its patient's time axis: the infusion it belongs
  to and its day post-infusion in the site time zone.
Grain: one row per event (stg.events row) of a patient with an infusion.
Source criterion: CLINICAL_RULES 1 (Day post-infusion: calendar days in the site time zone;
  an event belongs to the latest infusion at or before it); CONTRACT 2 (a row is known from its
  observed_at, and with --as-loaded also from its loaded_at).
Parameters: $as_of, $as_loaded, $rules_version
Upstream tables: stg.events, derived.infusion_episodes, ref.scope (patients of an incremental build)
*/
CREATE OR REPLACE TABLE derived.events_timeline AS
WITH known AS (
    SELECT *
    FROM stg.events
    WHERE observed_at <= $as_of
      AND (NOT $as_loaded OR loaded_at <= $as_of)
      -- incremental builds evaluate only the patients in ref.scope (no patient there: every patient)
      AND (patient_id IN (SELECT s.patient_id FROM ref.scope AS s)
          OR NOT EXISTS (SELECT 1 FROM ref.scope AS s WHERE s.patient_id IS NOT NULL))
),

assigned AS (
    -- CLINICAL_RULES 1: an event belongs to the latest infusion at or before it
    SELECT
        k.*,
        i.infusion_id
    FROM known AS k
    ASOF LEFT JOIN derived.infusion_episodes AS i
        ON k.patient_id = i.patient_id AND k.observed_at >= i.infused_at
),

placed AS (
    -- events before the first infusion sit on the first episode, at negative days
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
    p.event_type,
    -- values (grades and vasopressor counts in value_num; booleans as 1/0; notes in value_text)
    p.value_num,
    p.value_text,
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
