/*
Title: daily
Description: The daily flags (contract.md §5 `export flags`): CRS grade, the day's highest ferritin and
  its worsening signal, EASIX, the HScore range, HLH-2004, and each criteria set's status that day.
Grain: one row per patient, infusion and day post-infusion (day >= 0) with any data: a lab
  result, a vital sign or a documented event (days before the infusion are baseline context, in
  the timeline export, not monitored days).
Source criterion: contract.md §5; clinical-rules.md §2 (CRS as a daily value), 3 (IEC-HS, ferritin
  signal) and 4 (the other criteria sets).
  - crs_grade, crs_grade_source: derived.crs_daily (`documented` or `derived`).
  - ferritin_max: the day's highest ferritin. ferritin_signal: the worsening rule that fired that
    day (derived.ferritin_trajectory.signal, which names the first of re_rise, rapid_rise,
    new_high to fire at a result), at the day's first signalling result.
  - easix, m_easix: derived.easix_daily, when exact: a score only bounded by a censored input
    (its `easix_comparator` set) is left empty here, since the column holds values, not bounds
    (clinical-rules.md §1); derived.easix_daily keeps the bound. hscore_min, hscore_max: derived.hscore_daily.
    hlh_2004_met, hlh_2004_evaluable: derived.hlh_criteria_daily (booleans; met is false on a
    day that cannot be decided, and evaluable says whether it could). Those use the day's worst
    values and the findings documented by the end of the day.
  - astct_iec_hs_2023: flags.astct_iec_hs_2023_daily (the strongest status if a day had several).
  - cartox_2017, shah_2020, ucsf_masl_2020, hlh_94: 'met' on the days inside one of the set's
    windows (from the onset day, through the end day; a window without end runs on), else empty.
Parameters: $rules_version
Upstream tables: derived.episode_days, derived.timeline, derived.crs_daily, derived.ferritin_trajectory, derived.easix_daily, derived.hscore_daily,
  derived.hlh_criteria_daily, flags.astct_iec_hs_2023_daily, flags.windows
*/
CREATE OR REPLACE TABLE flags.daily AS
WITH days AS (
    SELECT
        patient_id,
        infusion_id,
        day
    FROM derived.episode_days
    WHERE has_data
),

ferritin AS (
    SELECT
        patient_id,
        infusion_id,
        day::INTEGER AS day,
        max(value) AS ferritin_max
    FROM derived.timeline
    WHERE analyte = 'ferritin'
    GROUP BY ALL
),

signals AS (
    -- clinical-rules.md §3: the worsening rule that fired (re-rise, rapid rise, new high)
    SELECT
        patient_id,
        infusion_id,
        day::INTEGER AS day,
        arg_min(signal, observed_at) AS ferritin_signal
    FROM derived.ferritin_trajectory
    WHERE signal IS NOT NULL
    GROUP BY ALL
),

iec_hs AS (
    SELECT
        patient_id,
        infusion_id,
        day::INTEGER AS day,
        arg_max(status, list_position(['watch', 'suspected', 'criteria_met'], status)) AS status
    FROM flags.astct_iec_hs_2023_daily
    GROUP BY ALL
),

set_status AS (
    -- each yes/no criteria set's status that day: inside one of its windows
    SELECT
        d.patient_id,
        d.infusion_id,
        d.day,
        max(w.status) FILTER (WHERE w.criteria_set = 'cartox_2017') AS cartox_2017,
        max(w.status) FILTER (WHERE w.criteria_set = 'shah_2020') AS shah_2020,
        max(w.status) FILTER (WHERE w.criteria_set = 'ucsf_masl_2020') AS ucsf_masl_2020,
        max(w.status) FILTER (WHERE w.criteria_set = 'hlh_94') AS hlh_94
    FROM days AS d
    INNER JOIN flags.windows AS w
        ON d.patient_id = w.patient_id AND d.infusion_id = w.infusion_id
        AND d.day >= w.onset_day AND (w.end_day IS NULL OR d.day <= w.end_day)
    WHERE w.status = 'met'
    GROUP BY ALL
)

SELECT
    -- ids
    d.patient_id,
    d.infusion_id,
    d.day,
    -- CRS
    c.grade::INTEGER AS crs_grade,
    c.grade_source AS crs_grade_source,
    -- ferritin
    f.ferritin_max,
    s.ferritin_signal,
    -- scores
    CASE WHEN e.easix_comparator IS NULL THEN e.easix END AS easix,
    CASE WHEN e.m_easix_comparator IS NULL THEN e.m_easix END AS m_easix,
    h.hscore_min,
    h.hscore_max,
    l.hlh_2004_met,
    l.hlh_2004_evaluable,
    -- criteria sets
    i.status AS astct_iec_hs_2023,
    st.cartox_2017,
    st.shah_2020,
    st.ucsf_masl_2020,
    st.hlh_94,
    $rules_version AS rules_version
FROM days AS d
LEFT JOIN derived.crs_daily AS c
    ON d.patient_id = c.patient_id AND d.infusion_id = c.infusion_id AND d.day = c.day
LEFT JOIN ferritin AS f
    ON d.patient_id = f.patient_id AND d.infusion_id = f.infusion_id AND d.day = f.day
LEFT JOIN signals AS s
    ON d.patient_id = s.patient_id AND d.infusion_id = s.infusion_id AND d.day = s.day
LEFT JOIN derived.easix_daily AS e
    ON d.patient_id = e.patient_id AND d.infusion_id = e.infusion_id AND d.day = e.day
LEFT JOIN derived.hscore_daily AS h
    ON d.patient_id = h.patient_id AND d.infusion_id = h.infusion_id AND d.day = h.day
LEFT JOIN derived.hlh_criteria_daily AS l
    ON d.patient_id = l.patient_id AND d.infusion_id = l.infusion_id AND d.day = l.day
LEFT JOIN iec_hs AS i
    ON d.patient_id = i.patient_id AND d.infusion_id = i.infusion_id AND d.day = i.day
LEFT JOIN set_status AS st
    ON d.patient_id = st.patient_id AND d.infusion_id = st.infusion_id AND d.day = st.day
ORDER BY d.patient_id, d.infusion_id, d.day;
