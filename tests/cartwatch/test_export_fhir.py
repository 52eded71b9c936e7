"""`export windows --format fhir`: every resource of the sample's export validates with the FHIR
R4B models of fhir.resources and round-trips, every reference resolves, one window is checked whole,
ids are masked with --mask-ids and a censored result keeps its comparator.

fhir.resources 8.3 has no R4 package: its top level is R5, beside `R4B` and `STU3`. R4B (4.3) is R4
(4.0.1) with technical corrections; Patient, Observation and DetectedIssue have the same elements
in both, so the R4B models are the closest maintained check of R4 output (R5 renamed DetectedIssue's
`patient` to `subject` and would refuse it)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from fhir.resources.R4B import get_fhir_model_class

from cartwatch.cli import main
from cartwatch.export_fhir import write_fhir
from sample_paths import SAMPLE
from tests.engine_helpers import Scenario

AS_OF = (SAMPLE / "AS_OF").read_text().strip()


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("fhir") / "sample.duckdb"
    assert main(["ingest", str(SAMPLE), "--db", str(db), "--progress", "none"]) == 0
    return db


def _export(db, out, *extra) -> list[dict]:
    assert main(["export", "windows", "--db", str(db), "--as-of", AS_OF, "--out", str(out), *extra]) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def exported(sample_db, tmp_path_factory):
    out = tmp_path_factory.mktemp("fhir-out") / "windows.ndjson"
    return out, _export(sample_db, out)


def test_every_resource_validates_and_round_trips(exported):
    out, resources = exported
    lines = out.read_text(encoding="utf-8").splitlines()
    for line, resource in zip(lines, resources, strict=True):
        model = get_fhir_model_class(resource["resourceType"]).model_validate_json(line)
        assert json.loads(model.model_dump_json()) == resource
    kinds = [r["resourceType"] for r in resources]
    # the sample's 37 windows, with the 905 stored results behind them and their 18 patients
    assert (kinds.count("Patient"), kinds.count("Observation"), kinds.count("DetectedIssue")) == (18, 905, 37)


def test_every_reference_resolves_and_ids_are_unique(exported):
    _, resources = exported
    ids = [f"{r['resourceType']}/{r['id']}" for r in resources]
    assert len(ids) == len(set(ids))
    refs = [r["subject"]["reference"] for r in resources if "subject" in r]
    for issue in (r for r in resources if r["resourceType"] == "DetectedIssue"):
        refs.append(issue["patient"]["reference"])
        refs += [i["reference"] for i in issue.get("implicated", [])]
        refs += [d["reference"] for e in issue.get("evidence", []) for d in e["detail"]]
    assert refs and set(refs) <= set(ids)


def test_one_window_exactly(exported):
    """CW-0019: a ferritin rise of exactly 100 ng/mL/h on day 16 makes IEC-HS suspected (open)."""
    _, resources = exported
    issue = next(r for r in resources if r["resourceType"] == "DetectedIssue"
                 and r["patient"]["reference"] == "Patient/CW-0019")
    ferritin = "Observation/8c83aea643ce4b9d11f18a7926b10aaaa675616c"
    assert issue == {
        "resourceType": "DetectedIssue", "id": "w-2aa79c064a2ea57c0a15089331c013ca",
        "extension": [{"url": "urn:cartwatch:window-status", "valueCode": "suspected"},
                      {"url": "urn:cartwatch:infusion-id", "valueString": "CW-0019-I1"},
                      {"url": "urn:cartwatch:rules-version", "valueString": "2026.12.0"}],
        "status": "preliminary",
        "code": {"coding": [{"system": "urn:cartwatch:criteria-set", "code": "astct_iec_hs_2023"}],
                 "text": "astct_iec_hs_2023"},
        "severity": "moderate",
        "patient": {"reference": "Patient/CW-0019"},
        "identifiedPeriod": {"start": "2026-09-19T16:00:00Z"},
        "implicated": [{"reference": ferritin}],
        "evidence": [{"detail": [{"reference": ferritin}]}],
        "detail": "astct_iec_hs_2023 suspected from day 16 post-infusion, open; evidence: 1 stored result(s) "
                  "(Observations), 0 other item(s) (scores, events, unknowns)"}
    observation = next(r for r in resources if f"Observation/{r['id']}" == ferritin)
    assert observation == {
        "resourceType": "Observation", "id": ferritin.split("/")[1], "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2276-4"}], "text": "ferritin"},
        "subject": {"reference": "Patient/CW-0019"},
        "effectiveDateTime": "2026-09-19T16:00:00Z", "issued": "2026-09-19T17:40:00Z",
        "valueQuantity": {"value": 2700.0, "unit": "ng/mL", "system": "http://unitsofmeasure.org",
                          "code": "ng/mL"}}


def test_a_closed_window_is_final_with_its_end(exported):
    _, resources = exported
    closed = [r for r in resources if r["resourceType"] == "DetectedIssue" and "end" in r["identifiedPeriod"]]
    assert closed and all(r["status"] == "final" for r in closed)
    assert all(r["status"] == "preliminary" for r in resources
               if r["resourceType"] == "DetectedIssue" and "end" not in r["identifiedPeriod"])


def test_mask_ids_hides_every_patient_and_infusion_id(sample_db, exported, tmp_path):
    masked = _export(sample_db, tmp_path / "masked.ndjson", "--mask-ids")
    text = json.dumps(masked)
    assert "CW-00" not in text
    patients = [r for r in masked if r["resourceType"] == "Patient"]
    assert len(patients) == 18 and all(p["id"].startswith("pt-") for p in patients)
    assert len(masked) == len(exported[1])


def test_fhir_is_for_windows_only(sample_db, tmp_path, capsys):
    out = tmp_path / "flags.ndjson"
    assert main(["export", "flags", "--db", str(sample_db), "--out", str(out)]) == 2
    assert "--format fhir applies to windows only" in capsys.readouterr().err


def test_a_censored_result_keeps_its_comparator(tmp_path):
    s = Scenario()
    s.infusion("P1", "2026-03-01 10:00", infusion_id="P1-I1")
    s.lab("P1", "fibrinogen", "2026-03-05 08:00", 50.0)
    s.con.execute("UPDATE stg.lab_results SET comparator = '<'").fetchall()
    source = s.con.execute("SELECT source_file || ':' || source_line FROM stg.lab_results").fetchall()[0][0]
    evidence = json.dumps([{"rule": "fibrinogen", "analyte": "fibrinogen", "value": 50.0, "unit": "mg/dL",
                            "at": "2026-03-05T13:00:00+00:00", "source": source}])
    windows = pa.table({"patient_id": ["P1"], "infusion_id": ["P1-I1"], "criteria_set": ["astct_iec_hs_2023"],
                        "status": ["criteria_met"],
                        "onset_at": pa.array([s.t("2026-03-05 08:00")], pa.timestamp("us", "UTC")),
                        "onset_day": [4], "end_at": pa.array([None], pa.timestamp("us", "UTC")),
                        "evidence": [evidence], "rules_version": ["test"]})
    out = tmp_path / "w.ndjson"
    assert write_fhir(s.con, windows, out, {"temperature": "8310-5"}) == 1
    observation = next(json.loads(line) for line in out.read_text().splitlines() if '"Observation"' in line)
    assert observation["valueQuantity"] == {"value": 50.0, "comparator": "<", "unit": "mg/dL",
                                            "system": "http://unitsofmeasure.org", "code": "mg/dL"}
    assert observation["effectiveDateTime"] == "2026-03-05T13:00:00Z"
