"""HL7 v2 and FHIR R4 through the same loader: counts add up, positions in quarantine, and a
result corrected in another format is corrected, not duplicated."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cartwatch.build import build
from cartwatch.loader import load_file
from transforms.parsers.fhir_writer import lab_observation, to_bundle, to_ndjson
from transforms.parsers.hl7_writer import join_messages, write_oru_message
from transforms.rules import load_rules

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
UTC = timezone.utc
LAB = {"patient_id": "P1", "collected_at": "2026-06-03T08:00:00+00:00", "code": "2276-4",
       "code_system": "LN", "value": "900", "unit": "ng/mL", "test_name": "Ferritin",
       "ref_low": "30", "ref_high": "400", "resulted_at": "2026-06-03T10:00:00+00:00",
       "result_status": "F", "accession": "ACC-1", "source_system": "LIS"}
CSV_HEADER = "patient_id,collected_at,loinc,value,unit,ref_low,ref_high,resulted_at,result_status,accession"


@pytest.mark.parametrize("fixture", sorted(p.name for p in (FIXTURES / "hl7").glob("*.hl7"))
                         + sorted(p.name for p in (FIXTURES / "fhir").glob("*.*json")))
def test_every_fixture_loads_and_counts_add_up(store, ctx, fixture):
    path = next((FIXTURES / sub / fixture) for sub in ("hl7", "fhir") if (FIXTURES / sub / fixture).exists())
    report = load_file(store, path, ctx)
    assert report.status == "loaded", report.reason
    assert report.adds_up() and report.read > 0
    positions = store.execute("SELECT line, reason FROM quarantine.rows").fetchall()
    assert all(line >= 1 and reason for line, reason in positions)


def test_hl7_errors_are_quarantined_with_message_number(store, ctx):
    report = load_file(store, FIXTURES / "hl7" / "oru_errors.hl7", ctx)
    reasons = store.execute("SELECT line, reason FROM quarantine.rows ORDER BY line").fetchall()
    assert report.quarantined == len(reasons) > 0
    assert any(reason.startswith("hl7: message") for _, reason in reasons)


def _ferritin(store, as_of=datetime(2026, 11, 1, tzinfo=UTC)):
    build(store, load_rules(), as_of=as_of, as_loaded=False, site_tz="America/New_York")
    return store.execute("SELECT value, result_status, source_format FROM derived.lab_results").fetchall()


def test_csv_result_corrected_by_hl7_is_corrected_not_duplicated(store, ctx, tmp_path):
    csv = tmp_path / "labs.csv"
    csv.write_text(CSV_HEADER + "\nP1,2026-06-03T08:00:00Z,2276-4,900,ng/mL,30,400,2026-06-03T10:00:00Z,F,ACC-1\n")
    load_file(store, csv, ctx)
    correction = {**LAB, "value": "9000", "result_status": "C", "resulted_at": "2026-06-04T09:00:00+00:00"}
    hl7 = tmp_path / "corr.hl7"
    hl7.write_text(join_messages([write_oru_message([correction], control_id="M1")]))
    report = load_file(store, hl7, ctx)
    assert (report.accepted, report.quarantined) == (1, 0)
    assert _ferritin(store) == [(9000.0, "C", "hl7")]
    assert _ferritin(store, as_of=datetime(2026, 6, 4, 8, tzinfo=UTC)) == [(900.0, "F", "csv")]


def test_hl7_result_cancelled_by_fhir_is_withdrawn(store, ctx, tmp_path):
    hl7 = tmp_path / "orig.hl7"
    hl7.write_text(join_messages([write_oru_message([LAB], control_id="M1")]))
    load_file(store, hl7, ctx)
    cancel = lab_observation({**LAB, "result_status": "X", "value": None,
                              "resulted_at": "2026-06-05T10:00:00+00:00"})
    ndjson = tmp_path / "cancel.ndjson"
    ndjson.write_text(to_ndjson([cancel]))
    report = load_file(store, ndjson, ctx)
    assert (report.accepted, report.quarantined) == (1, 0), store.execute("SELECT reason FROM quarantine.rows").fetchall()
    assert _ferritin(store) == []


def test_same_result_in_three_formats_is_stored_once(store, ctx, tmp_path):
    csv = tmp_path / "labs.csv"
    csv.write_text(CSV_HEADER + "\nP1,2026-06-03T08:00:00Z,2276-4,900,ng/mL,30,400,2026-06-03T10:00:00Z,F,ACC-1\n")
    hl7 = tmp_path / "same.hl7"
    hl7.write_text(join_messages([write_oru_message([LAB], control_id="M1")]))
    bundle = tmp_path / "same.json"
    bundle.write_text(json.dumps(to_bundle([lab_observation(LAB)])))
    reports = [load_file(store, p, ctx) for p in (csv, hl7, bundle)]
    assert [(r.accepted, r.duplicate) for r in reports] == [(1, 0), (0, 1), (0, 1)]


# --- files that give no row, and odd line ends (issue 12 F3) ----------------------------------

def _stored(store) -> tuple[int, int, int]:
    return tuple(store.execute("SELECT (SELECT count(*) FROM meta.files), (SELECT count(*) FROM raw.received), "
                               "(SELECT count(*) FROM meta.validations)").fetchone())


def test_hl7_with_vertical_tab_segment_ends_loads_every_row(store, ctx, tmp_path):
    """It was recorded as loaded with 0 rows read, so a re-sent file was ignored."""
    crlf = (FIXTURES / "hl7" / "oru_v251_batch_crlf.hl7").read_bytes()
    path = tmp_path / "vt.hl7"
    path.write_bytes(crlf.replace(b"\r\n", b"\x0b"))
    report = load_file(store, path, ctx)
    assert (report.status, report.read, report.accepted, report.quarantined) == ("loaded", 14, 13, 1)
    assert store.execute("SELECT rows_read FROM meta.files").fetchall() == [(14,)]


BUNDLE_HEAD = '{"resourceType": "Bundle", "type": "collection"'


@pytest.mark.parametrize("name, data, reason", [
    ("labs.csv", b"", "no rows: the file is empty"),
    ("labs.csv", (CSV_HEADER + "\n,,,\n").encode(), "no rows: a header without data rows"),
    ("labs.csv", b"\xef\xbb\xbf\r\n \r\n", "no rows: the file holds only blank lines"),
    ("obs.ndjson", b"", "no rows: the file is empty"),
    ("obs.ndjson", b" \r\n\t\n\n", "no rows: the file holds only blank lines"),
    ("bundle.json", b"", "no rows: the file is empty"),
    ("bundle.json", b"\n \n", "no rows: the file holds only blank lines"),
    ("bundle.json", (BUNDLE_HEAD + ', "entry": []}').encode(), "no rows: no resource (a Bundle without entries)"),
    ("bundle.json", (BUNDLE_HEAD + "}").encode(), "no rows: no resource (a Bundle without entries)"),
    ("batch.hl7", b"\x0b\r\n", "no rows: the file holds only blank lines"),
    ("batch.hl7", b"FHS|^~\\&|LIS\rBHS|^~\\&|LIS\rBTS|0\rFTS|1\r", "no rows: no message, only batch header segments"),
])
def test_a_file_without_rows_is_skipped_and_not_recorded(store, ctx, tmp_path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    report = load_file(store, path, ctx)
    assert (report.status, report.reason, report.read) == ("skipped", reason, 0)
    assert _stored(store) == (0, 0, 0)
    assert load_file(store, path, ctx).status == "skipped"      # not "already_loaded"
    fixed = {".csv": CSV_HEADER + "\nP1,2026-06-03T08:00:00Z,2276-4,900,ng/mL,30,400,,F,ACC-1\n",
             ".ndjson": to_ndjson([lab_observation(LAB)]),
             ".json": json.dumps(to_bundle([lab_observation(LAB)])),
             ".hl7": join_messages([write_oru_message([LAB], control_id="M1")])}[path.suffix]
    path.write_text(fixed, encoding="utf-8")
    assert (load_file(store, path, ctx).accepted, _stored(store)[:2]) == (1, (1, 1))


def test_a_file_recorded_with_no_rows_by_an_older_release_is_read_again(store, ctx, tmp_path):
    path = tmp_path / "vt.hl7"
    path.write_bytes((FIXTURES / "hl7" / "oru_v251_batch_crlf.hl7").read_bytes().replace(b"\r\n", b"\x0b"))
    from cartwatch.loader import file_sha256
    store.execute("INSERT INTO meta.files VALUES (?, ?, 'hl7', '', now(), 0, 0, 0, 0, NULL)",
                  [file_sha256(path), str(path)])
    report = load_file(store, path, ctx)
    assert (report.status, report.read, report.accepted) == ("loaded", 14, 13)
    assert store.execute("SELECT rows_read FROM meta.files").fetchall() == [(14,)]
    assert load_file(store, path, ctx).status == "already_loaded"
