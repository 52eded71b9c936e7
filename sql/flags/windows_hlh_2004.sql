/*
Title: windows_hlh_2004
Description: HLH-2004 diagnostic criteria (5 of 8) side by side with IEC-HS: windows of
  consecutive days post-infusion on which at least five criteria were met, with the met and
  evaluable counts and the results that made the onset.
Grain: one row per patient, infusion and run of consecutive met days (`status` = 'met').
Source criterion: Henter JI et al., HLH-2004 diagnostic guidelines, Pediatr Blood Cancer
  2007;48:124; clinical-rules.md §4. Evaluated per day in derived.hlh_criteria_daily
  (transforms/criteria_hlh.py) from the day's worst values and the findings documented by the end
  of the day (contract.md §5): fever >= $hlh_2004__fever_c; splenomegaly; cytopenias in >=
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
  - late_onset: onset day >= $iec_hs__late_onset_day (as for IEC-HS, clinical-rules.md §3).
Parameters: $as_of, $iec_hs__late_onset_day, $rules_version
Upstream tables: derived.hlh_criteria_daily, derived.crs_episodes (read through the table macros
  flags.met_day_windows and flags.criteria_set_windows, sql/macros/)
*/
CREATE OR REPLACE TABLE flags.windows_hlh_2004 AS
-- met_days is read through query_table(), which sqlfluff's ST03 does not see
WITH met_days AS ( -- noqa: ST03
    -- HLH-2004: 5 of the 8 criteria met on the day
    SELECT
        patient_id,
        infusion_id,
        'met' AS status,
        day,
        hlh_2004_met_at AS held_at,
        day_end_at,
        hlh_2004_evidence AS evidence
    FROM derived.hlh_criteria_daily
    WHERE hlh_2004_met
)

SELECT *
FROM flags.met_day_windows(
    set_name := 'hlh_2004',
    met_days_table := 'met_days',
    as_of := $as_of,
    -- late_onset as for IEC-HS (clinical-rules.md §3)
    late_onset_day := $iec_hs__late_onset_day,
    rules_version := $rules_version
);
