/*
Title: met_day_windows
Description: Table macro that turns the days post-infusion on which a criteria set was met into
  windows: each run of consecutive days of one status is one window, with its onset (the first
  moment of its first day), its end (the end of its last day) and the onset day's evidence.
Grain: one row per patient, infusion, status and run of consecutive days, with the columns of
  contract.md §5 (through flags.criteria_set_windows).
Source criterion: contract.md §5 (`export windows`: one row per onset window) and clinical-rules.md §4,
  as the day-by-day sets read it (UCSF MAS-L, HLH-94, HLH-2004, HScore): the set's own criterion
  decides which days are met, in the calling file; this macro only groups them.
  - Window: consecutive met days (day - row_number() constant within a run).
  - Onset: `held_at` of the run's first day. End: `day_end_at` of its last day, NULL while that
    moment is after `as_of` (the day has not ended).
  - Evidence: the run's first day's evidence, unchanged.
  - late_onset: onset day >= `late_onset_day` (iec_hs.late_onset_day, as for IEC-HS).
  Why a table macro with a relation name: each set builds its met days differently (a daily table
  filtered, or moments grouped by day), so the caller names a CTE of its own (`met_days_table`) that
  the macro reads through query_table(); `as_of` and the rest arrive as arguments because DDL
  cannot hold prepared parameters.
Parameters: none read from the rules file. Macro arguments: set_name (contract.md §5 criteria_set),
  met_days_table (name of a relation with patient_id, infusion_id, status, day, held_at,
  day_end_at, evidence; one row per patient, infusion, status and day), as_of, late_onset_day,
  rules_version (the calling file's $as_of, $iec_hs__late_onset_day, $rules_version).
Upstream tables: the relation named by met_days_table, derived.crs_episodes
  (flags.criteria_set_windows)
*/
CREATE OR REPLACE MACRO flags.met_day_windows(
    set_name, met_days_table, as_of, late_onset_day, rules_version
) AS TABLE
WITH runs AS (
    SELECT
        patient_id,
        infusion_id,
        status,
        day,
        held_at,
        day_end_at,
        evidence,
        day - row_number() OVER (PARTITION BY patient_id, infusion_id, status ORDER BY day) AS run
    FROM query_table(met_days_table)
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
    FROM runs
    GROUP BY patient_id, infusion_id, status, run
),

-- closed is read through query_table(), which sqlfluff's ST03 does not see
closed AS ( -- noqa: ST03
    SELECT
        patient_id,
        infusion_id,
        status,
        -- the end only once the last day has ended
        onset_at,
        onset_day,
        CASE WHEN last_day_end_at <= as_of THEN last_day_end_at END AS end_at,
        end_day,
        -- the onset day's evidence
        evidence
    FROM windows
)

SELECT *
FROM flags.criteria_set_windows(
    set_name := set_name,
    windows_table := 'closed',
    late_onset_day := late_onset_day,
    rules_version := rules_version
);
