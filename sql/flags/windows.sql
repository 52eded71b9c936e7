/*
Title: windows
Description: Every criteria set's onset windows side by side: the union of the flags.windows_<set>
  tables, which `cartwatch export windows` and the digest read; the evidence becomes JSON here.
Grain: one row per onset window per criteria set (patient, infusion, criteria_set, onset).
Source criterion: contract.md §5 (`export windows`); clinical-rules.md §3 (IEC-HS, ASTCT 2023) and 4 (the
  other criteria sets, evaluated side by side: disagreement between them is information for the
  clinician, not an error). Each set's criterion is cited in its own file.
Parameters: none
Upstream tables: flags.windows_astct_iec_hs_2023, flags.windows_cartox_2017,
  flags.windows_shah_2020, flags.windows_ucsf_masl_2020, flags.windows_hlh_94,
  flags.windows_hlh_2004, flags.windows_hscore
*/
CREATE OR REPLACE TABLE flags.windows AS
WITH all_sets AS (
    SELECT * REPLACE (flags.evidence_json(evidence) AS evidence) FROM flags.windows_astct_iec_hs_2023
    UNION ALL BY NAME
    SELECT * REPLACE (flags.evidence_json(evidence) AS evidence) FROM flags.windows_cartox_2017
    UNION ALL BY NAME
    SELECT * REPLACE (flags.evidence_json(evidence) AS evidence) FROM flags.windows_shah_2020
    UNION ALL BY NAME
    SELECT * REPLACE (flags.evidence_json(evidence) AS evidence) FROM flags.windows_ucsf_masl_2020
    UNION ALL BY NAME
    SELECT * REPLACE (flags.evidence_json(evidence) AS evidence) FROM flags.windows_hlh_94
    UNION ALL BY NAME
    SELECT * REPLACE (flags.evidence_json(evidence) AS evidence) FROM flags.windows_hlh_2004
    UNION ALL BY NAME
    SELECT * REPLACE (flags.evidence_json(evidence) AS evidence) FROM flags.windows_hscore
)

SELECT
    -- ids
    patient_id::VARCHAR AS patient_id,
    infusion_id::VARCHAR AS infusion_id,
    criteria_set::VARCHAR AS criteria_set,
    status::VARCHAR AS status,
    -- window
    onset_at::TIMESTAMPTZ AS onset_at,
    onset_day::INTEGER AS onset_day,
    end_at::TIMESTAMPTZ AS end_at,
    end_day::INTEGER AS end_day,
    crs_onset_day::INTEGER AS crs_onset_day,
    crs_peak_day::INTEGER AS crs_peak_day,
    crs_resolved_day::INTEGER AS crs_resolved_day,
    late_onset::BOOLEAN AS late_onset,
    -- evidence: JSON text, a list of {rule, analyte, value, unit, at, source} in canonical order
    -- (flags.evidence_json): the sets keep it structured until here, the export table
    evidence::VARCHAR AS evidence,
    rules_version::VARCHAR AS rules_version
FROM all_sets
ORDER BY patient_id, infusion_id, criteria_set, onset_at, status;
