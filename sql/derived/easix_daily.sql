/*
Title: easix_daily
Description: EASIX and modified EASIX per day post-infusion, from that day's LDH, creatinine,
  platelets and CRP.
Grain: one row per patient, infusion and day post-infusion with at least one LDH, creatinine,
  platelet or CRP result (a score is NULL when one of its values is missing that day).
Source criterion: Luft T et al., Lancet Haematol 2017;4:e414 (EASIX = LDH [U/L] x creatinine
  [mg/dL] / platelets [10^9/L]); Pennisi M et al., Blood Adv 2021 (m-EASIX: CRP [mg/dL] in place
  of creatinine); clinical-rules.md §4 (EASIX, per day).
Which value of the day: the worst one (highest LDH, creatinine and CRP, lowest platelets).
  EASIX was validated on one draw per time point; most days have one morning draw, so the choice
  rarely matters, and when a day has several the worst keeps the daily score conservative for
  monitoring (it never hides a bad draw behind a better one) and matches the "day's worst values"
  of the daily flags (contract.md §5). The time of each value is kept.
Censored inputs (clinical-rules.md §1): when every censored input bounds the score from one side,
  the score is that bound, `easix_comparator` '>' (at least; LDH `>2500`) or '<' (at most); from
  both sides, the score is NULL (unknown). Exact inputs: comparator NULL.
Units: the formula's units (U/L, mg/dL, 10^9/L, CRP in mg/dL) are reached from each analyte's
  canonical unit by the factors $easix_unit__* that transforms/easix_units.py computes with the
  units module (transforms.units.UnitConverter): CRP's canonical unit is mg/L, so its factor is
  1/10, never a bare literal. cartwatch/build.py adds them to every build's parameters.
Parameters: $easix__enabled (0 leaves the scores empty), $easix_unit__ldh,
  $easix_unit__creatinine, $easix_unit__platelets, $easix_unit__crp, $rules_version
Upstream tables: derived.timeline; derived.lowest_possible, derived.highest_possible,
  derived.bounded_side (macros)
*/
CREATE OR REPLACE TABLE derived.easix_daily AS
WITH day_values AS (
    SELECT
        patient_id,
        infusion_id,
        day,
        -- worst of the day (see header)
        max(value) FILTER (WHERE analyte = 'ldh') AS ldh,
        arg_max(observed_at, value) FILTER (WHERE analyte = 'ldh') AS ldh_at,
        arg_max(struct_pack(value, comparator), value) FILTER (WHERE analyte = 'ldh') AS ldh_result,
        max(value) FILTER (WHERE analyte = 'creatinine') AS creatinine,
        arg_max(observed_at, value) FILTER (WHERE analyte = 'creatinine') AS creatinine_at,
        arg_max(struct_pack(value, comparator), value) FILTER (WHERE analyte = 'creatinine') AS creatinine_result,
        min(value) FILTER (WHERE analyte = 'platelets') AS platelets,
        arg_min(observed_at, value) FILTER (WHERE analyte = 'platelets') AS platelets_at,
        arg_min(struct_pack(value, comparator), value) FILTER (WHERE analyte = 'platelets') AS platelets_result,
        max(value) FILTER (WHERE analyte = 'crp') AS crp,
        arg_max(observed_at, value) FILTER (WHERE analyte = 'crp') AS crp_at,
        arg_max(struct_pack(value, comparator), value) FILTER (WHERE analyte = 'crp') AS crp_result
    FROM derived.timeline
    WHERE analyte IN ('ldh', 'creatinine', 'platelets', 'crp')
      AND value IS NOT NULL
    GROUP BY ALL
),

bounded AS (
    -- which side each score is bounded from: every input that raises the score proven at least
    -- its value (lowest_possible) and platelets at most theirs gives a lower bound; the mirror an
    -- upper bound; a censored input is the only way a score is not exact
    SELECT
        *,
        coalesce(ldh_result.comparator, creatinine_result.comparator, platelets_result.comparator)
            IS NOT NULL AS easix_censored,
        coalesce(ldh_result.comparator, crp_result.comparator, platelets_result.comparator)
            IS NOT NULL AS m_easix_censored,
        derived.lowest_possible(ldh_result.value, ldh_result.comparator) IS NOT NULL
        AND derived.highest_possible(platelets_result.value, platelets_result.comparator) IS NOT NULL
            AS ldh_platelets_floor,
        derived.highest_possible(ldh_result.value, ldh_result.comparator) IS NOT NULL
        AND derived.lowest_possible(platelets_result.value, platelets_result.comparator) IS NOT NULL
            AS ldh_platelets_ceiling
    FROM day_values
),

sides AS (
    SELECT
        *,
        derived.bounded_side(
            easix_censored,
            ldh_platelets_floor
            AND derived.lowest_possible(creatinine_result.value, creatinine_result.comparator) IS NOT NULL,
            ldh_platelets_ceiling
            AND derived.highest_possible(creatinine_result.value, creatinine_result.comparator) IS NOT NULL
        ) AS easix_side,
        derived.bounded_side(
            m_easix_censored,
            ldh_platelets_floor AND derived.lowest_possible(crp_result.value, crp_result.comparator) IS NOT NULL,
            ldh_platelets_ceiling AND derived.highest_possible(crp_result.value, crp_result.comparator) IS NOT NULL
        ) AS m_easix_side
    FROM bounded
),

formula_units AS (
    SELECT
        *,
        ldh * $easix_unit__ldh AS ldh_u_l,
        creatinine * $easix_unit__creatinine AS creatinine_mg_dl,
        platelets * $easix_unit__platelets AS platelets_10e9_l,
        crp * $easix_unit__crp AS crp_mg_dl
    FROM sides
)

SELECT
    -- ids
    patient_id,
    infusion_id,
    day,
    -- values in the formula's units
    ldh_u_l,
    creatinine_mg_dl,
    platelets_10e9_l,
    crp_mg_dl,
    -- Luft 2017: EASIX = LDH x creatinine / platelets (no score when platelets are 0)
    -- (a bound when censored inputs bound it from one side, NULL when from both: see header)
    CASE WHEN $easix__enabled::BOOLEAN AND coalesce(easix_side, 'exact') <> 'unknown'
        THEN ldh_u_l * creatinine_mg_dl / nullif(platelets_10e9_l, 0) END AS easix,
    CASE WHEN easix_side <> 'unknown' THEN easix_side END AS easix_comparator,
    -- Pennisi 2021: m-EASIX = LDH x CRP (mg/dL) / platelets
    CASE WHEN $easix__enabled::BOOLEAN AND coalesce(m_easix_side, 'exact') <> 'unknown'
        THEN ldh_u_l * crp_mg_dl / nullif(platelets_10e9_l, 0) END AS m_easix,
    CASE WHEN m_easix_side <> 'unknown' THEN m_easix_side END AS m_easix_comparator,
    -- timestamps
    ldh_at,
    creatinine_at,
    platelets_at,
    crp_at,
    $rules_version AS rules_version
FROM formula_units;
