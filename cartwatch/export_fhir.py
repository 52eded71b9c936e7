"""`cartwatch export windows --format fhir`: the onset windows as FHIR R4 NDJSON.

Each window is a `DetectedIssue`, not a `Flag`: a Flag is a standing notice about a patient ("at
risk of falls") with no place for the data behind it, while a DetectedIssue is what a rule engine
found in a patient's record, with when it was identified (`identifiedPeriod`), how bad it is
(`severity`) and the results it rests on (`implicated`, `evidence.detail`), which is a window.

The stream holds, in this order, one `Patient` per patient, one `Observation` per stored result
that is a window's evidence, then the `DetectedIssue`s, so every reference resolves inside the
file. The Observations are lines of their own, not contained resources: one result is often the
evidence of several windows (and criteria sets), and a stored result has an identity of its own,
its row key (a hash of patient, analyte, time, value, status and accession, the same whichever feed
delivered it), which is its Observation id: an export made again gives the same ids.

Evidence items that are not stored results (a score computed by cartwatch, a documented event, an
item that was unknown) have no Observation; DetectedIssue.detail names how many there are.

The resources are built in DuckDB (set-based, as JSON text); Python only masks ids, as the other
exports do, and writes the lines.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

# The project's own code systems and extensions (docs/contract.md, section 5).
# URNs: they name cartwatch's own concepts without claiming a web address a site does not own.
CRITERIA_SET_SYSTEM = "urn:cartwatch:criteria-set"          # codes: the criteria_set values
ANALYTE_SYSTEM = "urn:cartwatch:analyte"                    # a result without LOINC: its analyte
PATIENT_ID_SYSTEM = "urn:cartwatch:patient-id"              # the patient id as stored (or masked)
WINDOW_STATUS_URL = "urn:cartwatch:window-status"           # extension: the window's status
INFUSION_ID_URL = "urn:cartwatch:infusion-id"               # extension: the infusion (or masked)
RULES_VERSION_URL = "urn:cartwatch:rules-version"           # extension: the rules that made it
LOINC_URL = "http://loinc.org"
UCUM_URL = "http://unitsofmeasure.org"
CATEGORY_URL = "http://terminology.hl7.org/CodeSystem/observation-category"

# the window's status -> DetectedIssue.severity (how strongly the criteria set holds)
SEVERITY = {"criteria_met": "high", "met": "high", "suspected": "moderate", "watch": "low", "not_met": "low"}
# the stored lab result_status (contract.md §1) -> Observation.status
RESULT_STATUS = {"F": "final", "P": "preliminary", "C": "corrected", "X": "cancelled"}

# Evidence items of the windows, matched to the stored rows they name (file:line and analyte).
EVIDENCE_ROWS = """
WITH items AS (
    SELECT w.patient_id, w.window_no, unnest(from_json(w.evidence, '["json"]')) AS item
    FROM fhir_windows AS w
),
named AS (
    SELECT patient_id, window_no, item ->> 'source' AS source, item ->> 'analyte' AS analyte FROM items
),
labs AS (
    SELECT n.window_no, l.row_key, l.patient_id, 'laboratory' AS category, l.analyte, l.loinc,
           l.value, NULL::VARCHAR AS value_text, l.comparator, l.unit, l.observed_at, l.resulted_at,
           l.result_status
    FROM named AS n
    JOIN stg.lab_results AS l
      ON l.patient_id = n.patient_id AND l.source_file || ':' || l.source_line = n.source
     AND l.analyte = n.analyte
),
vitals AS (
    SELECT n.window_no, v.row_key, v.patient_id, 'vital-signs' AS category, v.kind AS analyte, c.loinc,
           v.value, v.value_text, NULL::VARCHAR AS comparator, nullif(v.unit, '') AS unit, v.observed_at,
           NULL::TIMESTAMPTZ AS resulted_at, 'F' AS result_status
    FROM named AS n
    JOIN stg.vitals AS v
      ON v.patient_id = n.patient_id AND v.source_file || ':' || v.source_line = n.source AND v.kind = n.analyte
    LEFT JOIN fhir_vital_codes AS c ON c.kind = v.kind
)
SELECT * FROM labs UNION ALL SELECT * FROM vitals
"""

ISSUES = """
SELECT w.window_no, w.patient_id, w.infusion_id, w.criteria_set, w.status, w.onset_at, w.onset_day,
       w.end_at, w.rules_version,
       list(DISTINCT e.row_key ORDER BY e.row_key) FILTER (WHERE e.row_key IS NOT NULL) AS observations,
       json_array_length(w.evidence) AS evidence_items
FROM fhir_windows AS w
LEFT JOIN fhir_evidence AS e ON e.window_no = w.window_no
GROUP BY ALL
"""

OBSERVATIONS = """
SELECT DISTINCT ON (row_key) row_key, patient_id, category, analyte, loinc, value, value_text, comparator,
       unit, observed_at, resulted_at, result_status
FROM fhir_evidence ORDER BY row_key
"""

# FHIR JSON, one resource a line; json_merge_patch onto {} drops the members that are null.
RENDER = """
WITH patients AS (
    SELECT DISTINCT patient_id FROM fhir_issues
),
patient_ref AS (
    -- a FHIR id is [A-Za-z0-9.-]{1,64}: an id that is not one is referred to by a hash of it
    SELECT patient_id,
           CASE WHEN regexp_full_match(patient_id, '[A-Za-z0-9.\\-]{1,64}') THEN patient_id
                ELSE 'p-' || sha1(patient_id)[:16] END AS fhir_id
    FROM patients
),
patient_lines AS (
    SELECT 0 AS part, fhir_id AS sort_key, json_object(
        'resourceType', 'Patient', 'id', fhir_id,
        'identifier', [json_object('system', $patient_system, 'value', patient_id)]
    )::VARCHAR AS line
    FROM patient_ref
),
observation_lines AS (
    SELECT 1 AS part, o.row_key AS sort_key, json_merge_patch('{}', json_object(
        'resourceType', 'Observation', 'id', o.row_key,
        'status', map_extract_value(MAP($status_from, $status_to), o.result_status),
        'category', [json_object('coding', [json_object('system', $category_system, 'code', o.category)])],
        'code', json_object(
            'coding', [CASE WHEN o.loinc IS NOT NULL
                            THEN json_object('system', $loinc_system, 'code', o.loinc)
                            ELSE json_object('system', $analyte_system, 'code', o.analyte) END],
            'text', o.analyte),
        'subject', json_object('reference', 'Patient/' || p.fhir_id),
        'effectiveDateTime', strftime(timezone('UTC', o.observed_at), '%Y-%m-%dT%H:%M:%SZ'),
        'issued', strftime(timezone('UTC', o.resulted_at), '%Y-%m-%dT%H:%M:%SZ'),
        'valueQuantity', CASE WHEN o.value IS NOT NULL THEN json_object(
            'value', o.value, 'comparator', o.comparator, 'unit', o.unit,
            'system', CASE WHEN o.unit IS NOT NULL THEN $ucum_system END, 'code', o.unit) END,
        'valueString', CASE WHEN o.value IS NULL THEN o.value_text END
    ))::VARCHAR AS line
    FROM fhir_observations AS o
    JOIN patient_ref AS p ON p.patient_id = o.patient_id
),
issue_ids AS (
    SELECT i.*, p.fhir_id AS patient_fhir_id,
           'w-' || sha1(concat_ws(chr(31), i.patient_id, i.infusion_id, i.criteria_set,
                                  strftime(timezone('UTC', i.onset_at), '%Y-%m-%dT%H:%M:%S'), i.status))[:32] AS id,
           [json_object('reference', 'Observation/' || o) FOR o IN coalesce(i.observations, [])] AS refs
    FROM fhir_issues AS i
    JOIN patient_ref AS p ON p.patient_id = i.patient_id
),
issue_lines AS (
    SELECT 2 AS part, id AS sort_key, json_merge_patch('{}', json_object(
        'resourceType', 'DetectedIssue', 'id', id,
        'extension', [json_object('url', $window_status_url, 'valueCode', status),
                      json_object('url', $infusion_id_url, 'valueString', infusion_id),
                      json_object('url', $rules_version_url, 'valueString', rules_version)],
        -- an open window can still change (new results extend or escalate it); a closed one cannot
        'status', CASE WHEN end_at IS NULL THEN 'preliminary' ELSE 'final' END,
        'code', json_object('coding', [json_object('system', $criteria_system, 'code', criteria_set)],
                            'text', criteria_set),
        'severity', map_extract_value(MAP($severity_from, $severity_to), status),
        'patient', json_object('reference', 'Patient/' || patient_fhir_id),
        'identifiedPeriod', json_object(
            'start', strftime(timezone('UTC', onset_at), '%Y-%m-%dT%H:%M:%SZ'),
            'end', strftime(timezone('UTC', end_at), '%Y-%m-%dT%H:%M:%SZ')),
        'implicated', CASE WHEN len(refs) > 0 THEN refs END,
        'evidence', CASE WHEN len(refs) > 0 THEN [json_object('detail', refs)] END,
        'detail', criteria_set || ' ' || status || ' from day ' || onset_day || ' post-infusion, '
                  || (CASE WHEN end_at IS NULL THEN 'open' ELSE 'closed' END) || '; evidence: '
                  || len(refs) || ' stored result(s) (Observations), '
                  || (evidence_items - len(refs)) || ' other item(s) (scores, events, unknowns)'
    ))::VARCHAR AS line
    FROM issue_ids
)
SELECT line FROM (
    SELECT * FROM patient_lines UNION ALL SELECT * FROM observation_lines UNION ALL SELECT * FROM issue_lines
) ORDER BY part, sort_key
"""


def write_fhir(con: duckdb.DuckDBPyConnection, windows: pa.Table, out: Path, vital_loinc: dict[str, str],
               *, mask_ids: bool = False) -> int:
    """NDJSON of `windows` (the CONTRACT columns of export windows) and their evidence; returns the
    number of DetectedIssues written."""
    from cartwatch.export import masked_table

    numbered = windows.append_column("window_no", pa.array(range(windows.num_rows), type=pa.int64()))
    codes = pa.table({"kind": list(vital_loinc), "loinc": list(vital_loinc.values())})
    with _registered(con, fhir_windows=numbered, fhir_vital_codes=codes):
        evidence = con.sql(EVIDENCE_ROWS).to_arrow_table()
        with _registered(con, fhir_evidence=evidence):
            issues = con.sql(ISSUES).to_arrow_table()
            observations = con.sql(OBSERVATIONS).to_arrow_table()
    if mask_ids:
        issues, observations = masked_table(issues), masked_table(observations)
    with _registered(con, fhir_issues=issues, fhir_observations=observations):
        lines = con.sql(RENDER, params=_render_params()).to_arrow_table().column("line").to_pylist()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return issues.num_rows


def _render_params() -> dict:
    return {"patient_system": PATIENT_ID_SYSTEM, "category_system": CATEGORY_URL, "loinc_system": LOINC_URL,
            "analyte_system": ANALYTE_SYSTEM, "ucum_system": UCUM_URL, "criteria_system": CRITERIA_SET_SYSTEM,
            "window_status_url": WINDOW_STATUS_URL, "infusion_id_url": INFUSION_ID_URL,
            "rules_version_url": RULES_VERSION_URL,
            "status_from": list(RESULT_STATUS), "status_to": list(RESULT_STATUS.values()),
            "severity_from": list(SEVERITY), "severity_to": list(SEVERITY.values())}


class _registered:
    """Arrow tables visible to the connection's SQL under the given names, for a `with` block."""

    def __init__(self, con: duckdb.DuckDBPyConnection, **tables: pa.Table):
        self.con, self.tables = con, tables

    def __enter__(self):
        for name, table in self.tables.items():
            self.con.register(name, table)
        return self

    def __exit__(self, *exc):
        for name in self.tables:
            self.con.unregister(name)
