/*
Title: ferritin_peak_organ_held
Description: Table macro for the items of the criteria sets built as "a ferritin peak above a
  cut-off plus at least N of four organ items" (CARTOX and Shah 2020): each item that held in the
  set's time frame, from the first moment it held, with the result that shows it. Read by
  flags.ferritin_peak_organ_items (which makes the diagnosis from them) and by `cartwatch explain`
  (which says which items held and which did not), so the items are judged in one place.
Grain: one row per patient, infusion and item that held: `ferritin_peak`, `liver`, `kidney`, the
  lung item (`lung_item`) and `hemophagocytosis`.
Source criterion: Neelapu SS et al., Nat Rev Clin Oncol 2018;15:47 (CARTOX); Shah NN et al.,
  J Clin Oncol 2020;38:1938; clinical-rules.md §4.
  - Ferritin: the first result proven strictly above `ferritin_peak_gt` (derived.censored_compare:
    `>100000` is above 100,000, `>=100000` is not proven) from the phase's `starts_at` to its
    `ferritin_ends_at` (NULL: open), ends inclusive.
  - Items, each from the first moment it held at or after `starts_at`: liver = CTCAE grade >=
    `organ_grade_min` of AST, ALT or total bilirubin, kidney = of creatinine
    (derived.organ_toxicity_daily); `lung_item` = CRS hypoxia grade >= `organ_grade_min` in
    derived.crs_daily (the proxy for grade >= 3 lung toxicity or pulmonary edema, which no feed
    carries), from the start of that day; hemophagocytosis = a documented true
    `hemophagocytosis` event.
  - Evidence: the result (labs: the day's worst), with rule ids `<rule_prefix>.ferritin_peak_gt`,
    `.organ_grade_min` and `.hemophagocytosis`.
Parameters: none read from the rules file. Macro arguments: rule_prefix ('cartox' or 'shah'),
  phase_table (name of a relation with patient_id, infusion_id, starts_at, ferritin_ends_at),
  ferritin_peak_gt, organ_grade_min, lung_item (the lung item's name in the set).
Upstream tables: the relation named by phase_table, derived.timeline, derived.organ_toxicity_daily,
  derived.crs_daily, derived.events_timeline; derived.censored_compare; items made by flags.evidence_item
*/
CREATE OR REPLACE MACRO flags.ferritin_peak_organ_held(
    rule_prefix, phase_table, ferritin_peak_gt, organ_grade_min, lung_item
) AS TABLE
WITH float_guard AS (
    -- decimals kept before comparing a value with a bound (not a clinical number)
    SELECT 9 AS decimals
),

results AS (
    SELECT
        t.*,
        round(t.value, g.decimals) AS value_r
    FROM derived.timeline AS t
    CROSS JOIN float_guard AS g
    WHERE t.analyte = 'ferritin'   -- the organ items come from derived.organ_toxicity_daily
),

phase AS (
    SELECT
        patient_id,
        infusion_id,
        starts_at,
        ferritin_ends_at
    FROM query_table(phase_table)
),

ferritin_peak AS (
    -- CARTOX, Shah 2020: ferritin peak above the set's cut-off within its time frame
    SELECT
        p.patient_id,
        p.infusion_id,
        min(t.observed_at) AS held_at,
        arg_min(
            flags.evidence_item(
                rule_prefix || '.ferritin_peak_gt', t.analyte, t.value, t.comparator, t.unit, t.observed_at,
                t.source
            ),
            (t.observed_at, t.source)
        ) AS evidence
    FROM phase AS p
    INNER JOIN results AS t
        ON p.patient_id = t.patient_id AND p.infusion_id = t.infusion_id
    WHERE t.analyte = 'ferritin'
      AND t.observed_at >= p.starts_at
      AND (p.ferritin_ends_at IS NULL OR t.observed_at <= p.ferritin_ends_at)
      AND derived.censored_compare(t.value_r, t.comparator, '>', ferritin_peak_gt)
    GROUP BY ALL
),

items AS (
    -- CARTOX, Shah 2020: grade >= 3 liver (AST, ALT, bilirubin) or kidney (creatinine) toxicity
    SELECT
        o.patient_id,
        o.infusion_id,
        o.organ AS item,
        o.grade_at AS held_at,
        flags.evidence_item(
            rule_prefix || '.organ_grade_min', o.analyte, o.value, o.comparator, o.unit, o.observed_at,
            o.source
        ) AS evidence
    FROM derived.organ_toxicity_daily AS o
    INNER JOIN phase AS p
        ON o.patient_id = p.patient_id AND o.infusion_id = p.infusion_id
    WHERE o.grade >= organ_grade_min
      AND o.grade_at >= p.starts_at

    UNION ALL

    -- CARTOX (lung), Shah 2020 (pulmonary edema): grade >= 3, as CRS hypoxia grade >= 3 (see header)
    SELECT
        c.patient_id,
        c.infusion_id,
        lung_item AS item,
        greatest(c.day_start_at, p.starts_at) AS held_at,
        flags.evidence_item(
            rule_prefix || '.organ_grade_min', 'hypoxia_grade', c.hypoxia_grade::DOUBLE, NULL::VARCHAR,
            'ASTCT grade',
            c.day_start_at, 'derived.crs_daily'
        ) AS evidence
    FROM derived.crs_daily AS c
    INNER JOIN phase AS p
        ON c.patient_id = p.patient_id AND c.infusion_id = p.infusion_id
    WHERE c.hypoxia_grade >= organ_grade_min
      AND c.day_end_at > p.starts_at

    UNION ALL

    -- CARTOX, Shah 2020: hemophagocytosis (bone marrow or other organs)
    SELECT
        e.patient_id,
        e.infusion_id,
        'hemophagocytosis' AS item,
        e.observed_at AS held_at,
        flags.evidence_item(
            rule_prefix || '.hemophagocytosis', e.event_type, e.value_num, NULL::VARCHAR, NULL::VARCHAR,
            e.observed_at, e.source
        ) AS evidence
    FROM derived.events_timeline AS e
    INNER JOIN phase AS p
        ON e.patient_id = p.patient_id AND e.infusion_id = p.infusion_id
    WHERE e.event_type = 'hemophagocytosis'
      AND e.value_num::BOOLEAN
      AND e.observed_at >= p.starts_at
),

first_items AS (
    SELECT
        patient_id,
        infusion_id,
        item,
        min(held_at) AS held_at,
        -- ties (AST and ALT drawn together) broken by the evidence text: one answer every run
        arg_min(evidence, (held_at, evidence::VARCHAR)) AS evidence
    FROM items
    GROUP BY ALL
)

SELECT
    patient_id,
    infusion_id,
    'ferritin_peak' AS item,
    held_at,
    evidence
FROM ferritin_peak
UNION ALL
SELECT
    patient_id,
    infusion_id,
    item,
    held_at,
    evidence
FROM first_items;
