/*
Title: astct_iec_hs_2023_manifestations
Description: Every post-infusion result or documented event that shows an IEC-HS manifestation,
  with the threshold it crossed: the four most common ones (they make `criteria_met`) and the other
  ones (reported as evidence only).
Grain: one row per manifestation per result (labs, events); fever and pulmonary involvement: one
  row per patient, infusion and calendar day (the day's first qualifying reading).
Source criterion: ASTCT consensus on IEC-HS (Hines et al., Transplant Cell Ther 2023), most common
  manifestations: transaminases > 5 x ULN (baseline normal) or > 5 x baseline (baseline abnormal);
  fibrinogen < 150 mg/dL or < LLN; hemophagocytosis; new or worsening cytopenias (ANC, platelets,
  hemoglobin). Other manifestations: LDH > ULN, PT/PTT prolonged, direct hyperbilirubinemia, new
  splenomegaly, fever, neurotoxicity, pulmonary involvement, new renal insufficiency, fasting
  triglycerides > 265 mg/dL. clinical-rules.md §3.
  - Censored results and baselines count by what they prove (clinical-rules.md §1): fibrinogen
    `<150` is below 150, `<200` is not proven; a baseline that may or may not be abnormal needs
    both thresholds exceeded, at its highest possible value. `comparator` is kept.
Parameters: $iec_hs__transaminase_x_uln, $iec_hs__transaminase_x_baseline, $iec_hs__fibrinogen_lt_mg_dl,
  $iec_hs__anc_lt, $iec_hs__platelets_lt, $iec_hs__hemoglobin_lt_g_dl, $iec_hs__cytopenia_worsening_fraction,
  $iec_hs__ldh_x_uln, $iec_hs__coagulation_x_uln, $iec_hs__bilirubin_direct_x_uln,
  $iec_hs__creatinine_x_baseline, $iec_hs__triglycerides_gt_mg_dl, $iec_hs__neurotoxicity_icans_grade_min,
  $crs__fever_c, $rules_version
Upstream tables: derived.timeline, derived.vitals_timeline, derived.events_timeline, derived.infusion_episodes;
  derived.censored_compare, derived.lowest_possible (macros)
*/
CREATE OR REPLACE TABLE flags.astct_iec_hs_2023_manifestations AS
WITH labs AS (
    SELECT t.*
    FROM derived.timeline AS t
    INNER JOIN derived.infusion_episodes AS i
        ON t.patient_id = i.patient_id AND t.infusion_id = i.infusion_id
    WHERE t.observed_at >= i.infused_at AND t.value IS NOT NULL
),

events AS (
    SELECT
        e.*,
        i.infused_at
    FROM derived.events_timeline AS e
    INNER JOIN derived.infusion_episodes AS i
        ON e.patient_id = i.patient_id AND e.infusion_id = i.infusion_id
    WHERE e.observed_at >= i.infused_at
),

vitals AS (
    SELECT v.*
    FROM derived.vitals_timeline AS v
    INNER JOIN derived.infusion_episodes AS i
        ON v.patient_id = i.patient_id AND v.infusion_id = i.infusion_id
    WHERE v.observed_at >= i.infused_at
),

counts AS (
    SELECT
        *,
        CASE analyte
            WHEN 'anc' THEN $iec_hs__anc_lt
            WHEN 'platelets' THEN $iec_hs__platelets_lt
            WHEN 'hemoglobin' THEN $iec_hs__hemoglobin_lt_g_dl
        END AS threshold,
        -- the baseline was at or above the threshold (a censored one only when it proves it)
        coalesce(derived.censored_compare(
            baseline, baseline_comparator, '>=',
            CASE analyte
                WHEN 'anc' THEN $iec_hs__anc_lt
                WHEN 'platelets' THEN $iec_hs__platelets_lt
                WHEN 'hemoglobin' THEN $iec_hs__hemoglobin_lt_g_dl
            END
        ), FALSE) AS baseline_at_or_above,
        -- the post-infusion best before this result (worsening is a fall from it), from what the
        -- earlier results prove (`<0.5` proves no best)
        max(derived.lowest_possible(value, comparator)) OVER (
            PARTITION BY patient_id, infusion_id, analyte ORDER BY observed_at
            RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW EXCLUDE GROUP
        ) AS best_before
    FROM labs
    WHERE analyte IN ('anc', 'platelets', 'hemoglobin')
),

transaminases AS (
    -- ASTCT 2023: AST or ALT > 5 x ULN if baseline normal, > 5 x baseline if baseline abnormal
    SELECT
        *,
        'transaminases' AS rule,
        'common' AS manifestation_class,
        CASE baseline_abnormal
            WHEN TRUE THEN $iec_hs__transaminase_x_baseline * baseline_highest
            WHEN FALSE THEN $iec_hs__transaminase_x_uln * uln
            -- a censored baseline that may or may not be abnormal: both thresholds must be exceeded
            ELSE CASE WHEN baseline_highest IS NOT NULL THEN greatest(
                $iec_hs__transaminase_x_uln * uln, $iec_hs__transaminase_x_baseline * baseline_highest
            ) END
        END AS threshold,
        CASE baseline_abnormal
            WHEN TRUE THEN 'above x baseline (baseline abnormal)'
            WHEN FALSE THEN 'above x ULN'
            ELSE 'above x ULN and x baseline (censored baseline)'
        END AS detail,
        -- the threshold is a multiple of a baseline strictly below it (`<100`): reaching it is enough
        coalesce(
            baseline_abnormal IS NULL AND baseline_comparator = '<'
            AND $iec_hs__transaminase_x_baseline * baseline_highest > $iec_hs__transaminase_x_uln * uln,
            FALSE
        ) AS threshold_inclusive
    FROM (
        SELECT
            *,
            -- no baseline is a normal one (the ULN rule); a censored one is judged by its interval
            CASE WHEN baseline IS NOT NULL
                THEN derived.censored_compare(baseline, baseline_comparator, '>', uln)
                ELSE FALSE END AS baseline_abnormal,
            derived.highest_possible(baseline, baseline_comparator) AS baseline_highest
        FROM labs
    ) AS l
    WHERE analyte IN ('ast', 'alt')
),

fibrinogen AS (
    -- ASTCT 2023: fibrinogen < 150 mg/dL or < LLN, i.e. below the higher of the two
    SELECT
        *,
        'fibrinogen' AS rule,
        'common' AS manifestation_class,
        greatest($iec_hs__fibrinogen_lt_mg_dl, lln) AS threshold,
        'below max(fixed cut-off, LLN)' AS detail
    FROM labs
    WHERE analyte = 'fibrinogen'
),

cytopenias AS (
    -- ASTCT 2023: new or worsening cytopenias (new: the baseline or an earlier post-infusion
    -- result was at or above the threshold; worsening: a fall by the fraction from the best)
    SELECT
        *,
        'cytopenia' AS rule,
        'common' AS manifestation_class,
        CASE
            WHEN baseline_at_or_above OR best_before >= threshold THEN 'new'
            ELSE 'worsening'
        END AS detail
    FROM counts
    WHERE derived.censored_compare(value, comparator, '<', threshold)
        AND (
            baseline_at_or_above
            OR best_before >= threshold
            OR derived.censored_compare(
                value, comparator, '<=', (1 - $iec_hs__cytopenia_worsening_fraction) * best_before
            )
        )
),

other_labs AS (
    -- ASTCT 2023 other manifestations: LDH > ULN, direct hyperbilirubinemia, PT/PTT prolonged,
    -- fasting triglycerides > 265 mg/dL
    SELECT
        *,
        CASE analyte
            WHEN 'ldh' THEN 'ldh'
            WHEN 'bilirubin_direct' THEN 'bilirubin_direct'
            WHEN 'triglycerides' THEN 'triglycerides'
            ELSE 'coagulation'
        END AS rule,
        'other' AS manifestation_class,
        CASE analyte
            WHEN 'ldh' THEN $iec_hs__ldh_x_uln * uln
            WHEN 'bilirubin_direct' THEN $iec_hs__bilirubin_direct_x_uln * uln
            WHEN 'triglycerides' THEN $iec_hs__triglycerides_gt_mg_dl
            ELSE $iec_hs__coagulation_x_uln * uln
        END AS threshold,
        CASE WHEN analyte = 'triglycerides' THEN 'above fixed cut-off' ELSE 'above x ULN' END AS detail
    FROM labs
    WHERE analyte IN ('ldh', 'bilirubin_direct', 'triglycerides', 'pt', 'inr', 'aptt')
),

renal AS (
    -- ASTCT 2023: new renal insufficiency (creatinine against a known baseline only)
    SELECT
        *,
        'renal' AS rule,
        'other' AS manifestation_class,
        $iec_hs__creatinine_x_baseline * derived.highest_possible(baseline, baseline_comparator) AS threshold,
        'at or above x baseline' AS detail
    FROM labs
    WHERE analyte = 'creatinine'
),

event_manifestations AS (
    SELECT
        patient_id,
        infusion_id,
        observed_at,
        day,
        event_type AS analyte,
        value_num AS value,
        NULL AS unit,
        source,
        CASE event_type
            WHEN 'hemophagocytosis' THEN 'hemophagocytosis'
            WHEN 'splenomegaly' THEN 'splenomegaly'
            ELSE 'neurotoxicity'
        END AS rule,
        CASE WHEN event_type = 'hemophagocytosis' THEN 'common' ELSE 'other' END AS manifestation_class,
        CASE WHEN event_type = 'icans_grade' THEN $iec_hs__neurotoxicity_icans_grade_min END AS threshold,
        CASE event_type
            WHEN 'hemophagocytosis' THEN 'documented'
            WHEN 'splenomegaly' THEN 'documented, none before the infusion'
            ELSE 'ICANS grade at or above the minimum'
        END AS detail
    FROM events AS e
    -- ASTCT 2023: hemophagocytosis in marrow or other tissue (pathology event)
    WHERE (event_type = 'hemophagocytosis' AND value_num > 0)
        -- ASTCT 2023: neurotoxicity (documented ICANS grade)
        OR (event_type = 'icans_grade' AND value_num >= $iec_hs__neurotoxicity_icans_grade_min)
        -- ASTCT 2023: new splenomegaly (none documented before the infusion)
        OR (
            event_type = 'splenomegaly' AND value_num > 0
            AND NOT EXISTS (
                SELECT 1
                FROM derived.events_timeline AS b
                WHERE b.patient_id = e.patient_id AND b.event_type = 'splenomegaly' AND b.value_num > 0
                    AND b.observed_at < e.infused_at
            )
        )
),

fever AS (
    -- ASTCT 2023: fever (the day's highest temperature at or above the CRS fever threshold)
    SELECT
        patient_id,
        infusion_id,
        observed_at,
        day,
        kind AS analyte,
        value,
        unit,
        source,
        'fever' AS rule,
        'other' AS manifestation_class,
        $crs__fever_c AS threshold,
        'highest temperature of the day' AS detail
    FROM vitals
    WHERE kind = 'temperature' AND value >= $crs__fever_c
    QUALIFY row_number() OVER (PARTITION BY patient_id, infusion_id, day ORDER BY value DESC, observed_at, load_seq) = 1
),

pulmonary AS (
    -- ASTCT 2023: pulmonary involvement (supplemental oxygen charted; first reading of the day)
    SELECT
        patient_id,
        infusion_id,
        observed_at,
        day,
        kind AS analyte,
        value,
        coalesce(value_text, unit) AS unit,
        source,
        'pulmonary' AS rule,
        'other' AS manifestation_class,
        NULL AS threshold,
        'supplemental oxygen' AS detail
    FROM vitals
    WHERE (kind = 'o2_device' AND value_text <> 'room_air') OR (kind = 'o2_flow' AND value > 0)
    -- readings charted at the same moment (a flow and a device): the one sent first, every run
    QUALIFY row_number() OVER (PARTITION BY patient_id, infusion_id, day ORDER BY observed_at, load_seq) = 1
),

lab_found AS (
    SELECT * FROM transaminases
    WHERE derived.censored_compare(value, comparator, CASE WHEN threshold_inclusive THEN '>=' ELSE '>' END, threshold)
    UNION ALL BY NAME
    SELECT * FROM fibrinogen WHERE derived.censored_compare(value, comparator, '<', threshold)
    UNION ALL BY NAME
    SELECT * EXCLUDE (best_before, baseline_at_or_above) FROM cytopenias
    UNION ALL BY NAME
    SELECT * FROM other_labs WHERE derived.censored_compare(value, comparator, '>', threshold)
    UNION ALL BY NAME
    SELECT * FROM renal WHERE derived.censored_compare(value, comparator, '>=', threshold)
),

found AS (
    SELECT
        patient_id,
        infusion_id,
        observed_at,
        day,
        analyte,
        value,
        comparator,
        unit,
        source,
        rule,
        manifestation_class,
        threshold,
        detail
    FROM lab_found
    UNION ALL BY NAME
    SELECT * FROM event_manifestations
    UNION ALL BY NAME
    SELECT * FROM fever
    UNION ALL BY NAME
    SELECT * FROM pulmonary
)

SELECT
    -- ids
    patient_id,
    infusion_id,
    rule,
    manifestation_class,
    analyte,
    -- values
    value,
    comparator,
    unit,
    threshold,
    detail,
    -- timestamps
    observed_at,
    day,
    -- lineage
    source,
    $rules_version AS rules_version
FROM found;
