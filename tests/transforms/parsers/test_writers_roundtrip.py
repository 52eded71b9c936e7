"""Writers are the parsers' inverses: write then parse gives the same fields back."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.parsers.base import FEED_FIELDS
from transforms.parsers.fhir_r4 import parse_fhir_bundle, parse_fhir_ndjson, parse_fhir_resource
from transforms.parsers.fhir_writer import (blood_pressure_panel, event_administration,
                                            infusion_administration, infusion_procedure,
                                            lab_observation, resources_for, to_bundle, to_ndjson,
                                            vital_observation, write_ndjson)
from transforms.parsers.hl7_oru import parse_hl7_text
from transforms.parsers.hl7_writer import (iso_to_hl7_timestamp, join_messages, write_oru_message,
                                           write_oru_messages)


def lab(**fields) -> dict:
    out = dict.fromkeys(FEED_FIELDS["labs"])
    out.update(fields)
    return out


LABS = [
    lab(patient_id="E7654321", collected_at="2025-03-08T23:30:00-05:00", code="2276-4",
        code_system="LN", value="24310", unit="ng/mL", test_name="Ferritin", ref_low="30",
        ref_high="400", resulted_at="2025-03-09T03:15:00-04:00", result_status="F",
        accession="F-9001", source_system="EPIC"),
    lab(patient_id="E7654321", collected_at="2025-03-09T01:30:00-05:00", code="26881-3",
        code_system="LN", value="<5", unit="pg/mL", test_name="IL-6 | send-out ^ A&B ~ \\x",
        ref_high="7", resulted_at="2025-03-09T03:15:00-04:00", result_status="P",
        accession="F-9001", source_system="EPIC"),
    lab(patient_id="E7654321", collected_at="2025-03-09T01:30:00-05:00", code="SIL2R",
        code_system="L", value=">=7500", unit="U/mL", test_name="Soluble IL-2 receptor",
        ref_low="-2", ref_high="2400", resulted_at="2025-03-10T09:00:00Z", result_status="C",
        accession="S-17", source_system="EPIC"),
    lab(patient_id="E7654321", collected_at="2025-03-09T01:30:00-05:00", code="3255-7",
        code_system="LN", test_name="Fibrinogen", resulted_at="2025-03-09T05:09:00-04:00",
        result_status="X", accession="F-9001", source_system="EPIC"),
    lab(patient_id="MRN0042", collected_at="2025-03-03T08:00", code="5902-2", code_system="LN",
        value="1:2", unit="s", test_name="PT", ref_low="11", ref_high="13.5",
        result_status="F", accession="25-062-000123", source_system="MILLENNIUM"),
    lab(patient_id="MRN0042", collected_at="2025-03-03", code="48065-7", code_system="LN",
        value="see comment\nline two", unit="mg/L FEU", ref_low="0", ref_high="0.5",
        resulted_at="2025-03-03T10:00:00.25-05:00", result_status="F", accession="ACC|9",
        source_system="MILLENNIUM"),
]
VITALS = [
    {"patient_id": "E7654321", "measured_at": "2025-03-09T08:00:00-04:00", "kind": k, "value": v,
     "unit": u}
    for k, v, u in [("temperature", "39.2", "Cel"), ("heart_rate", "118", "/min"),
                    ("sbp", "84", "mm[Hg]"), ("dbp", "48", "mm[Hg]"), ("map", "60", "mm[Hg]"),
                    ("spo2", "91", "%"), ("o2_flow", "40", "L/min"),
                    ("o2_device", "high_flow", None)]
]


def z_as_offset(fields: dict) -> dict:
    """HL7 has no `Z`: UTC comes back as `+00:00`."""
    return {k: v.replace("Z", "+00:00") if isinstance(v, str) and k.endswith("_at") else v
            for k, v in fields.items()}


# --- HL7 ---------------------------------------------------------------------------------------

def test_hl7_labs_and_vitals_round_trip():
    text = write_oru_message(LABS[:4] + VITALS, control_id="RT-1")
    rows = list(parse_hl7_text(text))
    assert all(r.error is None for r in rows)
    assert [r.fields for r in rows if r.feed == "labs"] == [z_as_offset(f) for f in LABS[:4]]
    assert [r.fields for r in rows if r.feed == "vitals"] == VITALS


def test_hl7_batch_of_messages_with_lf_ends_round_trip():
    messages = list(write_oru_messages(LABS + VITALS, max_results=3))
    text = join_messages(messages, batch=True, segment_end="\n")
    assert text.startswith("FHS|") and "\r" not in text
    rows = list(parse_hl7_text(text))
    assert [r.fields for r in rows] == [z_as_offset(f) for f in LABS] + VITALS
    assert [r.line for r in rows] == [1, 1, 1, 2, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6]


def test_hl7_writer_applies_escapes_and_value_types():
    text = write_oru_message([LABS[0], LABS[1], LABS[4]], control_id="RT-2")
    obx = [s for s in text.split("\r") if s.startswith("OBX")]
    assert obx[0] == "OBX|1|NM|2276-4^Ferritin^LN||24310|ng/mL|30-400||||F"
    assert obx[1].startswith("OBX|2|SN|26881-3^IL-6 \\F\\ send-out \\S\\ A\\T\\B \\R\\ \\E\\x^LN||<^5|")
    assert obx[1].endswith("|P|||20250309013000-0500")   # OBX-14: its time differs from OBR-7
    assert obx[2] == "OBX|1|SN|5902-2^PT^LN||^1^:^2|s|11-13.5||||F"


def test_iso_to_hl7_timestamp():
    assert iso_to_hl7_timestamp("2025-03-09T03:15:00-04:00") == "20250309031500-0400"
    assert iso_to_hl7_timestamp("2025-03-09T03:15Z") == "202503090315+0000"
    assert iso_to_hl7_timestamp("2025-03-09") == "20250309"
    assert iso_to_hl7_timestamp("not a time|x") == "not a time\\F\\x"
    assert iso_to_hl7_timestamp(None) == ""


# any text but lone surrogates and CR (which HL7 can only carry as a line break, LF)
_texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"),
                 min_size=1, max_size=30).map(str.strip).filter(bool)
_numbers = st.decimals(min_value=-100000, max_value=100000, places=2, allow_nan=False).map(str)


@settings(max_examples=150, deadline=None)
@given(patient=_texts, name=_texts, code=_texts, accession=_texts, source=_texts, unit=_texts,
       value=st.one_of(_numbers, _numbers.map(lambda n: "<" + n.lstrip("-")), _texts),
       status=st.sampled_from(["F", "C", "P", "X"]))
def test_hl7_round_trip_of_arbitrary_text(patient, name, code, accession, source, unit, value, status):
    row = lab(patient_id=patient, collected_at="2025-01-02T03:04:05+01:00", code=code,
              code_system="L", value=value, unit=unit, test_name=name, result_status=status,
              accession=accession, source_system=source)
    [parsed] = parse_hl7_text(write_oru_message([row], control_id="H"))
    assert parsed.error is None
    assert parsed.fields == row


# --- FHIR --------------------------------------------------------------------------------------

def test_fhir_lab_observations_round_trip():
    for fields in LABS:
        [row] = parse_fhir_resource(lab_observation(fields), 1, "")
        if re.fullmatch(r"[<>]?=?[\d.]+", fields["value"] or "0"):
            assert row.fields == fields
        else:                               # text (`1:2`, a comment): valueString has no unit
            assert row.fields == dict(fields, unit=None)


def test_fhir_vitals_and_bp_panel_round_trip():
    for fields in VITALS:
        [row] = parse_fhir_resource(vital_observation(fields), 1, "")
        assert row.fields == fields
    panel = blood_pressure_panel(VITALS[2], VITALS[3])
    assert panel["code"]["coding"][0]["code"] == "85354-9"
    assert [r.fields for r in parse_fhir_resource(panel, 1, "")] == VITALS[2:4]


def test_fhir_infusions_and_events_round_trip():
    infusion = {"patient_id": "E7654321", "infused_at": "2025-03-01T10:42:00-05:00",
                "product": "axicabtagene ciloleucel", "infusion_id": "inf-1",
                "target_antigen": "CD19", "indication": "DLBCL", "site_timezone": None}
    for write in (infusion_procedure, infusion_administration):
        [row] = parse_fhir_resource(write(infusion), 1, "")
        assert (row.feed, row.fields) == ("infusions", infusion)
    for event_type, value in [("tocilizumab", "640"), ("corticosteroid", "10"), ("anakinra", "100"),
                              ("ruxolitinib", "10"), ("etoposide", "150"), ("emapalumab", "1"),
                              ("vasopressor", "1")]:
        event = {"patient_id": "E7654321", "event_at": "2025-03-09T09:10:00-04:00",
                 "event_type": event_type, "value": value}
        [row] = parse_fhir_resource(event_administration(event), 1, "")
        assert (row.feed, row.fields) == ("events", event)


def test_corrected_result_keeps_id_and_accession():
    first = lab_observation(LABS[0])
    corrected = lab_observation(dict(LABS[0], value="2431", result_status="C"))
    assert first["id"] == corrected["id"] and corrected["status"] == "corrected"


def test_ndjson_and_bundle_files_round_trip(tmp_path):
    resources = list(resources_for("labs", LABS[:4])) + list(resources_for("vitals", VITALS))
    path = tmp_path / "export.ndjson"
    assert write_ndjson(path, resources) == len(resources)
    assert path.read_text() == to_ndjson(resources)
    expected = LABS[:4] + VITALS
    assert [r.fields for r in parse_fhir_ndjson(path)] == expected
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps(to_bundle(resources)))
    rows = list(parse_fhir_bundle(bundle))
    assert [r.fields for r in rows] == expected
    assert [r.line for r in rows] == list(range(1, len(expected) + 1))


# --- the writers' fixes for the sample: values, units, doses, zones ------------------------------

def test_fhir_thousands_separator_is_a_number_and_a_non_ucum_unit_is_text():
    [row] = parse_fhir_resource(lab_observation(dict(LABS[0], value="1,250")), 1, "")
    assert row.fields["value"] == "1250" and row.fields["unit"] == "ng/mL"
    feu = lab_observation(dict(LABS[0], value="0.4", unit="mg/L FEU"))
    assert feu["valueQuantity"] == {"value": 0.4, "unit": "mg/L FEU"}          # no UCUM code
    assert lab_observation(dict(LABS[0], unit="10^3/uL"))["valueQuantity"]["unit"] == "10^3/uL"
    assert "system" not in lab_observation(dict(LABS[0], unit="10^3/uL"))["valueQuantity"]
    assert "subject" not in lab_observation(dict(LABS[0], patient_id=None))


def test_fhir_dose_with_unit_and_the_drug_the_value_names():
    def event(event_type, value):
        return {"patient_id": "P1", "event_at": "2026-07-21T10:30:00+02:00",
                "event_type": event_type, "value": value}
    toci = event_administration(event("tocilizumab", "8 mg/kg"))
    assert toci["dosage"] == {"text": "8 mg/kg", "dose": {"value": 8, "unit": "mg/kg",
                                                          "system": "http://unitsofmeasure.org",
                                                          "code": "mg/kg"}}
    dex = event_administration(event("corticosteroid", "methylprednisolone 1000 mg"))
    assert dex["medicationCodeableConcept"] == {"text": "methylprednisolone"}
    assert dex["dosage"]["dose"]["value"] == 1000
    # a value naming another drug keeps the event type's own name
    odd = event_administration(event("corticosteroid", "anakinra 100 mg"))
    assert odd["medicationCodeableConcept"] == {"text": "dexamethasone"}
    for resource, value in ((toci, "8 mg/kg"), (dex, "methylprednisolone 1000 mg")):
        [row] = parse_fhir_resource(resource, 1, "")
        assert row.fields["value"] == value        # the dose as the CSV events feed writes it
    assert "dosage" not in event_administration(event("vasopressor", "1"))


def test_fhir_infusion_sends_its_site_time_zone_as_tz_code():
    infusion = {"patient_id": "P1", "infused_at": "2026-07-12T13:00:00+02:00", "product": "axi-cel",
                "infusion_id": "P1-I1", "site_timezone": "Europe/Madrid"}
    extension = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/tz-code",
                                "valueCode": "Europe/Madrid"}]}
    assert infusion_procedure(infusion)["_performedDateTime"] == extension
    assert infusion_administration(infusion)["_effectiveDateTime"] == extension
    [row] = parse_fhir_resource(infusion_procedure(infusion), 1, "")
    assert row.fields["infused_at"] == infusion["infused_at"] and row.fields["product"] == "axi-cel"


def test_with_offset_reads_naive_times_as_the_loader_does():
    from transforms.parsers.fhir_writer import with_offset
    ny = "America/New_York"
    assert with_offset("2026-06-22T09:52:00", ny) == "2026-06-22T09:52:00-04:00"
    assert with_offset("2026-11-01T01:30:00", ny) == "2026-11-01T01:30:00-04:00"  # first 01:30
    assert with_offset("2026-03-08T02:30:00", ny) == "2026-03-08T02:30:00"        # skipped: as is
    for text in ("2026-06-22T09:52:00Z", "2026-06-22", "Jun 22 2026 09:52AM", None):
        assert with_offset(text, ny) == text
    assert with_offset("2026-06-22T09:52:00", None) == "2026-06-22T09:52:00"


# --- write_sample_feeds: the synth hook ------------------------------------------------------------

def _csv_lab(patient, at, loinc, value, accession, status="F", resulted=None, **more):
    row = {"patient_id": patient, "collected_at": at, "loinc": loinc, "value": value,
           "unit": "ng/mL", "test_name": "Ferritin", "ref_low": "30", "ref_high": "400",
           "resulted_at": resulted or at, "result_status": status, "accession": accession,
           "source_system": "LIS"}
    return {**row, **more}


def _csv_vitals(patient, at, **values):
    units = {"temperature": "Cel", "sbp": "mm[Hg]", "dbp": "mm[Hg]", "o2_device": ""}
    return [{"patient_id": patient, "measured_at": at, "kind": k, "value": v, "unit": units[k]}
            for k, v in values.items()]


FEEDS = {
    "labs": [_csv_lab("A", "2026-06-01T08:00:00Z", "2276-4", "900", "X1"),
             _csv_lab("A", "2026-06-01T08:00:00Z", "1988-5", "12.50", "X1", unit="mg/L", test_name="CRP"),
             _csv_lab("", "2026-06-01T08:00:00Z", "2276-4", "900", "X1"),        # no patient: A's block
             _csv_lab("A", "2026-06-01T08:00:00Z", "2276-4", "950", "X1", status="C",
                      resulted="2026-06-02T08:00:00Z"),
             _csv_lab("B", "2026-06-03T08:00:00-05:00", "2276-4", "1,250", "Y1"),
             _csv_lab("B", "2026-06-03T08:00:00-05:00", "2276-4", "1,250", "Y1"),  # re-sent copy
             _csv_lab("C", "2026-06-03T08:00:00-05:00", "2276-4", "10", "Z1")],
    "labs_resend": [_csv_lab("B", "2026-06-03T08:00:00-05:00", "2276-4", "1,250", "Y1")],
    "vitals": (_csv_vitals("A", "2026-06-01T09:00:00", temperature="38.50", sbp="120", dbp="80",
                           o2_device="nasal_cannula")
               + _csv_vitals("A", "2026-06-01T09:00:00", temperature="38.50")),       # re-sent
    "infusions": [{"patient_id": "A", "infused_at": "2026-05-30T10:00:00-04:00", "product": "axi-cel",
                   "infusion_id": "A-I1", "target_antigen": "CD19", "indication": "DLBCL",
                   "site_timezone": "America/New_York"}],
    "events": [{"patient_id": "A", "event_at": "2026-06-01T10:00:00-04:00", "event_type": et, "value": v}
               for et, v in (("tocilizumab", "8 mg/kg"), ("crs_grade", "2"), ("vasopressor", "0"),
                             ("vasopressor", "1"), ("hemophagocytosis", "true"))],
}


def test_hl7_sample_feeds_round_trip(tmp_path):
    from transforms.parsers.hl7_oru import parse_hl7_file
    from transforms.parsers.hl7_writer import sample_rows, write_sample_feeds
    (tmp_path / "hl7").mkdir()
    (tmp_path / "hl7" / "stale.hl7").write_text("MSH|")
    paths = write_sample_feeds(FEEDS, tmp_path, patients=["A", "B"])
    assert [p.name for p in paths] == ["labs_batch.hl7", "vitals.hl7", "labs_resend.hl7"]
    assert sorted(p.name for p in (tmp_path / "hl7").iterdir()) == sorted(p.name for p in paths)
    batch, vitals, resend = (p.read_bytes().decode("utf-8") for p in paths)
    assert batch.startswith("FHS|") and batch.endswith("BTS|5\rFTS|1\r") and "\n" not in batch
    assert vitals.startswith("MSH|") and vitals.count("MSH|") == 2     # the re-sent reading apart
    assert "|Nasal cannula" in vitals
    labs = [r.fields for r in parse_hl7_file(paths[0])]
    assert labs == [z_as_offset({**f, "code_system": "LN"}) for f in sample_rows(FEEDS["labs"], ["A", "B"])]
    assert [r.fields["value"] for r in parse_hl7_file(paths[1])] == ["38.50", "120", "80", "nasal_cannula",
                                                                     "38.50"]
    assert [r.fields["value"] for r in parse_hl7_file(paths[2])] == ["1,250"]
    assert "C" not in {r["patient_id"] for r in labs}


def test_fhir_sample_feeds_round_trip(tmp_path):
    from transforms.parsers.fhir_writer import write_sample_feeds
    paths = write_sample_feeds(FEEDS, tmp_path, patients=None)
    assert [p.name for p in paths] == ["Observation.ndjson", "Procedure.ndjson",
                                       "MedicationAdministration.ndjson", "result_versions_bundle.json"]
    observations = [json.loads(line) for line in paths[0].read_text().splitlines()]
    rows = list(parse_fhir_ndjson(paths[0]))
    labs = [r.fields for r in rows if r.feed == "labs" and r.error is None]
    assert [(f["patient_id"], f["value"], f["result_status"]) for f in labs] == [
        ("A", "900", "F"), ("A", "12.5", "F"), ("A", "950", "C"), ("B", "1250", "F"),
        ("B", "1250", "F"), ("C", "10", "F")]
    assert [r.error for r in rows if r.error] == ["fhir: line 3: Observation without a Patient subject"]
    # a correction is the next version of the same resource, an unchanged re-send the same one
    versions = [(o["id"], o["meta"]["versionId"]) for o in observations[:7]]
    assert versions[3] == (versions[0][0], "2") and versions[5] == (versions[4][0], "1")
    vitals = [r.fields for r in rows if r.feed == "vitals"]
    assert {f["measured_at"] for f in vitals} == {"2026-06-01T09:00:00-04:00"}   # A's zone
    assert [f["kind"] for f in vitals] == ["temperature", "sbp", "dbp", "o2_device", "temperature"]
    assert vitals[3]["value"] == "nasal_cannula"
    assert sum(o["code"]["coding"][0]["code"] == "85354-9" for o in observations) == 1
    [infusion] = [r.fields for r in parse_fhir_ndjson(paths[1])]
    assert infusion["infusion_id"] == "A-I1" and infusion["site_timezone"] == "America/New_York"
    events = [r.fields for r in parse_fhir_ndjson(paths[2])]
    assert [(e["event_type"], e["value"]) for e in events] == [("tocilizumab", "8 mg/kg"), ("vasopressor", "1")]
    bundle = json.loads(paths[3].read_text())
    entries = [(e["fullUrl"], e["resource"]["meta"]["versionId"]) for e in bundle["entry"]]
    assert len(entries) == 2 == len(set(entries)) and len({u for u, _ in entries}) == 1  # bdl-7
    assert [r.fields["result_status"] for r in parse_fhir_bundle(paths[3])] == ["F", "C"]
