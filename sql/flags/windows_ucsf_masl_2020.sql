/*
Title: windows_ucsf_masl_2020
Description: UCSF MAS-L criteria (Kennedy 2020): a ferritin rise of at least the rate threshold
  within the rise window, with low fibrinogen or high LDH collected near it; windows of
  consecutive days on which the criteria held, with the results that made the onset.
Grain: one row per patient, infusion and run of consecutive days post-infusion on which the
  criteria held at some moment (`status` = 'met').
Source criterion: Kennedy VE et al., UCSF MAS-L criteria, ASH 2020 (Blood 136 Suppl 1);
  CLINICAL_RULES 4.
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
  - Censored (CLINICAL_RULES 1): a companion counts when proven; a rise when its least
    possible rate meets the threshold.
  - late_onset: onset day >= $iec_hs__late_onset_day (as for IEC-HS, CLINICAL_RULES 3).
Parameters: $ucsf__rise_ng_ml_per_hour, $ucsf__rise_window_hours, $ucsf__fibrinogen_lt_mg_dl,
  $ucsf__ldh_x_uln, $ucsf__companion_window_hours, $iec_hs__late_onset_day, $as_of, $rules_version
Upstream tables: derived.ferritin_rises, derived.timeline, derived.infusion_episodes,
  derived.day_start_at, derived.censored_compare, derived.*_possible and flags.evidence_item
  (macros), derived.crs_episodes (read through the table macros
  flags.met_day_windows and flags.criteria_set_windows, sql/macros/)
*/
CREATE OR REPLACE TABLE flags.windows_ucsf_masl_2020 AS
WITH float_guard AS (
    -- decimals kept before comparing a value with a bound (not a clinical number)
    SELECT 9 AS decimals
),

results AS (
    SELECT
        t.*,
        round(t.value, g.decimals) AS value_r,
        round(t.x_uln, g.decimals) AS x_uln_r,
        flags.evidence_item(
            NULL::VARCHAR, t.analyte, t.value, t.comparator, t.unit, t.observed_at, t.source
        ) AS shown
    FROM derived.timeline AS t
    CROSS JOIN float_guard AS g
    WHERE t.value IS NOT NULL
),

rises AS (
    -- Kennedy 2020: ferritin rise >= 100 ng/mL per hour within 24 h
    SELECT
        r.patient_id,
        r.infusion_id,
        r.observed_at AS rise_at,
        [
            flags.evidence_item(
                'ucsf.rise_ng_ml_per_hour', 'ferritin', r.earlier_value, r.earlier_comparator,
                r.earlier_unit, r.earlier_at, r.earlier_source
            ),
            flags.evidence_item(
                'ucsf.rise_ng_ml_per_hour', 'ferritin', r.value, r.comparator, r.unit, r.observed_at, r.source
            )
        ] AS evidence
    FROM derived.ferritin_rises AS r
    CROSS JOIN float_guard AS g
    WHERE epoch(r.observed_at - r.earlier_at) / epoch(INTERVAL 1 HOUR) <= $ucsf__rise_window_hours
      AND round(
          (derived.lowest_possible(r.value, r.comparator)
              - derived.highest_possible(r.earlier_value, r.earlier_comparator))
          / (epoch(r.observed_at - r.earlier_at) / epoch(INTERVAL 1 HOUR)),
          g.decimals
      ) >= $ucsf__rise_ng_ml_per_hour
),

companions AS (
    -- Kennedy 2020: fibrinogen < 150 mg/dL
    SELECT
        patient_id,
        observed_at AS companion_at,
        struct_update(shown, rule := 'ucsf.fibrinogen_lt_mg_dl') AS evidence
    FROM results
    WHERE analyte = 'fibrinogen' AND derived.censored_compare(value_r, comparator, '<', $ucsf__fibrinogen_lt_mg_dl)

    UNION ALL

    -- Kennedy 2020: LDH > 2 x ULN
    SELECT
        patient_id,
        observed_at AS companion_at,
        struct_update(shown, rule := 'ucsf.ldh_x_uln') AS evidence
    FROM results
    WHERE analyte = 'ldh' AND derived.censored_compare(x_uln_r, comparator, '>', $ucsf__ldh_x_uln)
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
    -- late_onset as for IEC-HS (CLINICAL_RULES 3)
    late_onset_day := $iec_hs__late_onset_day,
    rules_version := $rules_version
);
