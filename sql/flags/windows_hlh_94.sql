/*
Title: windows_hlh_94
Description: HLH-94 diagnostic criteria (all five), historical, for comparison with older cohorts:
  windows of consecutive days post-infusion on which all five were met, with the results that
  made the onset.
Grain: one row per patient, infusion and run of consecutive met days (`status` = 'met').
Source criterion: Henter JI et al., HLH-94 diagnostic criteria (Semin Oncol 1991; HLH-94
  protocol, 1997); clinical-rules.md §4. Evaluated per day in derived.hlh_criteria_daily
  (transforms/criteria_hlh.py) from the day's worst values and the findings documented by the end
  of the day, like HLH-2004: fever >= $hlh_94__fever_c; splenomegaly; cytopenias in >=
  $hlh_94__cytopenia_lineages_required lineages; hypertriglyceridemia and/or hypofibrinogenemia;
  hemophagocytosis. HLH-94 gives no numbers for the lineages, triglycerides and fibrinogen: the
  HLH-2004 thresholds ($hlh_2004__*) are used. Those parameters are read by that step, not by
  this file.
  - Onset: the first moment of the run's first day at which all five held.
  - End: the end of the run's last day (NULL while that day has not ended at $as_of).
  - Evidence: the onset day's five items, then `criteria_met` and `criteria_evaluable` (counts).
  - late_onset: onset day >= $iec_hs__late_onset_day (as for IEC-HS, clinical-rules.md §3).
Parameters: $as_of, $iec_hs__late_onset_day, $rules_version
Upstream tables: derived.hlh_criteria_daily, derived.crs_episodes (read through the table macros
  flags.met_day_windows and flags.criteria_set_windows, sql/macros/)
*/
CREATE OR REPLACE TABLE flags.windows_hlh_94 AS
-- met_days is read through query_table(), which sqlfluff's ST03 does not see
WITH met_days AS ( -- noqa: ST03
    -- HLH-94: all five criteria met on the day
    SELECT
        patient_id,
        infusion_id,
        'met' AS status,
        day,
        hlh_94_met_at AS held_at,
        day_end_at,
        hlh_94_evidence AS evidence
    FROM derived.hlh_criteria_daily
    WHERE hlh_94_met
)

SELECT *
FROM flags.met_day_windows(
    set_name := 'hlh_94',
    met_days_table := 'met_days',
    as_of := $as_of,
    -- late_onset as for IEC-HS (clinical-rules.md §3)
    late_onset_day := $iec_hs__late_onset_day,
    rules_version := $rules_version
);
