/*
Title: ferritin_peak_organ_items
Description: Table macro for the criteria sets built as "a ferritin peak above a cut-off plus at
  least N of four organ items" (CARTOX and Shah 2020): the moment all of it first held, its day
  post-infusion and the results that made it, for every infusion that meets it.
Grain: one row per patient and infusion meeting the criteria (`status` = 'met'), with the columns
  of contract.md §5 (through flags.criteria_set_windows): a diagnosis, not a course, so `end_at` and
  `end_day` are NULL.
Source criterion: Neelapu SS et al., Nat Rev Clin Oncol 2018;15:47 (CARTOX); Shah NN et al.,
  J Clin Oncol 2020;38:1938; clinical-rules.md §4. Both sets share this structure and differ only in
  their cut-offs, their time frame and an item's name, which the calling file passes:
  - Ferritin and items: each item that held and since when, from flags.ferritin_peak_organ_held
    (sql/macros/ferritin_peak_organ_held.sql, which `cartwatch explain` reads too): ferritin
    proven strictly above `ferritin_peak_gt` in the phase; liver, kidney, the lung item at CTCAE
    grade >= `organ_grade_min`; documented hemophagocytosis.
  - Onset = the later of that ferritin and the moment the `items_required`-th item began.
    Evidence: that ferritin, then those items (labs: the day's worst result), with rule ids
    `<rule_prefix>.ferritin_peak_gt`, `.organ_grade_min` and `.hemophagocytosis`.
  - late_onset: onset day >= `late_onset_day` (iec_hs.late_onset_day, as for IEC-HS).
  Why a table macro with a relation name: DDL cannot hold prepared parameters, so the rule values
  arrive as macro arguments from the calling file (which reads them as `$<set>__...`); the time
  frame differs in its source table (CRS episodes or infusions), so the caller names a CTE of its
  own (`phase_table`) that the macro reads through query_table().
Parameters: none read from the rules file. Macro arguments: set_name (contract.md §5 criteria_set),
  rule_prefix (rule id prefix, 'cartox' or 'shah'), phase_table (name of a relation with
  patient_id, infusion_id, starts_at, ferritin_ends_at), ferritin_peak_gt, organ_grade_min,
  items_required, lung_item (the lung item's name in the set), late_onset_day, rules_version.
Upstream tables: flags.ferritin_peak_organ_held (the relation named by phase_table,
  derived.timeline, derived.organ_toxicity_daily, derived.crs_daily, derived.events_timeline),
  derived.infusion_episodes, derived.crs_episodes (flags.criteria_set_windows)
*/
CREATE OR REPLACE MACRO flags.ferritin_peak_organ_items(
    set_name, rule_prefix, phase_table, ferritin_peak_gt, organ_grade_min, items_required, lung_item,
    late_onset_day, rules_version
) AS TABLE
WITH held AS (
    -- every item that held, ferritin included (flags.ferritin_peak_organ_held)
    SELECT *
    FROM flags.ferritin_peak_organ_held(
        rule_prefix := rule_prefix,
        phase_table := phase_table,
        ferritin_peak_gt := ferritin_peak_gt,
        organ_grade_min := organ_grade_min,
        lung_item := lung_item
    )
),

ferritin_peak AS (
    SELECT * EXCLUDE (item)
    FROM held
    WHERE item = 'ferritin_peak'
),

first_items AS (
    SELECT *
    FROM held
    WHERE item != 'ferritin_peak'
),

items_met AS (
    -- CARTOX, Shah 2020: at least N of the four items, met from the moment the N-th began
    SELECT
        patient_id,
        infusion_id,
        list_extract(list(held_at ORDER BY held_at), items_required::BIGINT) AS held_at,
        list_slice(list(evidence ORDER BY held_at), 1, items_required::BIGINT) AS evidence
    FROM first_items
    GROUP BY ALL
    HAVING count(*) >= items_required
),

met AS (
    SELECT
        f.patient_id,
        f.infusion_id,
        greatest(f.held_at, i.held_at) AS onset_at,
        list_prepend(f.evidence, i.evidence) AS evidence
    FROM ferritin_peak AS f
    INNER JOIN items_met AS i
        ON f.patient_id = i.patient_id AND f.infusion_id = i.infusion_id
),

-- diagnosis is read through query_table(), which sqlfluff's ST03 does not see
diagnosis AS ( -- noqa: ST03
    SELECT
        m.patient_id,
        m.infusion_id,
        'met' AS status,
        -- a diagnosis, without end
        m.onset_at,
        day_post_infusion(e.site_tz, m.onset_at, e.infused_at)::INTEGER AS onset_day,
        NULL::TIMESTAMPTZ AS end_at,
        NULL::INTEGER AS end_day,
        -- the ferritin, then the items
        m.evidence
    FROM met AS m
    INNER JOIN derived.infusion_episodes AS e
        ON m.patient_id = e.patient_id AND m.infusion_id = e.infusion_id
)

SELECT *
FROM flags.criteria_set_windows(
    set_name := set_name,
    windows_table := 'diagnosis',
    late_onset_day := late_onset_day,
    rules_version := rules_version
);
