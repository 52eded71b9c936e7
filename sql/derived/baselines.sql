/*
Title: baselines
Description: The baseline result of each analyte of each infusion episode: the last result in
  force collected before the infusion and within the look-back; the timeline (x baseline) and the
  IEC-HS evidence (pre-infusion hyperferritinemia) read it from here.
Grain: one row per patient, infusion and analyte with a result in the look-back.
Source criterion: clinical-rules.md §1 (Baseline: last result collected before the infusion timestamp
  and within $time_axis__baseline_lookback_hours of it; ULN: the result's own range, else the
  rules-file default for the analyte).
  - Results collected at the same moment: the later delivery (load_seq) is the baseline.
  - A censored baseline keeps its comparator (clinical-rules.md §1): rules compare with the bound.
Parameters: $time_axis__baseline_lookback_hours, $rules_version
Upstream tables: derived.lab_results, derived.infusion_episodes, ref.analytes
*/
CREATE OR REPLACE TABLE derived.baselines AS
WITH candidates AS (
    -- clinical-rules.md §1: before the infusion timestamp, within the look-back
    SELECT
        i.patient_id,
        i.infusion_id,
        l.analyte,
        l.observed_at,
        l.load_seq,
        struct_pack(
            value := l.value,
            comparator := l.comparator,
            uln := coalesce(l.ref_high, r.default_high),
            unit := l.unit,
            observed_at := l.observed_at,
            source := l.source_file || ':' || l.source_line
        ) AS result
    FROM derived.infusion_episodes AS i
    INNER JOIN derived.lab_results AS l
        ON l.patient_id = i.patient_id
        AND l.observed_at < i.infused_at
        AND l.observed_at >= i.infused_at - to_hours($time_axis__baseline_lookback_hours::BIGINT)
    LEFT JOIN ref.analytes AS r ON l.analyte = r.analyte
),

last_before AS (
    -- clinical-rules.md §1: the last one
    SELECT
        patient_id,
        infusion_id,
        analyte,
        arg_max(result, (observed_at, load_seq)) AS result
    FROM candidates
    GROUP BY ALL
)

SELECT
    -- ids
    patient_id,
    infusion_id,
    analyte,
    -- the baseline result
    result.value AS value,
    result.comparator AS comparator,
    result.uln AS uln,
    result.unit AS unit,
    -- timestamps
    result.observed_at AS observed_at,
    -- lineage
    result.source AS source,
    $rules_version AS rules_version
FROM last_before
ORDER BY patient_id, infusion_id, analyte;
