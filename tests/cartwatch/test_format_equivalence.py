"""The sample patients delivered as CSV, HL7 v2 or FHIR R4 give the same time series.

Three in-memory stores, built as of data/sample/AS_OF with the sample's site time zone:

- csv:  labs.csv + labs_resend.csv + vitals.csv + infusions.csv + events.csv
- hl7:  hl7/*.hl7 (labs, re-sent labs, vitals) + the same CSV infusions and events
- fhir: fhir/*.ndjson and the Bundle (labs, vitals, infusions, drug events) + the CSV events
        FHIR has no form for (crs_grade, hemophagocytosis, a vasopressor count other than 1)

each holding only the patients data/sample carries in all three formats (the CSV files are cut to
those patients; a malformed row without patient_id stays with the patient it sits among).
`derived.timeline` must be equal row for row, values and times exactly: every format carries the
same digits (`12.50` and 12.5 are one double) and the same instant, and the same normalizers and
unit conversions read them. The FHIR parser reads the infusion's site zone (tz-code extension) and the dose text, so FHIR
infusions and drug events are duplicates of their CSV rows.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cartwatch.build import build
from cartwatch.ingest import staging_reference
from cartwatch.loader import load_file
from cartwatch.store import open_store
from sample_paths import LOAD_CLOCK, SAMPLE, SITE_TZ
from transforms.parsers.fhir_writer import has_fhir_form, lab_observation, to_ndjson
from transforms.parsers.hl7_writer import (SAMPLE_PATIENTS, join_messages, sample_rows,
                                           write_oru_message)

AS_OF = datetime.fromisoformat((SAMPLE / "AS_OF").read_text().strip().replace("Z", "+00:00"))
HL7_FILES = ("labs_batch.hl7", "labs_resend.hl7", "vitals.hl7")
FHIR_FILES = ("Observation.ndjson", "Procedure.ndjson", "MedicationAdministration.ndjson",
              "result_versions_bundle.json")
TIMELINE = ("SELECT patient_id, infusion_id, analyte, value, unit, observed_at, day, uln, lln, "
            "baseline FROM derived.timeline ORDER BY ALL")
VITALS_TIMELINE = ("SELECT patient_id, infusion_id, kind, value, value_text, unit, observed_at, day "
                   "FROM derived.vitals_timeline ORDER BY ALL")


def _csv_rows(name: str) -> tuple[list[str], list[dict]]:
    text = (SAMPLE / name).read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


def _write_csv(path: Path, header: list[str], rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def sample_csv(name: str, folder: Path, keep=lambda row: True,
               patients=SAMPLE_PATIENTS) -> Path:
    """`name` cut to the patients (a row without patient_id stays with the rows around it)."""
    header, rows = _csv_rows(name)
    kept, inside = [], False
    for row in rows:
        if row["patient_id"]:
            inside = row["patient_id"] in patients
        if inside and keep(row):
            kept.append(row)
    return _write_csv(folder / name, header, kept)


def _store(rules, files: list[Path]):
    con = open_store(":memory:")
    ctx = staging_reference(con, rules, SITE_TZ, LOAD_CLOCK)
    reports = {}
    for path in files:
        report = load_file(con, path, ctx)
        assert report.status == "loaded" and report.adds_up(), report
        reports[path.name] = report
    build(con, rules, as_of=AS_OF, as_loaded=False, site_tz=SITE_TZ)
    return con, reports


@pytest.fixture(scope="module")
def stores(rules, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample_csv")
    infusions, events = sample_csv("infusions.csv", folder), sample_csv("events.csv", folder)
    fhir_folder = tmp_path_factory.mktemp("fhir_events")
    fhir_events = sample_csv("events.csv", fhir_folder, keep=lambda row: not has_fhir_form(row))
    made = {
        "csv": _store(rules, [sample_csv(n, folder) for n in ("labs.csv", "labs_resend.csv",
                                                               "vitals.csv")] + [infusions, events]),
        "hl7": _store(rules, [SAMPLE / "hl7" / n for n in HL7_FILES] + [infusions, events]),
        "fhir": _store(rules, [SAMPLE / "fhir" / n for n in FHIR_FILES] + [fhir_events]),
    }
    yield {name: con for name, (con, _) in made.items()}, {n: r for n, (_, r) in made.items()}
    for con, _ in made.values():
        con.close()


def _rows(con, sql: str, params=None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def test_committed_hl7_and_fhir_files_are_the_writers_output(tmp_path):
    """data/sample/hl7 and fhir are what write_sample_feeds makes of the committed CSV files
    (regenerate with the command in data/sample/README.md when a writer changes)."""
    from transforms.parsers import fhir_writer, hl7_writer
    feeds = {name: _csv_rows(f"{name}.csv")[1]
             for name in ("labs", "labs_resend", "vitals", "infusions", "events")}
    written = hl7_writer.write_sample_feeds(feeds, tmp_path) + fhir_writer.write_sample_feeds(feeds, tmp_path)
    fresh = {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in written}
    committed = {p.relative_to(SAMPLE).as_posix(): p.read_bytes()
                 for folder in ("hl7", "fhir") for p in sorted((SAMPLE / folder).iterdir())}
    assert sorted(fresh) == sorted(committed)
    assert [name for name in fresh if fresh[name] != committed[name]] == []


def test_each_format_carries_the_sample_patients(stores):
    cons, _ = stores
    for name, con in cons.items():
        assert [p for (p,) in _rows(con, "SELECT DISTINCT patient_id FROM stg.lab_results ORDER BY 1")] \
            == list(SAMPLE_PATIENTS), name


def test_timeline_is_identical_in_csv_hl7_and_fhir(stores):
    cons, _ = stores
    expected = _rows(cons["csv"], TIMELINE)
    assert len(expected) > 1000 and {r[0] for r in expected} == set(SAMPLE_PATIENTS)
    assert _rows(cons["hl7"], TIMELINE) == expected
    assert _rows(cons["fhir"], TIMELINE) == expected


def test_every_hl7_and_fhir_result_and_reading_is_a_csv_one(stores):
    """The same row keys: loaded after the CSV rows, each would be a duplicate."""
    cons, _ = stores
    for table in ("stg.lab_results", "stg.vitals"):
        keys = {name: {k for (k,) in _rows(con, f"SELECT row_key FROM {table}")}
                for name, con in cons.items()}
        assert keys["hl7"] == keys["csv"] and keys["fhir"] == keys["csv"], table


def test_vitals_timeline_is_identical_in_csv_and_hl7(stores):
    cons, _ = stores
    assert _rows(cons["hl7"], VITALS_TIMELINE) == _rows(cons["csv"], VITALS_TIMELINE)


def test_malformed_rows_stay_malformed_in_every_format(stores):
    """The 7 malformed lab rows are quarantined in each format; two reasons read differently
    because the format spells the defect its own way."""
    cons, reports = stores
    assert reports["csv"]["labs.csv"].quarantined == 7
    assert reports["hl7"]["labs_batch.hl7"].quarantined == 7
    assert reports["fhir"]["Observation.ndjson"].quarantined == 7
    reasons = {name: sorted(r for (r,) in _rows(con, "SELECT reason FROM quarantine.rows"))
               for name, con in cons.items()}
    assert sum("impossible date" in r for r in reasons["csv"]) == 1
    # HL7: the DTM 20260230... goes on ISO-shaped, and is named an impossible date as in CSV
    assert sum("impossible date '2026-02-30" in r for r in reasons["hl7"]) == 1
    # FHIR: a row without patient is an Observation without subject
    assert any("Observation without a Patient subject" in r for r in reasons["fhir"])
    assert sum("missing patient_id" in r for r in reasons["csv"] + reasons["hl7"]) == 2


def test_fhir_infusions_carry_the_site_time_zone(stores):
    cons, _ = stores
    episodes = "SELECT patient_id, infusion_id, site_tz FROM derived.infusion_episodes ORDER BY ALL"
    assert _rows(cons["fhir"], episodes) == _rows(cons["csv"], episodes)
    assert _rows(cons["fhir"], VITALS_TIMELINE) == _rows(cons["csv"], VITALS_TIMELINE)


def test_fhir_drug_events_are_the_csv_events(stores):
    cons, _ = stores
    sql = "SELECT patient_id, event_type, value_num, value_text, observed_at FROM stg.events ORDER BY ALL"
    assert _rows(cons["fhir"], sql) == _rows(cons["csv"], sql)


# --- daylight saving time through HL7 ------------------------------------------------------------

INFUSION_HEADER = "patient_id,infused_at,product,infusion_id,target_antigen,indication,site_timezone\n"


def _lab(accession: str, at: str, value: str) -> dict:
    return {"patient_id": "DST-1", "collected_at": at, "code": "2276-4", "code_system": "LN",
            "value": value, "unit": "ng/mL", "test_name": "Ferritin", "ref_low": "30",
            "ref_high": "400", "resulted_at": None, "result_status": "F", "accession": accession,
            "source_system": "LIS"}


def test_dst_change_through_hl7(store, ctx, rules, tmp_path):
    """New York clocks go back at 2026-11-01 02:00 EDT: 01:30 happens twice (-04:00, then
    -05:00). Offsets on each side give two instants an hour apart on the same local day; a naive
    01:45 is read as its first occurrence; day post-infusion follows the local calendar, not UTC."""
    (tmp_path / "infusions.csv").write_text(
        INFUSION_HEADER + "DST-1,2026-10-30T12:00:00-04:00,axi-cel,DST-1-I1,CD19,DLBCL,America/New_York\n")
    labs = [_lab("A1", "2026-10-31T23:30:00-04:00", "500"),   # day 1, EDT
            _lab("A2", "2026-11-01T01:30:00-04:00", "600"),   # first 01:30 (EDT)
            _lab("A3", "2026-11-01T01:30:00-05:00", "700"),   # second 01:30 (EST), an hour later
            _lab("A4", "2026-11-01T01:45:00", "750"),         # naive: the first 01:45
            _lab("A5", "2026-11-01T23:30:00-05:00", "800")]   # day 2 locally, Nov 2 in UTC
    text = join_messages([write_oru_message([row], control_id=f"DST{i}") for i, row in enumerate(labs)])
    assert "20261101013000-0400" in text and "20261101013000-0500" in text and "|20261101014500|" in text
    (tmp_path / "dst.hl7").write_text(text)
    for name in ("infusions.csv", "dst.hl7"):
        report = load_file(store, tmp_path / name, ctx)
        assert (report.accepted, report.quarantined) == (report.read, 0), report
    build(store, rules, as_of=AS_OF, as_loaded=False, site_tz=SITE_TZ)
    got = _rows(store, "SELECT accession, observed_at, day FROM derived.timeline ORDER BY observed_at")
    utc = lambda *a: datetime(2026, *a, tzinfo=timezone.utc)  # noqa: E731
    assert [(a, at.astimezone(timezone.utc), d) for a, at, d in got] == [
        ("A1", utc(11, 1, 3, 30), 1), ("A2", utc(11, 1, 5, 30), 2), ("A4", utc(11, 1, 5, 45), 2),
        ("A3", utc(11, 1, 6, 30), 2), ("A5", utc(11, 2, 4, 30), 2)]


def test_sample_rows_across_the_us_dst_change_through_hl7(store, ctx, rules, tmp_path):
    """CW-0008 (Chicago, infused 2026-10-18) has results on both sides of 2026-11-01: written as
    HL7 (-0500 before, -0600 after), each keeps its instant and its local day post-infusion."""
    patient = "CW-0008"
    _, rows = _csv_rows("labs.csv")
    around = [r for r in rows if r["patient_id"] == patient
              and "2026-10-30" <= r["collected_at"][:10] <= "2026-11-03"]
    offsets = {r["collected_at"][-6:] for r in around}
    assert offsets == {"-05:00", "-06:00"}, offsets
    fields = sample_rows(around, [patient])
    (tmp_path / "around.hl7").write_text(join_messages(
        [write_oru_message(fields, control_id="CW8")], batch=True))
    sample_csv("infusions.csv", tmp_path, patients=[patient])
    for name in ("infusions.csv", "around.hl7"):
        report = load_file(store, tmp_path / name, ctx)
        assert (report.accepted, report.quarantined) == (report.read, 0), report
    build(store, rules, as_of=AS_OF, as_loaded=False, site_tz=SITE_TZ)
    chicago = ZoneInfo("America/Chicago")
    [infusion] = [r for r in _csv_rows("infusions.csv")[1] if r["patient_id"] == patient]
    assert infusion["site_timezone"] == "America/Chicago"
    infused = datetime.fromisoformat(infusion["infused_at"]).astimezone(chicago).date()
    expected = sorted((r["accession"], r["loinc"], datetime.fromisoformat(r["collected_at"]),
                       (datetime.fromisoformat(r["collected_at"]).astimezone(chicago).date()
                        - infused).days) for r in around)
    got = _rows(store, "SELECT accession, loinc, observed_at, day FROM derived.timeline ORDER BY ALL")
    assert sorted(got) == expected and len(got) == len(around)


# --- corrections across formats, on the sample's own rows ----------------------------------------

def test_corrections_across_formats_on_sample_rows(stores, store, ctx, rules, tmp_path):
    """CW-0015's ferritin versions, each delivered in another format than the result it changes:
    the correction (C) in HL7, the final after a preliminary and the cancellation (X) in FHIR.
    The results in force are those of the all-CSV store; before the correction, the original."""
    patient = "CW-0015"
    header, rows = _csv_rows("labs.csv")
    mine = [r for r in rows if r["patient_id"] == patient]
    preliminary = {(r["accession"], r["loinc"]) for r in mine if r["result_status"] == "P"}
    later = [r for r in mine if r["result_status"] in ("C", "X")
             or (r["result_status"] == "F" and (r["accession"], r["loinc"]) in preliminary)]
    assert sorted(r["result_status"] for r in later) == ["C", "F", "X"]
    _write_csv(tmp_path / "labs.csv", header, [r for r in mine if r not in later])
    sample_csv("infusions.csv", tmp_path, patients=[patient])
    correction = [f for f in sample_rows(later, [patient]) if f["result_status"] == "C"]
    others = [f for f in sample_rows(later, [patient]) if f["result_status"] != "C"]
    (tmp_path / "correction.hl7").write_text(join_messages([write_oru_message(correction, control_id="C1")]))
    (tmp_path / "versions.ndjson").write_text(to_ndjson(lab_observation(f) for f in others))
    for name in ("infusions.csv", "labs.csv", "correction.hl7", "versions.ndjson"):
        report = load_file(store, tmp_path / name, ctx)
        assert report.quarantined == 0 and report.accepted == report.read, report
    build(store, rules, as_of=AS_OF, as_loaded=False, site_tz=SITE_TZ)
    sql = ("SELECT accession, loinc, value, result_status, observed_at, resulted_at FROM derived.lab_results "
           "WHERE patient_id = ? ORDER BY ALL")
    cons, _ = stores
    assert _rows(store, sql, [patient]) == _rows(cons["csv"], sql, [patient])
    ferritin = ("SELECT accession, value, result_status, source_format FROM derived.lab_results "
                "WHERE patient_id = ? AND loinc = '2276-4' AND list_contains(?, accession) ORDER BY 1")
    accessions = sorted({r["accession"] for r in later})
    correction_row = next(r for r in later if r["result_status"] == "C")
    final_row = next(r for r in later if r["result_status"] == "F")
    assert _rows(store, ferritin, [patient, accessions]) == sorted([   # the X withdrew the third
        (correction_row["accession"], float(correction_row["value"]), "C", "hl7"),
        (final_row["accession"], float(final_row["value"]), "F", "fhir")])
    # a minute before the correction was resulted, the original CSV result is in force
    corrected_at = datetime.fromisoformat(correction_row["resulted_at"])
    build(store, rules, as_of=corrected_at - timedelta(minutes=1), as_loaded=False, site_tz=SITE_TZ)
    original = next(r for r in mine if r["accession"] == correction_row["accession"]
                    and r["loinc"] == "2276-4" and r["result_status"] == "F")
    assert _rows(store, ferritin, [patient, [original["accession"]]]) == [
        (original["accession"], float(original["value"]), "F", "csv")]
