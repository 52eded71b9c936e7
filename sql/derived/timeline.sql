/*
Title: timeline
Description: Every lab result placed on its patient's time axis: the infusion it belongs to, day
  post-infusion in the site time zone, the analyte's baseline, ULN/LLN and multiples of both.
Grain: one row per lab result in force (derived.lab_results) of a patient with an infusion.
Source criterion: clinical-rules.md §1 (Day post-infusion; Baseline: derived.baselines; ULN/LLN: the
  result's own range, else the rules-file default for the analyte; Censored values).
  - comparator: the result's ('>' of `>100000`); x_uln is bounded the same way (ULN is exact).
  - baseline_comparator: the baseline's. x_baseline_comparator: the side from which the censored
    value and baseline bound x_baseline ('>' or '>=': at least, when the value is bounded below
    and the baseline above; '<' or '<=' the mirror); bounded from both sides, x_baseline is NULL
    (unknown). Exact: both NULL.
Parameters: $rules_version
Upstream tables: derived.lab_results, derived.infusion_episodes (derived.placed_on_infusion),
  derived.baselines, ref.analytes; derived.lowest_possible, derived.highest_possible (macros)
*/
CREATE OR REPLACE TABLE derived.timeline AS
WITH placed AS (
    -- clinical-rules.md §1: the latest infusion at or before each result (before the first: the first)
    SELECT * FROM derived.placed_on_infusion('derived.lab_results')
),

ratio_bounds AS (
    -- clinical-rules.md §1: value / baseline is at least (value's lowest) / (baseline's highest), at
    -- most (value's highest) / (baseline's lowest); strict when either bound is strict
    SELECT
        p.*,
        b.value AS baseline_value,
        b.comparator AS baseline_comparator,
        CASE
            WHEN p.comparator IS NULL AND b.comparator IS NULL THEN 'exact'
            WHEN derived.lowest_possible(p.value, p.comparator) IS NOT NULL
                AND derived.highest_possible(b.value, b.comparator) IS NOT NULL
                THEN CASE WHEN p.comparator = '>' OR b.comparator = '<' THEN '>' ELSE '>=' END
            WHEN derived.highest_possible(p.value, p.comparator) IS NOT NULL
                AND derived.lowest_possible(b.value, b.comparator) IS NOT NULL
                THEN CASE WHEN p.comparator = '<' OR b.comparator = '>' THEN '<' ELSE '<=' END
            ELSE 'unknown'
        END AS ratio_side
    FROM placed AS p
    LEFT JOIN derived.baselines AS b
        ON p.patient_id = b.patient_id AND p.infusion_id = b.infusion_id AND p.analyte = b.analyte
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
    p.baseline_value AS baseline,
    p.baseline_comparator,
    p.value / nullif(coalesce(p.ref_high, r.default_high), 0) AS x_uln,
    CASE WHEN p.ratio_side <> 'unknown' THEN p.value / nullif(p.baseline_value, 0) END AS x_baseline,
    CASE WHEN p.ratio_side NOT IN ('exact', 'unknown') THEN p.ratio_side END AS x_baseline_comparator,
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
FROM ratio_bounds AS p
LEFT JOIN ref.analytes AS r ON p.analyte = r.analyte;
