/*
Title: windows_hscore
Description: HScore (reactive hemophagocytic syndrome) side by side with IEC-HS: windows of
  consecutive days post-infusion on which the score's minimum reached the cut-off (`met`, the
  CONTRACT status of a yes/no set). Days on which only the maximum reaches it (items the data
  cannot show) are not windows: flags.daily carries hscore_min and hscore_max for them, so the
  digest is not flooded with windows that sparse data cannot rule out.
Grain: one row per patient, infusion and run of consecutive `met` days.
Source criterion: Fardet L et al., Arthritis Rheumatol 2014;66:2613; CLINICAL_RULES 4. Scored per
  day in derived.hscore_daily (transforms/hscore.py) from the day's worst values and the findings
  documented by the end of the day, every band and point from the rules file's `hscore` block and
  the cut-off $hscore__cutoff (read by that step, not by this file). An unknown item adds its
  lowest points to the minimum and its highest to the maximum: a range, never a silent zero.
  - Onset: the first moment of the run's first day at which the minimum reached the cut-off.
  - End: the end of the run's last day (NULL while that day has not ended at $as_of).
  - Evidence: the onset day's items (value, or `unknown`), then `hscore_min` and `hscore_max`.
  - late_onset: onset day >= $iec_hs__late_onset_day (as for IEC-HS, CLINICAL_RULES 3).
Parameters: $as_of, $iec_hs__late_onset_day, $rules_version
Upstream tables: derived.hscore_daily, derived.crs_episodes
*/
CREATE OR REPLACE TABLE flags.windows_hscore AS
WITH status_days AS (
    -- Fardet 2014: score >= cut-off; met on the minimum (the maximum alone is not a window)
    SELECT
        patient_id,
        infusion_id,
        day,
        status,
        status_at AS held_at,
        day_end_at,
        evidence,
        day - row_number() OVER (PARTITION BY patient_id, infusion_id, status ORDER BY day) AS run
    FROM derived.hscore_daily
    WHERE status = 'met'
),

windows AS (
    -- consecutive days of one status form one window
    SELECT
        patient_id,
        infusion_id,
        status,
        min(day) AS onset_day,
        max(day) AS end_day,
        arg_min(held_at, day) AS onset_at,
        arg_max(day_end_at, day) AS last_day_end_at,
        arg_min(evidence, day) AS evidence
    FROM status_days
    GROUP BY patient_id, infusion_id, status, run
)

SELECT
    -- ids
    w.patient_id,
    w.infusion_id,
    'hscore' AS criteria_set,
    w.status,
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
