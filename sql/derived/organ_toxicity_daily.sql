/*
Title: organ_toxicity_daily
Description: CTCAE v5 grade of AST, ALT, total bilirubin and creatinine per day post-infusion,
  from the worst result of the day, for the organ items of CARTOX and Shah 2020.
Grain: one row per patient, infusion, day post-infusion and graded analyte (ast, alt,
  bilirubin_total, creatinine) that has at least one result that day.
Source criterion: NCI CTCAE v5.0 (2017), baseline normal, as clinical-rules.md §4 writes it:
  AST/ALT grade 3 > 5-20 x ULN, grade 4 > 20 x ULN; total bilirubin grade 3 > 3-10 x ULN,
  grade 4 > 10 x ULN; creatinine grade 3 > 3 x baseline or > 3-6 x ULN, grade 4 > 6 x ULN.
  Every bound is strict: exactly 5 x ULN is not grade 3. No baseline: creatinine on ULN alone.
  - A censored result grades by what it proves (derived.censored_compare; §1): the
    grade is the highest one proven, so AST `>1000` with ULN 40 (above 25 x ULN) is grade 4, and
    `>150` (above 3.75 x ULN, perhaps not above 5) is not proven grade 3 and counts as 0;
    `comparator` is kept with the day's worst result for the evidence.
  - organ: 'liver' (ast, alt, bilirubin_total) or 'kidney' (creatinine).
  - grade: 4, 3, or 0 for "below grade 3" (§4 gives only the grade 3/4 thresholds, so grades
    0-2 are not told apart; the criteria sets ask for >= 3).
  - value ... source: the day's worst result (highest grade, then highest multiple of ULN).
  - grade_at: the first result of the day at the day's grade (when that grade began to hold).
  - Multiples are rounded to float_guard.decimals before comparison, so float noise
    (3.6 / 1.2 = 3.0000000000000004) cannot lift a value on a bound into the next grade.
Parameters: $ctcae__transaminase_g3_x_uln, $ctcae__transaminase_g4_x_uln,
  $ctcae__bilirubin_g3_x_uln, $ctcae__bilirubin_g4_x_uln, $ctcae__creatinine_g3_x_baseline,
  $ctcae__creatinine_g3_x_uln, $ctcae__creatinine_g4_x_uln, $ctcae__grade_severe,
  $ctcae__grade_life_threatening, $rules_version
Upstream tables: derived.timeline; derived.censored_compare (macro)
*/
CREATE OR REPLACE TABLE derived.organ_toxicity_daily AS
WITH float_guard AS (
    -- decimals kept before comparing a multiple with a bound (not a clinical number)
    SELECT 9 AS decimals
),

graded_results AS (
    SELECT
        t.patient_id,
        t.infusion_id,
        t.day,
        t.analyte,
        t.value,
        t.comparator,
        t.unit,
        t.uln,
        t.x_uln,
        t.baseline,
        t.x_baseline,
        t.x_baseline_comparator,
        t.observed_at,
        t.source,
        round(t.x_uln, g.decimals) AS x_uln_r,
        round(t.x_baseline, g.decimals) AS x_baseline_r
    FROM derived.timeline AS t
    CROSS JOIN float_guard AS g
    WHERE t.analyte IN ('ast', 'alt', 'bilirubin_total', 'creatinine')
      AND t.value IS NOT NULL
),

per_result AS (
    SELECT
        *,
        CASE WHEN analyte = 'creatinine' THEN 'kidney' ELSE 'liver' END AS organ,
        CASE
            -- CTCAE v5 AST/ALT increased: grade 4 > 20 x ULN, grade 3 > 5-20 x ULN
            WHEN analyte IN ('ast', 'alt')
                AND derived.censored_compare(x_uln_r, comparator, '>', $ctcae__transaminase_g4_x_uln)
                THEN $ctcae__grade_life_threatening
            WHEN analyte IN ('ast', 'alt')
                AND derived.censored_compare(x_uln_r, comparator, '>', $ctcae__transaminase_g3_x_uln)
                THEN $ctcae__grade_severe
            -- CTCAE v5 blood bilirubin increased: grade 4 > 10 x ULN, grade 3 > 3-10 x ULN
            WHEN analyte = 'bilirubin_total'
                AND derived.censored_compare(x_uln_r, comparator, '>', $ctcae__bilirubin_g4_x_uln)
                THEN $ctcae__grade_life_threatening
            WHEN analyte = 'bilirubin_total'
                AND derived.censored_compare(x_uln_r, comparator, '>', $ctcae__bilirubin_g3_x_uln)
                THEN $ctcae__grade_severe
            -- CTCAE v5 creatinine increased: grade 4 > 6 x ULN
            WHEN analyte = 'creatinine'
                AND derived.censored_compare(x_uln_r, comparator, '>', $ctcae__creatinine_g4_x_uln)
                THEN $ctcae__grade_life_threatening
            -- CTCAE v5 creatinine increased: grade 3 > 3 x baseline or > 3-6 x ULN
            WHEN analyte = 'creatinine'
                AND (derived.censored_compare(x_uln_r, comparator, '>', $ctcae__creatinine_g3_x_uln)
                    OR derived.censored_compare(
                        x_baseline_r, x_baseline_comparator, '>', $ctcae__creatinine_g3_x_baseline
                    ))
                THEN $ctcae__grade_severe
            ELSE 0
        END::INTEGER AS grade
    FROM graded_results
),

per_day AS (
    SELECT
        patient_id,
        infusion_id,
        day,
        organ,
        analyte,
        max(grade) AS grade,
        arg_max(
            struct_pack(value, comparator, unit, uln, x_uln, baseline, x_baseline, observed_at, source),
            (grade, x_uln_r, value)
        ) AS worst,
        count(*) AS results
    FROM per_result
    GROUP BY ALL
),

grade_onset AS (
    -- when the day's grade began to hold: its first result at that grade
    SELECT
        r.patient_id,
        r.infusion_id,
        r.day,
        r.analyte,
        min(r.observed_at) AS grade_at
    FROM per_result AS r
    INNER JOIN per_day AS d
        ON r.patient_id = d.patient_id AND r.infusion_id = d.infusion_id
        AND r.day = d.day AND r.analyte = d.analyte AND r.grade = d.grade
    GROUP BY ALL
)

SELECT
    -- ids
    d.patient_id,
    d.infusion_id,
    d.day,
    d.organ,
    d.analyte,
    -- grade and the day's worst result
    d.grade,
    d.worst.value AS value,
    d.worst.comparator AS comparator,
    d.worst.unit AS unit,
    d.worst.uln AS uln,
    d.worst.x_uln AS x_uln,
    d.worst.baseline AS baseline,
    d.worst.x_baseline AS x_baseline,
    d.results,
    -- timestamps
    d.worst.observed_at AS observed_at,
    g.grade_at,
    -- lineage
    d.worst.source AS source,
    $rules_version AS rules_version
FROM per_day AS d
INNER JOIN grade_onset AS g
    ON d.patient_id = g.patient_id AND d.infusion_id = g.infusion_id
    AND d.day = g.day AND d.analyte = g.analyte;
