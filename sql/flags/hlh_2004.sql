/*
Title: windows_hlh_2004
Description: HLH-2004 diagnostic criteria (5 of 8) side by side with IEC-HS: windows of
  consecutive days post-infusion on which at least five criteria were met, with the met and
  evaluable counts and the results that made the onset.
Grain: one row per patient, infusion and run of consecutive met days (`status` = 'met').
Source criterion: Henter JI et al., HLH-2004 diagnostic guidelines, Pediatr Blood Cancer
  2007;48:124; CLINICAL_RULES 4. Evaluated per day in derived.hlh_criteria_daily
  (transforms/criteria_hlh.py) from the day's worst values and the findings documented by the end
  of the day (CONTRACT 3): fever >= $hlh_2004__fever_c; splenomegaly; cytopenias in >=
  $hlh_2004__cytopenia_lineages_required of Hb < $hlh_2004__hemoglobin_lt_g_dl, platelets <
  $hlh_2004__platelets_lt, ANC < $hlh_2004__anc_lt; triglycerides >= $hlh_2004__triglycerides_ge_mg_dl
  and/or fibrinogen <= $hlh_2004__fibrinogen_le_mg_dl; hemophagocytosis; low/absent NK activity
  (in no feed: always unknown); ferritin >= $hlh_2004__ferritin_ge; sCD25 >=
  $hlh_2004__scd25_ge_u_ml; met with $hlh_2004__criteria_required. Those parameters are read by
  that step, not by this file.
  - Onset: the first moment of the run's first day at which the required count was reached
    (the required-th earliest moment an item began to hold that day).
  - End: the end of the run's last day (NULL while that day has not ended at $as_of).
  - Evidence: the onset day's met items, then `criteria_met` and `criteria_evaluable` (counts).
  - late_onset: onset day >= $iec_hs__late_onset_day (as for IEC-HS, CLINICAL_RULES 3).
Parameters: $as_of, $iec_hs__late_onset_day, $rules_version
Upstream tables: derived.hlh_criteria_daily, derived.crs_episodes
*/
CREATE OR REPLACE TABLE flags.windows_hlh_2004 AS
WITH met_days AS (
    -- HLH-2004: 5 of the 8 criteria met on the day
    SELECT
        patient_id,
        infusion_id,
        day,
        hlh_2004_met_at AS held_at,
        day_end_at,
        hlh_2004_evidence AS evidence,
        day - row_number() OVER (PARTITION BY patient_id, infusion_id ORDER BY day) AS run
    FROM derived.hlh_criteria_daily
    WHERE hlh_2004_met
),

windows AS (
    -- consecutive met days form one window
    SELECT
        patient_id,
        infusion_id,
        min(day) AS onset_day,
        max(day) AS end_day,
        arg_min(held_at, day) AS onset_at,
        arg_max(day_end_at, day) AS last_day_end_at,
        arg_min(evidence, day) AS evidence
    FROM met_days
    GROUP BY patient_id, infusion_id, run
)

SELECT
    -- ids
    w.patient_id,
    w.infusion_id,
    'hlh_2004' AS criteria_set,
    'met' AS status,
    -- window
    w.onset_at,
    w.onset_day::INTEGER AS onset_day,
    CASE WHEN w.last_day_end_at <= $as_of THEN w.last_day_end_at END AS end_at,
    w.end_day::INTEGER AS end_day,
    c.onset_day::INTEGER AS crs_onset_day,
    c.peak_day::INTEGER AS crs_peak_day,
    c.resolved_day::INTEGER AS crs_resolved_day,
    w.onset_day >= $iec_hs__late_onset_day AS late_onset,
    -- evidence (CONTRACT 3: rule, analyte, value, unit, at (ISO 8601, UTC), source)
    to_json(w.evidence)::VARCHAR AS evidence,
    $rules_version AS rules_version
FROM windows AS w
LEFT JOIN derived.crs_episodes AS c
    ON w.patient_id = c.patient_id AND w.infusion_id = c.infusion_id;
