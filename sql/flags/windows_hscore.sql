/*
Title: windows_hscore
Description: HScore (reactive hemophagocytic syndrome) side by side with IEC-HS: windows of
  consecutive days post-infusion on which the score's minimum reached the cut-off (`met`, the
  CONTRACT status of a yes/no set). Days on which only the maximum reaches it (items the data
  cannot show) are not windows: flags.daily carries hscore_min and hscore_max for them, so the
  digest is not flooded with windows that sparse data cannot rule out.
Grain: one row per patient, infusion and run of consecutive `met` days.
Source criterion: Fardet L et al., Arthritis Rheumatol 2014;66:2613; clinical-rules.md §4. Scored per
  day in derived.hscore_daily (transforms/hscore.py) from the day's worst values and the findings
  documented by the end of the day, every band and point from the rules file's `hscore` block and
  the cut-off $hscore__cutoff (read by that step, not by this file). An unknown item adds its
  lowest points to the minimum and its highest to the maximum: a range, never a silent zero.
  - Onset: the first moment of the run's first day at which the minimum reached the cut-off.
  - End: the end of the run's last day (NULL while that day has not ended at $as_of).
  - Evidence: the onset day's items (value, or `unknown`), then `hscore_min` and `hscore_max`.
  - late_onset: onset day >= $iec_hs__late_onset_day (as for IEC-HS, clinical-rules.md §3).
Parameters: $as_of, $iec_hs__late_onset_day, $rules_version
Upstream tables: derived.hscore_daily, derived.crs_episodes (read through the table macros
  flags.met_day_windows and flags.criteria_set_windows, sql/macros/)
*/
CREATE OR REPLACE TABLE flags.windows_hscore AS
-- met_days is read through query_table(), which sqlfluff's ST03 does not see
WITH met_days AS ( -- noqa: ST03
    -- Fardet 2014: score >= cut-off; met on the minimum (the maximum alone is not a window)
    SELECT
        patient_id,
        infusion_id,
        status,
        day,
        status_at AS held_at,
        day_end_at,
        evidence
    FROM derived.hscore_daily
    WHERE status = 'met'
)

SELECT *
FROM flags.met_day_windows(
    set_name := 'hscore',
    met_days_table := 'met_days',
    as_of := $as_of,
    -- late_onset as for IEC-HS (clinical-rules.md §3)
    late_onset_day := $iec_hs__late_onset_day,
    rules_version := $rules_version
);
