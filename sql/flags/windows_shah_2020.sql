/*
Title: windows_shah_2020
Description: Shah et al. 2020 HLH-like toxicity (CD22 CAR-T): ferritin peak above the cut-off plus
  at least two of grade >= 3 aminotransferases or bilirubin, grade >= 3 creatinine, grade >= 3
  pulmonary edema and hemophagocytosis, with the moment all of it first held and its evidence.
Grain: one row per patient and infusion meeting the criteria (`status` = 'met'): a diagnosis, not
  a course, so the window has no end (`end_at`, `end_day` NULL) and the daily flag reads 'met' from
  the onset day on.
Source criterion: Shah NN et al., J Clin Oncol 2020;38:1938; Fugere 2023 Table 1; clinical-rules.md §4.
  - Ferritin: a result strictly above $shah__ferritin_peak_gt (ug/L = ng/mL) at or after the
    infusion, in the infusion episode (Shah gives no time frame; no CRS is required).
  - Items, from the infusion on, each from the first moment it held: hepatic = CTCAE grade >=
    $shah__organ_grade_min of AST, ALT or total bilirubin; creatinine = the same of creatinine
    (derived.organ_toxicity_daily, from the first result of the day at the day's grade);
    pulmonary edema = CRS hypoxia grade >= $shah__organ_grade_min in derived.crs_daily, the proxy
    used for CARTOX's lung item since no feed carries pulmonary edema (from the start of that day);
    hemophagocytosis = a documented true `hemophagocytosis` event.
  - Onset = the later of the first ferritin above the cut-off and the moment the
    $shah__items_required-th item began. Evidence: that ferritin, then those items.
  - late_onset: onset day >= $iec_hs__late_onset_day (as for IEC-HS, clinical-rules.md §3).
Parameters: $shah__ferritin_peak_gt, $shah__organ_grade_min, $shah__items_required,
  $iec_hs__late_onset_day, $rules_version
Upstream tables: derived.infusion_episodes, derived.timeline, derived.organ_toxicity_daily,
  derived.crs_daily, derived.events_timeline, derived.crs_episodes (read through the table macros
  flags.ferritin_peak_organ_items and flags.criteria_set_windows, sql/macros/)
*/
CREATE OR REPLACE TABLE flags.windows_shah_2020 AS
-- post_infusion is read through query_table(), which sqlfluff's ST03 does not see
WITH post_infusion AS ( -- noqa: ST03
    -- Shah 2020: no time frame; the infusion episode from the infusion on
    SELECT
        patient_id,
        infusion_id,
        infused_at AS starts_at,
        NULL::TIMESTAMPTZ AS ferritin_ends_at
    FROM derived.infusion_episodes
)

SELECT *
FROM flags.ferritin_peak_organ_items(
    set_name := 'shah_2020',
    rule_prefix := 'shah',
    phase_table := 'post_infusion',
    -- Shah 2020: ferritin peak > 100,000 ug/L
    ferritin_peak_gt := $shah__ferritin_peak_gt,
    -- Shah 2020: aminotransferases or bilirubin, creatinine, pulmonary edema grade >= 3
    organ_grade_min := $shah__organ_grade_min,
    -- Shah 2020: pulmonary edema, as CRS hypoxia grade >= 3 (see header)
    lung_item := 'pulmonary_edema',
    -- Shah 2020: at least two of the four items (with hemophagocytosis), from when the second began
    items_required := $shah__items_required,
    -- late_onset as for IEC-HS (clinical-rules.md §3)
    late_onset_day := $iec_hs__late_onset_day,
    rules_version := $rules_version
);
