/*
Title: ucsf_masl_items
Description: Table macro for the two results UCSF MAS-L pairs: every ferritin rise at or above the
  rate threshold within the rise window, and every companion result (low fibrinogen, high LDH).
  Read by flags.windows_ucsf_masl_2020 (which pairs them into windows) and by `cartwatch explain`
  (which says which of them the patient had), so each is judged in one place.
Grain: one row per qualifying rise (item `rise`: the later ferritin, evidence = the earlier and the
  later result) and per companion result (item `companion`: evidence = that result).
Source criterion: Kennedy VE et al., UCSF MAS-L criteria, ASH 2020 (Blood 136 Suppl 1);
  clinical-rules.md §4.
  - Rise: a ferritin at or after the infusion against any earlier ferritin of the patient with
    0 < gap <= `rise_window_hours` hours, rate = (value - earlier) / gap in hours, at or above
    `rise_ng_ml_per_hour` (exactly the threshold is met). The pairs come from
    derived.ferritin_rises (paired once per build, for this rule and the IEC-HS rapid rise).
  - Companion: fibrinogen strictly below `fibrinogen_lt_mg_dl`, or LDH strictly above `ldh_x_uln`
    x ULN.
  - Rates, values and multiples are rounded to float_guard.decimals before comparison.
  - Censored (clinical-rules.md §1): a companion counts when proven; a rise when its least possible
    rate meets the threshold.
  Why a table macro with a relation name: DDL cannot hold prepared parameters, so the rule values
  arrive as macro arguments from the calling file (which reads them as `$ucsf__...`); the
  patients evaluated are a relation the caller names (`patients_table`: every infused patient for
  the windows, one patient for `cartwatch explain`), read through query_table().
Parameters: none read from the rules file. Macro arguments: patients_table (name of a relation
  with patient_id), rise_ng_ml_per_hour
  ($ucsf__rise_ng_ml_per_hour), rise_window_hours ($ucsf__rise_window_hours), fibrinogen_lt_mg_dl
  ($ucsf__fibrinogen_lt_mg_dl), ldh_x_uln ($ucsf__ldh_x_uln).
Upstream tables: the relation named by patients_table, derived.ferritin_rises, derived.timeline;
  derived.censored_compare, derived.*_possible and flags.evidence_item (macros)
*/
CREATE OR REPLACE MACRO flags.ucsf_masl_items(
    patients_table, rise_ng_ml_per_hour, rise_window_hours, fibrinogen_lt_mg_dl, ldh_x_uln
) AS TABLE
-- the patients first: a macro reading a relation named by an argument is bound when called, so the
-- tables it reads need not exist when the macro is created (at the start of a first build)
WITH patients AS (
    SELECT DISTINCT patient_id
    FROM query_table(patients_table)
),

float_guard AS (
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
    FROM patients AS p
    INNER JOIN derived.timeline AS t ON p.patient_id = t.patient_id
    CROSS JOIN float_guard AS g
    -- only the companions are read from here (the rises come from derived.ferritin_rises)
    WHERE t.value IS NOT NULL AND t.analyte IN ('fibrinogen', 'ldh')
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
    FROM patients AS p
    INNER JOIN derived.ferritin_rises AS r ON p.patient_id = r.patient_id
    CROSS JOIN float_guard AS g
    WHERE epoch(r.observed_at - r.earlier_at) / epoch(INTERVAL 1 HOUR) <= rise_window_hours
      AND round(
          (derived.lowest_possible(r.value, r.comparator)
              - derived.highest_possible(r.earlier_value, r.earlier_comparator))
          / (epoch(r.observed_at - r.earlier_at) / epoch(INTERVAL 1 HOUR)),
          g.decimals
      ) >= rise_ng_ml_per_hour
),

companions AS (
    -- Kennedy 2020: fibrinogen < 150 mg/dL
    SELECT
        patient_id,
        infusion_id,
        observed_at AS companion_at,
        struct_update(shown, rule := 'ucsf.fibrinogen_lt_mg_dl') AS evidence
    FROM results
    WHERE analyte = 'fibrinogen' AND derived.censored_compare(value_r, comparator, '<', fibrinogen_lt_mg_dl)

    UNION ALL

    -- Kennedy 2020: LDH > 2 x ULN
    SELECT
        patient_id,
        infusion_id,
        observed_at AS companion_at,
        struct_update(shown, rule := 'ucsf.ldh_x_uln') AS evidence
    FROM results
    WHERE analyte = 'ldh' AND derived.censored_compare(x_uln_r, comparator, '>', ldh_x_uln)
)

SELECT
    patient_id,
    infusion_id,
    'rise' AS item,
    rise_at AS held_at,
    evidence
FROM rises
UNION ALL
SELECT
    patient_id,
    infusion_id,
    'companion' AS item,
    companion_at AS held_at,
    [evidence] AS evidence
FROM companions;
