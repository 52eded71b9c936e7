/*
Title: windows_cartox_2017
Description: CARTOX / carHLH (Neelapu 2018): ferritin peak above the cut-off during the CRS phase
  plus any two of grade >= 3 liver, kidney or lung toxicity and hemophagocytosis, with the moment
  all of it first held and the results that made it.
Grain: one row per patient and infusion meeting the criteria (`status` = 'met'): a diagnosis, not
  a course, so the window has no end (`end_at`, `end_day` NULL) and the daily flag reads 'met' from
  the onset day on.
Source criterion: Neelapu SS et al., Nat Rev Clin Oncol 2018;15:47 (CARTOX); clinical-rules.md §4.
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
  - late_onset: onset day >= $iec_hs__late_onset_day (as for IEC-HS, clinical-rules.md §3).
Parameters: $cartox__ferritin_peak_gt, $cartox__organ_grade_min, $cartox__items_required,
  $iec_hs__late_onset_day, $rules_version
Upstream tables: derived.crs_episodes, derived.crs_daily, derived.timeline,
  derived.organ_toxicity_daily, derived.events_timeline, derived.infusion_episodes (read through
  the table macros flags.ferritin_peak_organ_items and flags.criteria_set_windows, sql/macros/)
*/
CREATE OR REPLACE TABLE flags.windows_cartox_2017 AS
-- crs_phase is read through query_table(), which sqlfluff's ST03 does not see
WITH crs_phase AS ( -- noqa: ST03
    -- Neelapu 2018: ferritin during the CRS phase, items from CRS onset on; no CRS: not met
    SELECT
        patient_id,
        infusion_id,
        onset_at AS starts_at,
        ferritin_window_end_at AS ferritin_ends_at
    FROM derived.crs_episodes
    WHERE onset_at IS NOT NULL
)

SELECT *
FROM flags.ferritin_peak_organ_items(
    set_name := 'cartox_2017',
    rule_prefix := 'cartox',
    phase_table := 'crs_phase',
    -- Neelapu 2018: ferritin peak > 10,000 ng/mL during the CRS phase
    ferritin_peak_gt := $cartox__ferritin_peak_gt,
    -- Neelapu 2018: grade >= 3 liver (AST, ALT, bilirubin), kidney (creatinine) or lung toxicity
    organ_grade_min := $cartox__organ_grade_min,
    -- Neelapu 2018: lung toxicity, as CRS hypoxia grade >= 3 (see header)
    lung_item := 'lung',
    -- Neelapu 2018: any two of liver, kidney, lung and hemophagocytosis, from when the second began
    items_required := $cartox__items_required,
    -- late_onset as for IEC-HS (clinical-rules.md §3)
    late_onset_day := $iec_hs__late_onset_day,
    rules_version := $rules_version
);
