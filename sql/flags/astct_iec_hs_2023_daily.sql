/*
Title: astct_iec_hs_2023_daily
Description: The ASTCT 2023 IEC-HS status of each day post-infusion, for the daily flags export:
  the highest status reached that day, where a day inside an onset window carries the window's
  status reached so far (an open window runs to the infusion's last day with any data).
Grain: one row per patient, infusion and calendar day post-infusion with a status.
Source criterion: ASTCT consensus on IEC-HS (Hines et al., Transplant Cell Ther 2023) as
  operationalized in clinical-rules.md §3 (statuses watch < suspected < criteria_met; onset window).
Parameters: $rules_version
Upstream tables: flags.astct_iec_hs_2023_points, flags.windows_astct_iec_hs_2023, derived.crs_daily
*/
CREATE OR REPLACE TABLE flags.astct_iec_hs_2023_daily AS
WITH ranked_points AS (
    SELECT
        patient_id,
        infusion_id,
        day,
        window_onset_at,
        CASE status WHEN 'watch' THEN 1 WHEN 'suspected' THEN 2 WHEN 'criteria_met' THEN 3 END AS status_rank
    FROM flags.astct_iec_hs_2023_points
    WHERE status IS NOT NULL
),

last_days AS (
    SELECT
        patient_id,
        infusion_id,
        max(day) AS last_day
    FROM derived.crs_daily
    GROUP BY ALL
),

window_days AS (
    -- clinical-rules.md §3: a window holds from its onset until it closes (or is still open)
    SELECT
        w.patient_id,
        w.infusion_id,
        w.onset_at,
        unnest(range(w.onset_day, coalesce(w.end_day, greatest(d.last_day, w.onset_day)) + 1)) AS day
    FROM flags.windows_astct_iec_hs_2023 AS w
    INNER JOIN last_days AS d
        ON w.patient_id = d.patient_id AND w.infusion_id = d.infusion_id
),

window_status AS (
    -- the window's status reached by the end of each of its days
    SELECT
        d.patient_id,
        d.infusion_id,
        d.day,
        max(p.status_rank) AS status_rank
    FROM window_days AS d
    INNER JOIN ranked_points AS p
        ON d.patient_id = p.patient_id AND d.infusion_id = p.infusion_id
        AND d.onset_at = p.window_onset_at AND p.day <= d.day
    GROUP BY ALL
),

per_day AS (
    SELECT
        patient_id,
        infusion_id,
        day,
        max(status_rank) AS status_rank
    FROM (
        SELECT
            patient_id,
            infusion_id,
            day,
            status_rank
        FROM ranked_points
        UNION ALL
        SELECT
            patient_id,
            infusion_id,
            day,
            status_rank
        FROM window_status
    ) AS both_sources
    GROUP BY ALL
)

SELECT
    -- ids
    patient_id,
    infusion_id,
    day::INTEGER AS day,
    -- values
    CASE status_rank WHEN 1 THEN 'watch' WHEN 2 THEN 'suspected' WHEN 3 THEN 'criteria_met' END AS status,
    $rules_version AS rules_version
FROM per_day
ORDER BY patient_id, infusion_id, day;
