"""FHIR R4 parser: an NDJSON export and a transaction Bundle shaped like real ones, exact fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transforms.parsers.base import FEED_FIELDS
from transforms.parsers.codes import classify_medication, o2_device_name
from transforms.parsers.fhir_r4 import parse_fhir_bundle, parse_fhir_ndjson, parse_fhir_resource

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fhir"
SUBJECT = {"reference": "Patient/P1"}


@pytest.fixture(scope="module")
def export():
    rows = list(parse_fhir_ndjson(FIXTURES / "export.ndjson"))
    by_line: dict[int, list] = {}
    for r in rows:
        by_line.setdefault(r.line, []).append(r)
    return by_line


def lab(**fields) -> dict:
    out = dict.fromkeys(FEED_FIELDS["labs"])
    out.update(fields)
    return out


def vital(patient, at, kind, value, unit):
    return {"patient_id": patient, "measured_at": at, "kind": kind, "value": value, "unit": unit}


FERRITIN = lab(patient_id="E7654321", collected_at="2025-03-08T23:30:00-05:00", code="2276-4",
               code_system="LN", unit="ng/mL", test_name="Ferritin [Mass/volume] in Serum or Plasma",
               ref_low="30", ref_high="400", accession="F-9001", source_system="EPIC")


def test_every_non_blank_line_gives_rows(export):
    lines = (FIXTURES / "export.ndjson").read_text().splitlines()
    assert sorted(export) == [n for n, text in enumerate(lines, 1) if text.strip()]
    assert all(r.raw == lines[r.line - 1] for rows in export.values() for r in rows)


def test_crlf_line_ends_give_the_same_rows(tmp_path):
    data = (FIXTURES / "export.ndjson").read_bytes()
    assert b"\r" not in data
    crlf = tmp_path / "crlf.ndjson"
    crlf.write_bytes(data.replace(b"\n", b"\r\n"))
    rows = list(parse_fhir_ndjson(crlf))
    assert len(rows) == 26 and rows == list(parse_fhir_ndjson(FIXTURES / "export.ndjson"))


def test_lab_observations(export):
    assert [r.fields for r in export[1]] == [
        dict(FERRITIN, value="24310", resulted_at="2025-03-09T03:15:00-04:00", result_status="F")]
    # valueQuantity.comparator prefixed; effectivePeriod.start as collection time
    assert [r.fields for r in export[2]] == [lab(
        patient_id="MRN0042", collected_at="2025-03-03T08:00:00-05:00", code="26881-3",
        code_system="LN", value="<5", unit="pg/mL",
        test_name="Interleukin 6 [Mass/volume] in Serum or Plasma", ref_high="7",
        resulted_at="2025-03-03T10:00:00-05:00", result_status="F", accession="25-062-000123",
        source_system="MILLENNIUM")]
    # local code only: its system URL is the code system; accession from an untyped identifier
    assert [r.fields for r in export[3]] == [lab(
        patient_id="00123456", collected_at="2025-03-02T06:00:00-05:00", code="SIL2R",
        code_system="http://uhosp.example.org/fhir/CodeSystem/lab-codes", value="5400",
        unit="U/mL", test_name="Soluble IL-2 receptor", ref_high="2400",
        resulted_at="2025-03-02T07:40:00-05:00", result_status="F", accession="ACC101")]
    # local coding first, LOINC second: LOINC is preferred; decimal value kept as text
    [fib] = export[4]
    assert (fib.fields["code"], fib.fields["code_system"], fib.fields["value"], fib.fields["unit"]) == (
        "3255-7", "LN", "1.28", "g/L")
    assert export[20][0].fields["value"] == "hemolyzed, recollect"


def test_correction_and_cancellation_keep_the_accession(export):
    assert [r.fields for r in export[5]] == [
        dict(FERRITIN, value="2431", resulted_at="2025-03-09T05:09:00-04:00", result_status="C")]
    # cancelled without value is a row (status X), not an error
    assert [r.fields for r in export[6]] == [lab(
        patient_id="E7654321", collected_at="2025-03-09T01:30:00-05:00", code="3255-7",
        code_system="LN", test_name="Fibrinogen", resulted_at="2025-03-09T05:09:00-04:00",
        result_status="X", accession="F-9001")]


def test_vital_signs_bp_panel_pulse_oximetry_and_device(export):
    at = "2025-03-09T08:00:00-04:00"
    later = "2025-03-09T08:15:00-04:00"
    assert [r.fields for r in export[7]] == [vital("E7654321", at, "temperature", "39.2", "Cel")]
    assert [r.fields for r in export[8]] == [vital("E7654321", at, "sbp", "84", "mm[Hg]"),
                                             vital("E7654321", at, "dbp", "48", "mm[Hg]")]
    assert [r.fields for r in export[9]] == [vital("E7654321", later, "spo2", "89", "%"),
                                             vital("E7654321", later, "o2_flow", "40", "L/min")]
    assert [r.fields for r in export[10]] == [vital("E7654321", later, "o2_device", "high_flow", None)]
    assert {r.feed for n in (7, 8, 9, 10) for r in export[n]} == {"vitals"}


def test_infusions_and_drug_events(export):
    assert [(r.feed, r.fields) for r in export[11]] == [("infusions", {
        "patient_id": "E7654321", "infused_at": "2025-03-01T10:42:00-05:00",
        "product": "Yescarta (axicabtagene ciloleucel) infusion", "infusion_id": "inf-E7654321-1",
        "target_antigen": "CD19", "indication": "DLBCL", "site_timezone": None})]
    assert [(r.feed, r.fields) for r in export[21]] == [("infusions", {
        "patient_id": "MRN0042", "infused_at": "2025-02-24T11:00:00-05:00",
        "product": "KYMRIAH (tisagenlecleucel) suspension for IV infusion",
        "infusion_id": "inf-MRN0042-1", "target_antigen": "CD19", "indication": None,
        "site_timezone": None})]
    events = [(r.feed, r.fields) for n in (12, 13, 14) for r in export[n]]
    assert events == [
        ("events", {"patient_id": "E7654321", "event_at": "2025-03-09T09:10:00-04:00",
                    "event_type": "tocilizumab", "value": "640"}),
        ("events", {"patient_id": "E7654321", "event_at": "2025-03-09T12:00:00-04:00",
                    "event_type": "corticosteroid", "value": "10"}),
        ("events", {"patient_id": "E7654321", "event_at": "2025-03-09T13:05:00-04:00",
                    "event_type": "vasopressor", "value": "1"}),
    ]


def test_error_rows_with_reasons(export):
    errors = {n: (rows[0].feed, rows[0].error) for n, rows in export.items() if rows[0].error}
    assert errors == {
        15: ("events", "fhir: line 15: medication not counted: vasopressin is not counted as a "
                       "vasopressor agent in ASTCT 2019 CRS grading"),
        16: ("labs", "fhir: line 16: unsupported resourceType Patient"),
        17: ("labs", "fhir: line 17: invalid JSON: unexpected character, expected ',' or '}' "
                     "at column 48"),
        19: ("labs", "fhir: line 19: Observation without a Patient subject"),
        22: ("vitals", "fhir: line 22: vital-signs Observation with code 29463-7 that is not a "
                       "tracked vital sign"),
        23: ("labs", "fhir: line 23: Observation without value (dataAbsentReason Specimen lost)"),
        24: ("vitals", "fhir: line 24: vital sign temperature cancelled or entered in error "
                       "(not a measurement)"),
        25: ("labs", "fhir: line 25: unsupported resourceType Encounter"),
    }


def test_bundle_entries_urn_references_and_non_cart_procedures():
    rows = list(parse_fhir_bundle(FIXTURES / "bundle.json"))
    assert [(r.line, r.feed, r.error) for r in rows if r.error] == [
        (1, "labs", "fhir: entry 1: unsupported resourceType Patient"),
        (4, "labs", "fhir: entry 4: entry without a resource (request DELETE)"),
        (5, "infusions", "fhir: entry 5: Procedure that is not a CAR-T infusion"),
    ]
    ok = {r.line: r.fields for r in rows if not r.error}
    assert ok[2] == lab(patient_id="CH-778899", collected_at="2025-03-10T11:30:00+01:00",
                        code="2532-0", code_system="LN", value="612", unit="U/L",
                        test_name="Lactate dehydrogenase", ref_low="122", ref_high="222",
                        resulted_at="2025-03-10T11:55:00+01:00", result_status="F",
                        accession="ACC-777")
    # absolute, versioned reference
    assert (ok[3]["patient_id"], ok[3]["result_status"], ok[3]["value"]) == ("CH-778899", "P", "1.2")
    # a CAR-T procedure without a product name: infusion, product = its display
    assert ok[6] == {"patient_id": "CH-778899", "infused_at": "2025-03-03T14:20:00+01:00",
                     "product": "Chimeric antigen receptor T-cell therapy",
                     "infusion_id": "inf-CH-778899-1", "target_antigen": None, "indication": None,
                     "site_timezone": None}
    assert json.loads(rows[1].raw)["resource"]["identifier"][0]["value"] == "ACC-777"


def test_single_resource_json_and_invalid_bundle(tmp_path):
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"resourceType": "Observation", "status": "final",
                               "code": {"coding": [{"system": "http://loinc.org", "code": "1988-5"}]},
                               "subject": SUBJECT, "valueQuantity": {"value": 12, "unit": "mg/L"}}))
    [row] = parse_fhir_bundle(one)
    assert (row.line, row.fields["code"], row.fields["value"], row.fields["unit"]) == (1, "1988-5", "12", "mg/L")
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Bundle", "entry": [')
    [err] = parse_fhir_bundle(bad)
    assert err.error.startswith("fhir: invalid JSON: ")


@pytest.mark.parametrize("status, expected", [
    ("final", "F"), ("amended", "C"), ("corrected", "C"), ("preliminary", "P"),
    ("cancelled", "X"), ("entered-in-error", "X"), ("registered", "registered"),
])
def test_status_mapping(status, expected):
    res = {"resourceType": "Observation", "status": status, "subject": SUBJECT,
           "code": {"coding": [{"system": "http://loinc.org", "code": "2276-4"}]},
           "valueQuantity": {"value": 100.0, "unit": "ng/mL"}}
    [row] = parse_fhir_resource(res, 1, "{}")
    assert row.fields["result_status"] == expected and row.fields["value"] == "100"


@pytest.mark.parametrize("subject, patient", [
    ({"reference": "Patient/ABC"}, "ABC"),
    ({"reference": "https://fhir.example.org/r4/Patient/ABC/_history/2"}, "ABC"),
    ({"identifier": {"system": "urn:mrn", "value": "MRN-1"}}, "MRN-1"),
    ({"reference": "Group/G1"}, None), ({"reference": "urn:uuid:unknown"}, None), ("Patient/ABC", None),
])
def test_subject_references(subject, patient):
    res = {"resourceType": "Observation", "status": "final", "subject": subject,
           "code": {"coding": [{"system": "http://loinc.org", "code": "2276-4"}]}, "valueString": "x"}
    [row] = parse_fhir_resource(res, 3, "{}")
    assert row.fields.get("patient_id") == patient
    if patient is None:
        assert row.error == "fhir: line 3: Observation without a Patient subject"


def test_uncategorised_observation_is_decided_by_its_code():
    base = {"resourceType": "Observation", "status": "final", "subject": SUBJECT}
    temp = dict(base, code={"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
                valueQuantity={"value": 38.4, "code": "Cel"})
    crp = dict(base, code={"coding": [{"system": "http://loinc.org", "code": "1988-5"}]},
               valueQuantity={"value": 3, "unit": "mg/L"})
    social = dict(crp, category=[{"coding": [{"code": "social-history"}]}])
    assert parse_fhir_resource(temp, 1, "")[0].feed == "vitals"
    assert parse_fhir_resource(crp, 1, "")[0].feed == "labs"
    assert parse_fhir_resource(social, 1, "")[0].error == \
        "fhir: line 1: Observation category social-history not handled"


def test_not_done_administrations_and_untracked_drugs():
    ma = {"resourceType": "MedicationAdministration", "subject": SUBJECT,
          "medicationCodeableConcept": {"text": "tocilizumab"}, "effectiveDateTime": "2025-01-01"}
    assert parse_fhir_resource(dict(ma, status="not-done"), 2, "")[0].error == \
        "fhir: line 2: MedicationAdministration with status not-done (not given)"
    assert parse_fhir_resource(dict(ma, medicationCodeableConcept={"text": "acetaminophen"}), 2, "")[0].error == \
        "fhir: line 2: medication not tracked by cartwatch (acetaminophen)"
    proc = {"resourceType": "Procedure", "status": "entered-in-error", "subject": SUBJECT,
            "code": {"text": "Kymriah infusion"}}
    assert parse_fhir_resource(proc, 2, "")[0].error == \
        "fhir: line 2: Procedure with status entered-in-error (not performed)"


@pytest.mark.parametrize("text, infusion", [
    ("Yescarta infusion", True), ("CAR-T cell infusion", True), ("Chimeric antigen receptor T-cell therapy", True),
    ("Leukapheresis for CAR-T manufacturing", False), ("Kymriah apheresis collection", False),
    ("Bone marrow biopsy", False), ("Scar treatment", False),
])
def test_car_t_procedures(text, infusion):
    proc = {"resourceType": "Procedure", "status": "completed", "subject": SUBJECT,
            "code": {"text": text}, "performedDateTime": "2025-03-01T10:00:00Z"}
    [row] = parse_fhir_resource(proc, 1, "")
    assert (row.error is None) == infusion
    if infusion:
        assert row.fields["product"] == text and row.fields["infused_at"] == "2025-03-01T10:00:00Z"


@pytest.mark.parametrize("text, device", [
    ("Nasal cannula", "nasal_cannula"), ("NC 2 L/min", "nasal_cannula"),
    ("High flow nasal cannula", "high_flow"), ("HFNC", "high_flow"),
    ("Non-rebreather oxygen mask", "non_rebreather"), ("Simple face mask", "face_mask"),
    ("Venturi mask 40%", "venturi"), ("BiPAP", "bipap"), ("CPAP via face mask", "cpap"),
    ("Mechanical ventilation", "mechanical_ventilation"), ("Room air", "room_air"),
    ("room_air", "room_air"), ("nasal_cannula", "nasal_cannula"),
    ("Nasal cannula or venturi", None), ("mask", None), ("", None), (None, None),
])
def test_o2_device_names(text, device):
    assert o2_device_name(text) == device


@pytest.mark.parametrize("text, feed, name", [
    ("Yescarta", "infusions", "axicabtagene ciloleucel"), ("cilta-cel", "infusions", "ciltacabtagene autoleucel"),
    ("Abecma 300 x 10^6 CAR+ T cells", "infusions", "idecabtagene vicleucel"),
    ("Breyanzi", "infusions", "lisocabtagene maraleucel"), ("TECARTUS", "infusions", "brexucabtagene autoleucel"),
    ("Actemra 8 mg/kg", "events", "tocilizumab"), ("Solu-Medrol 1 g", "events", "corticosteroid"),
    ("hydrocortisone", "events", "corticosteroid"), ("Kineret", "events", "anakinra"),
    ("Jakafi", "events", "ruxolitinib"), ("VePesid", "events", "etoposide"),
    ("Gamifant", "events", "emapalumab"), ("Levophed", "events", "vasopressor"),
    ("phenylephrine", "events", "vasopressor"), ("vasopressin", "", "vasopressin"),
])
def test_medication_names(text, feed, name):
    med = classify_medication(text)
    assert (med.feed, med.name) == (feed, name)
