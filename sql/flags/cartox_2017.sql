/*
Title: windows_cartox_2017
Description: CARTOX / carHLH (Neelapu 2018): ferritin peak above the cut-off during the CRS phase
  plus any two of grade >= 3 liver, kidney or lung toxicity and hemophagocytosis, with the moment
  all of it first held and the results that made it.
Grain: one row per patient and infusion meeting the criteria (`status` = 'met'): a diagnosis, not
  a course, so the window has no end (`end_at`, `end_day` NULL) and the daily flag reads 'met' from
  the onset day on.
Source criterion: Neelapu SS et al., Nat Rev Clin Oncol 2018;15:47 (CARTOX); CLINICAL_RULES 4.
  - Ferritin: a result strictly above $cartox__ferritin_peak_gt (10,000 is not met) from CRS
    onset to derived.crs_episodes.ferritin_window_end_at (first resolution + lag; open while
    unresolved), ends inclusive. No CRS: not met.
  - Items from CRS onset on ("subsequently"), each from the first moment it held: liver = CTCAE
    grade >= $cartox__organ_grade_min of AST, ALT or total bilirubin, kidney = of creatinine
    (derived.organ_toxicity_daily); lung = CRS hypoxia grade >= $cartox__organ_grade_min in
    derived.crs_daily (high-flow, mask, positive pressure), the proxy for CTCAE grade >= 3 lung
    toxicity as no feed carries pulmonary edema or imaging, from the start of that day;
    hemophagocytosis = a documented true `hemophagocytosis` event.
  - Onset = the later of that ferritin and the moment the $cartox__items_required-th item began.
    Evidence: that ferritin, then those items (labs: the day's worst result).
  - late_onset: onset day >= $iec_hs__late_onset_day (as for IEC-HS, CLINICAL_RULES 3).
Parameters: $cartox__ferritin_peak_gt, $cartox__organ_grade_min, $cartox__items_required,
  $iec_hs__late_onset_day, $rules_version
Upstream tables: derived.crs_episodes, derived.crs_daily, derived.timeline,
  derived.organ_toxicity_daily, derived.events_timeline, derived.infusion_episodes
*/
CREATE OR REPLACE TABLE flags.windows_cartox_2017 AS
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
),

crs_phase AS (
    SELECT
        patient_id,
        infusion_id,
        onset_at,
        ferritin_window_end_at
    FROM derived.crs_episodes
    WHERE onset_at IS NOT NULL
),

ferritin_peak AS (
    -- Neelapu 2018: ferritin peak > 10,000 ng/mL during the CRS phase
    SELECT
        p.patient_id,
        p.infusion_id,
        min(t.observed_at) AS held_at,
        arg_min(struct_pack(
            rule := 'cartox.ferritin_peak_gt',
            analyte := t.analyte,
            value := t.value,
            unit := t.unit,
            at := strftime(timezone('UTC', t.observed_at), '%Y-%m-%dT%H:%M:%S+00:00'),
            source := t.source
        ), t.observed_at) AS evidence
    FROM crs_phase AS p
    INNER JOIN results AS t
        ON p.patient_id = t.patient_id AND p.infusion_id = t.infusion_id
    WHERE t.analyte = 'ferritin'
      AND t.observed_at >= p.onset_at
      AND (p.ferritin_window_end_at IS NULL OR t.observed_at <= p.ferritin_window_end_at)
      AND t.value_r > $cartox__ferritin_peak_gt
    GROUP BY ALL
),

items AS (
    -- Neelapu 2018: grade >= 3 liver (AST, ALT, bilirubin) or kidney (creatinine) toxicity
    SELECT
        o.patient_id,
        o.infusion_id,
        o.organ AS item,
        o.grade_at AS held_at,
        struct_pack(
            rule := 'cartox.organ_grade_min',
            analyte := o.analyte,
            value := o.value,
            unit := o.unit,
            at := strftime(timezone('UTC', o.observed_at), '%Y-%m-%dT%H:%M:%S+00:00'),
            source := o.source
        ) AS evidence
    FROM derived.organ_toxicity_daily AS o
    INNER JOIN crs_phase AS p
        ON o.patient_id = p.patient_id AND o.infusion_id = p.infusion_id
    WHERE o.grade >= $cartox__organ_grade_min
      AND o.grade_at >= p.onset_at

    UNION ALL

    -- Neelapu 2018: grade >= 3 lung toxicity, as CRS hypoxia grade >= 3 (see header)
    SELECT
        c.patient_id,
        c.infusion_id,
        'lung' AS item,
        greatest(c.day_start_at, p.onset_at) AS held_at,
        struct_pack(
            rule := 'cartox.organ_grade_min',
            analyte := 'hypoxia_grade',
            value := c.hypoxia_grade::DOUBLE,
            unit := 'ASTCT grade',
            at := strftime(timezone('UTC', c.day_start_at), '%Y-%m-%dT%H:%M:%S+00:00'),
            source := 'derived.crs_daily'
        ) AS evidence
    FROM derived.crs_daily AS c
    INNER JOIN crs_phase AS p
        ON c.patient_id = p.patient_id AND c.infusion_id = p.infusion_id
    WHERE c.hypoxia_grade >= $cartox__organ_grade_min
      AND c.day_end_at > p.onset_at

    UNION ALL

    -- Neelapu 2018: hemophagocytosis in the bone marrow or other organs
    SELECT
        e.patient_id,
        e.infusion_id,
        'hemophagocytosis' AS item,
        e.observed_at AS held_at,
        struct_pack(
            rule := 'cartox.hemophagocytosis',
            analyte := e.event_type,
            value := e.value_num,
            unit := NULL::VARCHAR,
            at := strftime(timezone('UTC', e.observed_at), '%Y-%m-%dT%H:%M:%S+00:00'),
            source := e.source
        ) AS evidence
    FROM derived.events_timeline AS e
    INNER JOIN crs_phase AS p
        ON e.patient_id = p.patient_id AND e.infusion_id = p.infusion_id
    WHERE e.event_type = 'hemophagocytosis'
      AND e.value_num::BOOLEAN
      AND e.observed_at >= p.onset_at
),

first_items AS (
    SELECT
        patient_id,
        infusion_id,
        item,
        min(held_at) AS held_at,
        arg_min(evidence, held_at) AS evidence
    FROM items
    GROUP BY ALL
),

items_met AS (
    -- Neelapu 2018: any two of the four items, met from the moment the second began
    SELECT
        patient_id,
        infusion_id,
        list_extract(list(held_at ORDER BY held_at), $cartox__items_required::BIGINT) AS held_at,
        list_slice(list(evidence ORDER BY held_at), 1, $cartox__items_required::BIGINT) AS evidence
    FROM first_items
    GROUP BY ALL
    HAVING count(*) >= $cartox__items_required
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

placed AS (
    SELECT
        m.*,
        day_post_infusion(e.site_tz, m.onset_at, e.infused_at)::INTEGER AS onset_day
    FROM met AS m
    INNER JOIN derived.infusion_episodes AS e
        ON m.patient_id = e.patient_id AND m.infusion_id = e.infusion_id
)

SELECT
    -- ids
    p.patient_id,
    p.infusion_id,
    'cartox_2017' AS criteria_set,
    'met' AS status,
    -- window
    p.onset_at,
    p.onset_day,
    NULL::TIMESTAMPTZ AS end_at,
    NULL::INTEGER AS end_day,
    c.onset_day::INTEGER AS crs_onset_day,
    c.peak_day::INTEGER AS crs_peak_day,
    c.resolved_day::INTEGER AS crs_resolved_day,
    p.onset_day >= $iec_hs__late_onset_day AS late_onset,
    -- evidence (CONTRACT 3: rule, analyte, value, unit, at (ISO 8601, UTC), source)
    to_json(p.evidence)::VARCHAR AS evidence,
    $rules_version AS rules_version
FROM placed AS p
LEFT JOIN derived.crs_episodes AS c
    ON p.patient_id = c.patient_id AND p.infusion_id = c.infusion_id;
