/*
Title: episode_days
Description: The calendar days post-infusion of each infusion episode, with the site-zone
  midnights that bound them: the one place day boundaries are computed (the CRS course, the
  criteria sets' day grid, the daily flags and the UCSF MAS-L day ends read them from here).
Grain: one row per patient, infusion and calendar day post-infusion, from day 0 to the last day
  with any data (a lab result, a vital sign or a documented event) as of $as_of; day 0 alone when
  the episode has no data after its infusion.
Source criterion: clinical-rules.md §1 (Day post-infusion: calendar days in the site time zone, so a
  day across a DST change is 23 or 25 hours long).
  - day_start_at, day_end_at: 00:00 of the day and of the next day, site time, as UTC instants.
  - has_data: the day has a lab result, a vital sign or an event of the episode (the days the
    daily flags and the criteria sets report; the CRS course also grades the days between).
Parameters: $rules_version
Upstream tables: derived.infusion_episodes, derived.timeline, derived.vitals_timeline,
  derived.events_timeline, derived.day_start_at (macro)
*/
CREATE OR REPLACE TABLE derived.episode_days AS
WITH data_days AS (
    SELECT DISTINCT
        patient_id,
        infusion_id,
        day
    FROM (
        SELECT
            patient_id,
            infusion_id,
            day
        FROM derived.timeline
        UNION ALL
        SELECT
            patient_id,
            infusion_id,
            day
        FROM derived.vitals_timeline
        UNION ALL
        SELECT
            patient_id,
            infusion_id,
            day
        FROM derived.events_timeline
    ) AS all_days
),

last_days AS (
    SELECT
        patient_id,
        infusion_id,
        max(day) AS last_day
    FROM data_days
    GROUP BY ALL
),

days AS (
    -- clinical-rules.md §1: day 0 is the infusion's calendar day; days before it are not monitored
    SELECT
        i.patient_id,
        i.infusion_id,
        i.site_tz,
        i.infused_at,
        unnest(range(0, greatest(coalesce(l.last_day, 0), 0) + 1))::INTEGER AS day
    FROM derived.infusion_episodes AS i
    LEFT JOIN last_days AS l
        ON i.patient_id = l.patient_id AND i.infusion_id = l.infusion_id
)

SELECT
    -- ids
    d.patient_id,
    d.infusion_id,
    d.day,
    -- clinical-rules.md §1: site-zone midnights
    derived.day_start_at(d.site_tz, d.infused_at, d.day) AS day_start_at,
    derived.day_start_at(d.site_tz, d.infused_at, d.day + 1) AS day_end_at,
    dd.day IS NOT NULL AS has_data,
    $rules_version AS rules_version
FROM days AS d
LEFT JOIN data_days AS dd
    ON d.patient_id = dd.patient_id AND d.infusion_id = dd.infusion_id AND d.day = dd.day
ORDER BY d.patient_id, d.infusion_id, d.day;
