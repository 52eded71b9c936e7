/*
Title: timeline
Description: Every lab result placed on its patient's time axis: the infusion it belongs to, day
  post-infusion in the site time zone, the analyte's baseline, ULN/LLN and multiples of both.
Grain: one row per lab result in force (derived.lab_results) of a patient with an infusion.
Source criterion: CLINICAL_RULES 1 (Day post-infusion; Baseline: last result collected before the
  infusion and within $time_axis__baseline_lookback_hours of it; ULN/LLN: the result's own range,
  else the rules-file default for the analyte).
Parameters: $time_axis__baseline_lookback_hours, $rules_version
Upstream tables: derived.lab_results, derived.infusion_episodes (derived.placed_on_infusion),
  ref.analytes
*/
CREATE OR REPLACE TABLE derived.timeline AS
WITH placed AS (
    -- CLINICAL_RULES 1: the latest infusion at or before each result (before the first: the first)
    SELECT * FROM derived.placed_on_infusion('derived.lab_results')
),

baselines AS (
    -- CLINICAL_RULES 1: last result before the infusion timestamp, within the look-back
    SELECT
        i.patient_id,
        i.infusion_id,
        l.analyte,
        arg_max(l.value, l.observed_at) AS baseline
    FROM derived.infusion_episodes AS i
    INNER JOIN derived.lab_results AS l
        ON l.patient_id = i.patient_id
        AND l.observed_at < i.infused_at
        AND l.observed_at >= i.infused_at - to_hours($time_axis__baseline_lookback_hours::BIGINT)
    GROUP BY ALL
)

SELECT
    -- ids
    p.patient_id,
    p.infusion_id,
    p.analyte,
    p.loinc,
    -- values
    p.value,
    p.comparator,
    p.unit,
    coalesce(p.ref_high, r.default_high) AS uln,
    coalesce(p.ref_low, r.default_low) AS lln,
    b.baseline,
    p.value / nullif(coalesce(p.ref_high, r.default_high), 0) AS x_uln,
    p.value / nullif(b.baseline, 0) AS x_baseline,
    -- timestamps
    p.observed_at,
    p.day,
    p.resulted_at,
    p.loaded_at,
    -- lineage
    p.accession,
    p.result_status,
    p.source_file || ':' || p.source_line AS source,
    p.load_seq,
    $rules_version AS rules_version
FROM placed AS p
LEFT JOIN ref.analytes AS r ON p.analyte = r.analyte
LEFT JOIN baselines AS b
    ON p.patient_id = b.patient_id AND p.infusion_id = b.infusion_id AND p.analyte = b.analyte;
