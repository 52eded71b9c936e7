/*
Title: placed_on_infusion
Description: Table macro that places each row of a relation (labs, vitals or events known as of
  the build) on its patient's infusion episode: the latest infusion at or before it; rows before
  the patient's first infusion sit on that first episode, at negative days. Adds infusion_id and
  day (day post-infusion in the episode's site time zone); patients without an infusion drop out.
Grain: one row per input row of a patient with an infusion.
Source criterion: clinical-rules.md §1 (an event belongs to the latest infusion at or before it; day
  post-infusion = calendar day in the site zone minus the infusion's calendar day).
  Each episode runs from its infusion to the next one (derived.infusion_episodes.episode_end), so
  placing a row is a hash join on the patient with a range test: the rows stream through, where an
  as-of join would materialize every column of every row (twice as slow on vitals).
Parameters: none. Macro arguments: rows_table (name of a relation with patient_id and
  observed_at), read through query_table() so one placement serves every feed.
Upstream tables: the relation named by rows_table, derived.infusion_episodes
*/
CREATE OR REPLACE MACRO derived.placed_on_infusion(rows_table) AS TABLE
SELECT
    r.*,
    i.infusion_id,
    day_post_infusion(i.site_tz, r.observed_at, i.infused_at) AS day
FROM query_table(rows_table) AS r
INNER JOIN derived.infusion_episodes AS i
    ON r.patient_id = i.patient_id
    AND (
        -- clinical-rules.md §1: a row belongs to the latest infusion at or before it
        (r.observed_at >= i.infused_at AND (i.episode_end IS NULL OR r.observed_at < i.episode_end))
        -- rows before the first infusion sit on the first episode
        OR (i.infusion_seq = 1 AND r.observed_at < i.infused_at)
    );
