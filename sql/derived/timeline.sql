/*
Title: timeline
Description: Every lab result placed on its patient's time axis: the infusion it belongs to, day
  post-infusion in the site time zone, the analyte's baseline, ULN/LLN and multiples of both.
Grain: one row per lab result in force (derived.lab_results) of a patient with an infusion.
Source criterion: CLINICAL_RULES 1 (Day post-infusion; Baseline: derived.baselines; ULN/LLN: the
  result's own range, else the rules-file default for the analyte).
Parameters: $rules_version
Upstream tables: derived.lab_results, derived.infusion_episodes (derived.placed_on_infusion),
  derived.baselines, ref.analytes
*/
CREATE OR REPLACE TABLE derived.timeline AS
WITH placed AS (
    -- CLINICAL_RULES 1: the latest infusion at or before each result (before the first: the first)
    SELECT * FROM derived.placed_on_infusion('derived.lab_results')
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
    b.value AS baseline,
    p.value / nullif(coalesce(p.ref_high, r.default_high), 0) AS x_uln,
    p.value / nullif(b.value, 0) AS x_baseline,
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
LEFT JOIN derived.baselines AS b
    ON p.patient_id = b.patient_id AND p.infusion_id = b.infusion_id AND p.analyte = b.analyte;
