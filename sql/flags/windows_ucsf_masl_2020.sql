/*
Title: windows_ucsf_masl_2020
Description: UCSF MAS-L criteria (Kennedy 2020): a ferritin rise of at least the rate threshold
  within the rise window, with low fibrinogen or high LDH collected near it; windows of
  consecutive days on which the criteria held, with the results that made the onset.
Grain: one row per patient, infusion and run of consecutive days post-infusion on which the
  criteria held at some moment (`status` = 'met').
Source criterion: Kennedy VE et al., UCSF MAS-L criteria, ASH 2020 (Blood 136 Suppl 1);
  clinical-rules.md §4.
  - Rise: a ferritin at or after the infusion against any earlier ferritin of the patient with
    0 < gap <= $ucsf__rise_window_hours hours, rate = (value - earlier) / gap in hours, at or
    above $ucsf__rise_ng_ml_per_hour (exactly 100 ng/mL/h is met). The pairs come from
    derived.ferritin_rises (paired once per build, for this rule and the IEC-HS rapid rise).
  - Companion: fibrinogen strictly below $ucsf__fibrinogen_lt_mg_dl, or LDH strictly above
    $ucsf__ldh_x_uln x ULN, collected within $ucsf__companion_window_hours hours (inclusive,
    either side) of the rise's later ferritin.
  - The criteria hold at the later of the two results (what was known then). A day is met when
    such a moment falls on it; a run of consecutive met days is one window: onset = its first
    moment, end = the end of its last day (NULL while that day has not ended at $as_of).
  - Rates, values and multiples are rounded to float_guard.decimals before comparison.
  - Censored (clinical-rules.md §1): a companion counts when proven; a rise when its least
    possible rate meets the threshold.
  - late_onset: onset day >= $iec_hs__late_onset_day (as for IEC-HS, clinical-rules.md §3).
Parameters: $ucsf__rise_ng_ml_per_hour, $ucsf__rise_window_hours, $ucsf__fibrinogen_lt_mg_dl,
  $ucsf__ldh_x_uln, $ucsf__companion_window_hours, $iec_hs__late_onset_day, $as_of, $rules_version
Upstream tables: flags.ucsf_masl_items (derived.ferritin_rises, derived.timeline; the rise and
  companion rules above are applied there), derived.infusion_episodes, derived.day_start_at
  (macro), derived.crs_episodes (read through the table macros
  flags.met_day_windows and flags.criteria_set_windows, sql/macros/)
*/
CREATE OR REPLACE TABLE flags.windows_ucsf_masl_2020 AS
WITH held AS (
    -- the qualifying rises and companion results (flags.ucsf_masl_items)
    SELECT *
    FROM flags.ucsf_masl_items(
        -- every infused patient (a rise is on an infusion; a companion pairs only with a rise)
        patients_table := 'derived.infusion_episodes',
        rise_ng_ml_per_hour := $ucsf__rise_ng_ml_per_hour,
        rise_window_hours := $ucsf__rise_window_hours,
        fibrinogen_lt_mg_dl := $ucsf__fibrinogen_lt_mg_dl,
        ldh_x_uln := $ucsf__ldh_x_uln
    )
),

rises AS (
    SELECT
        patient_id,
        infusion_id,
        held_at AS rise_at,
        evidence
    FROM held
    WHERE item = 'rise'
),

companions AS (
    SELECT
        patient_id,
        held_at AS companion_at,
        evidence[1] AS evidence
    FROM held
    WHERE item = 'companion'
),

moments AS (
    -- both held: at the later of the rise and its companion (within the companion window)
    SELECT
        r.patient_id,
        r.infusion_id,
        greatest(r.rise_at, c.companion_at) AS held_at,
        list_append(r.evidence, c.evidence) AS evidence
    FROM rises AS r
    INNER JOIN companions AS c
        ON r.patient_id = c.patient_id
        AND abs(epoch(c.companion_at - r.rise_at)) / epoch(INTERVAL 1 HOUR)
        <= $ucsf__companion_window_hours
),

-- met_days is read through query_table(), which sqlfluff's ST03 does not see
met_days AS ( -- noqa: ST03
    -- Kennedy 2020: a day is met when such a moment falls on it; it ends at the next midnight, site time
    SELECT
        m.patient_id,
        m.infusion_id,
        'met' AS status,
        day_post_infusion(i.site_tz, m.held_at, i.infused_at)::INTEGER AS day,
        min(m.held_at) AS held_at,
        derived.day_start_at(any_value(i.site_tz), any_value(i.infused_at), day + 1) AS day_end_at,
        -- ties (fibrinogen and LDH drawn together) broken by the evidence text: one answer every run
        arg_min(m.evidence, (m.held_at, m.evidence::VARCHAR)) AS evidence
    FROM moments AS m
    INNER JOIN derived.infusion_episodes AS i
        ON m.patient_id = i.patient_id AND m.infusion_id = i.infusion_id
    GROUP BY m.patient_id, m.infusion_id, day
)

SELECT *
FROM flags.met_day_windows(
    set_name := 'ucsf_masl_2020',
    met_days_table := 'met_days',
    as_of := $as_of,
    -- late_onset as for IEC-HS (clinical-rules.md §3)
    late_onset_day := $iec_hs__late_onset_day,
    rules_version := $rules_version
);
