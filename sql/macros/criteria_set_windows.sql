/*
Title: criteria_set_windows
Description: Table macro that gives a criteria set's windows the columns of contract.md §5 (`export
  windows`): the set's name, the CRS milestones of the infusion, late_onset, the evidence and the
  rules version.
Grain: one row per row of the relation named by windows_table (one per onset window), unchanged.
Source criterion: contract.md §5 (`export windows` columns); clinical-rules.md §3 for late_onset (onset
  day >= `late_onset_day`, iec_hs.late_onset_day, applied to every set as for IEC-HS). The set's
  own criterion is cited in its calling file.
  - CRS milestones: derived.crs_episodes onset, peak and resolved days (NULL without CRS).
  - Evidence: a list of structs {rule, analyte, value, unit, at (ISO 8601, UTC), source}, kept
    structured until flags.windows writes it as the export's JSON.
  Called by flags.ferritin_peak_organ_items and flags.met_day_windows (created before them in
  sql/run_order.txt), so the contract columns are written once. Why a table macro with a relation
  name: the windows come from a CTE of the caller (`windows_table`, read through query_table());
  the set's name, late_onset_day and rules_version arrive as arguments because DDL cannot hold
  prepared parameters.
Parameters: none read from the rules file. Macro arguments: set_name (contract.md §5 criteria_set),
  windows_table (name of a relation with patient_id, infusion_id, status, onset_at, onset_day,
  end_at, end_day, evidence), late_onset_day ($iec_hs__late_onset_day), rules_version
  ($rules_version).
Upstream tables: the relation named by windows_table, derived.crs_episodes
*/
CREATE OR REPLACE MACRO flags.criteria_set_windows(
    set_name, windows_table, late_onset_day, rules_version
) AS TABLE
SELECT
    -- ids
    w.patient_id,
    w.infusion_id,
    set_name AS criteria_set,
    w.status,
    -- window
    w.onset_at,
    w.onset_day::INTEGER AS onset_day,
    w.end_at,
    w.end_day::INTEGER AS end_day,
    c.onset_day::INTEGER AS crs_onset_day,
    c.peak_day::INTEGER AS crs_peak_day,
    c.resolved_day::INTEGER AS crs_resolved_day,
    -- clinical-rules.md §3: late onset from iec_hs.late_onset_day, as for IEC-HS
    w.onset_day >= late_onset_day AS late_onset,
    -- evidence (contract.md §5: rule, analyte, value, unit, at (ISO 8601, UTC), source)
    w.evidence,
    -- the argument (a macro argument is read before a column of the same name)
    rules_version AS rules_version
FROM query_table(windows_table) AS w
LEFT JOIN derived.crs_episodes AS c
    ON w.patient_id = c.patient_id AND w.infusion_id = c.infusion_id;
