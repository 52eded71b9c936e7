/*
Title: easix_daily
Description: EASIX and modified EASIX per day post-infusion, from that day's LDH, creatinine,
  platelets and CRP.
Grain: one row per patient, infusion and day post-infusion with at least one LDH, creatinine,
  platelet or CRP result (a score is NULL when one of its values is missing that day).
Source criterion: Luft T et al., Lancet Haematol 2017;4:e414 (EASIX = LDH [U/L] x creatinine
  [mg/dL] / platelets [10^9/L]); Pennisi M et al., Blood Adv 2021 (m-EASIX: CRP [mg/dL] in place
  of creatinine); CLINICAL_RULES 4 (EASIX, per day).
Which value of the day: the worst one (highest LDH, creatinine and CRP, lowest platelets).
  EASIX was validated on one draw per time point; most days have one morning draw, so the choice
  rarely matters, and when a day has several the worst keeps the daily score conservative for
  monitoring (it never hides a bad draw behind a better one) and matches the "day's worst values"
  of the daily flags (CONTRACT 3). The time of each value is kept.
Units: the formula's units (U/L, mg/dL, 10^9/L, CRP in mg/dL) are reached from each analyte's
  canonical unit by the factors $easix_unit__* that transforms/easix_units.py computes with the
  units module (transforms.units.UnitConverter): CRP's canonical unit is mg/L, so its factor is
  1/10, never a bare literal. cartwatch/build.py adds them to every build's parameters.
Parameters: $easix__enabled (0 leaves the scores empty), $easix_unit__ldh,
  $easix_unit__creatinine, $easix_unit__platelets, $easix_unit__crp, $rules_version
Upstream tables: derived.timeline
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
        max(value) FILTER (WHERE analyte = 'creatinine') AS creatinine,
        arg_max(observed_at, value) FILTER (WHERE analyte = 'creatinine') AS creatinine_at,
        min(value) FILTER (WHERE analyte = 'platelets') AS platelets,
        arg_min(observed_at, value) FILTER (WHERE analyte = 'platelets') AS platelets_at,
        max(value) FILTER (WHERE analyte = 'crp') AS crp,
        arg_max(observed_at, value) FILTER (WHERE analyte = 'crp') AS crp_at
    FROM derived.timeline
    WHERE analyte IN ('ldh', 'creatinine', 'platelets', 'crp')
      AND value IS NOT NULL
    GROUP BY ALL
),

formula_units AS (
    SELECT
        *,
        ldh * $easix_unit__ldh AS ldh_u_l,
        creatinine * $easix_unit__creatinine AS creatinine_mg_dl,
        platelets * $easix_unit__platelets AS platelets_10e9_l,
        crp * $easix_unit__crp AS crp_mg_dl
    FROM day_values
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
    CASE WHEN $easix__enabled::BOOLEAN
        THEN ldh_u_l * creatinine_mg_dl / nullif(platelets_10e9_l, 0) END AS easix,
    -- Pennisi 2021: m-EASIX = LDH x CRP (mg/dL) / platelets
    CASE WHEN $easix__enabled::BOOLEAN
        THEN ldh_u_l * crp_mg_dl / nullif(platelets_10e9_l, 0) END AS m_easix,
    -- timestamps
    ldh_at,
    creatinine_at,
    platelets_at,
    crp_at,
    $rules_version AS rules_version
FROM formula_units;
