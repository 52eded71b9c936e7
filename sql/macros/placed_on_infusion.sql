/*
Title: placed_on_infusion
Description: Table macro that places each row of a relation (labs, vitals or events known as of
  the build) on its patient's infusion episode: the latest infusion at or before it; rows before
  the patient's first infusion sit on that first episode, at negative days. Adds infusion_id and
  day (day post-infusion in the episode's site time zone); patients without an infusion drop out.
Grain: one row per input row of a patient with an infusion.
Source criterion: CLINICAL_RULES 1 (an event belongs to the latest infusion at or before it; day
  post-infusion = calendar day in the site zone minus the infusion's calendar day).
Parameters: none. Macro arguments: rows_table (name of a relation with patient_id and
  observed_at), read through query_table() so one placement serves every feed.
Upstream tables: the relation named by rows_table, derived.infusion_episodes
*/
CREATE OR REPLACE MACRO derived.placed_on_infusion(rows_table) AS TABLE
WITH assigned AS (
    -- CLINICAL_RULES 1: a row belongs to the latest infusion at or before it
    SELECT
        r.*,
        i.infusion_id AS placed_infusion_id
    FROM query_table(rows_table) AS r
    ASOF LEFT JOIN derived.infusion_episodes AS i
        ON r.patient_id = i.patient_id AND r.observed_at >= i.infused_at
)

SELECT
    a.* EXCLUDE (placed_infusion_id),
    i.infusion_id,
    day_post_infusion(i.site_tz, a.observed_at, i.infused_at) AS day
FROM assigned AS a
INNER JOIN derived.infusion_episodes AS i
    -- rows before the first infusion sit on the first episode
    ON a.patient_id = i.patient_id
    AND i.infusion_id = coalesce(
        a.placed_infusion_id,
        (SELECT f.infusion_id FROM derived.infusion_episodes AS f
         WHERE f.patient_id = a.patient_id AND f.infusion_seq = 1)
    );
