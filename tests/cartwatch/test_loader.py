"""Ingest of the four CSV feeds: quarantine reasons, duplicates, re-ingest, atomicity."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartwatch import staging
from cartwatch.loader import load_file

LAB_HEADER = "patient_id,collected_at,loinc,value,unit,ref_low,ref_high,resulted_at,result_status,accession"
GOOD_LAB = "P1,2026-06-01T08:00:00-04:00,2276-4,850,ng/mL,30,400,2026-06-01T10:00:00-04:00,F,A1"


def write(tmp_path: Path, name: str, header: str, *rows: str) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def counts(con) -> dict[str, int]:
    tables = ("stg.lab_results", "stg.vitals", "stg.infusions", "stg.events", "quarantine.rows",
              "raw.received", "meta.files")
    return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


@pytest.mark.parametrize("row, reason", [
    ("P1,2026-06-01T08:00:00-04:00,2276-4,pending,ng/mL,,,,,A2", "non-numeric value 'pending'"),
    ("P1,2026-06-01T08:00:00-04:00,2276-4,\"1,25\",ng/mL,,,,,A2", "ambiguous decimal comma in value '1,25'"),
    ("P1,2026-02-30T08:00:00,2276-4,5,ng/mL,,,,,A2", "collected_at: impossible date '2026-02-30T08:00:00'"),
    ("P1,2026-03-08T02:30:00,2276-4,5,ng/mL,,,,,A2", "collected_at: nonexistent local time"),
    ("P1,soon,2276-4,5,ng/mL,,,,,A2", "collected_at: unparseable timestamp 'soon'"),
    ("P1,2026-11-23T08:00:00Z,2276-4,5,ng/mL,,,,,A2", "collected_at: in the future"),
    ("P1,2026-06-01T08:00:00Z,9999-9,5,ng/mL,,,,,A2", "unknown LOINC '9999-9'"),
    ("P1,2026-06-01T08:00:00Z,2276-4,5,mmol/L,,,,,A2", "unit 'mmol/L' does not convert to 'ng/mL' for ferritin"),
    ("P1,2026-06-01T08:00:00Z,2276-4,5,,,,,,A2", "missing unit for ferritin"),
    (",2026-06-01T08:00:00Z,2276-4,5,ng/mL,,,,,A2", "missing patient_id"),
    ("P1,2026-06-01T08:00:00Z,2276-4,5,ng/mL,,,,Q,A2", "unknown result_status 'Q'"),
    ("P1,2026-06-01T08:00:00Z,2276-4,5,ng/mL,,,2026-05-31T08:00:00Z,F,A2", "resulted_at is before collected_at"),
    ("P1,2026-06-01T08:00:00Z,2276-4,5,ng/mL,abc,,,F,A2", "ref_low: non-numeric value 'abc'"),
    ("P1,2026-06-01T08:00:00Z,2276-4,5", "csv: expected 10 fields, got 4"),
    ("P1,2026-06-01T08:00:00Z,2276-4,5000000,ng/mL,,,,F,A2",
     "expectation expect_column_values_to_be_between failed: plausible ferritin"),
    ("P1,2026-06-01T08:00:00Z,2276-4,5,ng/mL,400,30,,F,A2",
     "expectation expect_column_pair_values_a_to_be_greater_than_b failed: reference range low <= high"),
])
def test_each_lab_quarantine_reason(store, ctx, tmp_path, row, reason):
    report = load_file(store, write(tmp_path, "labs.csv", LAB_HEADER, GOOD_LAB, row), ctx)
    assert (report.read, report.accepted, report.duplicate, report.quarantined) == (2, 1, 0, 1)
    (line, got, raw), = store.execute("SELECT line, reason, raw FROM quarantine.rows").fetchall()
    assert line == 3  # the header is line 1
    assert got.startswith(reason)
    assert raw == row


@pytest.mark.parametrize("name, header, row, reason", [
    ("vitals.csv", "patient_id,measured_at,kind,value,unit", "P1,2026-06-01T08:00:00Z,pulse,80,/min",
     "unknown vital kind 'pulse'"),
    ("vitals.csv", "patient_id,measured_at,kind,value,unit", "P1,2026-06-01T08:00:00Z,o2_device,tent,",
     "unknown o2_device 'tent'"),
    ("vitals.csv", "patient_id,measured_at,kind,value,unit", "P1,2026-06-01T08:00:00Z,temperature,38.5,",
     "missing unit for temperature"),
    ("vitals.csv", "patient_id,measured_at,kind,value,unit", "P1,2026-06-01T08:00:00Z,temperature,55,Cel",
     "expectation expect_column_values_to_be_between failed: plausible temperature"),
    ("infusions.csv", "patient_id,infused_at,product,site_timezone", "P1,2026-06-01T08:00:00,axi-cel,Mars/Olympus",
     "unknown site_timezone 'Mars/Olympus'"),
    ("infusions.csv", "patient_id,infused_at,product,site_timezone", "P1,2026-06-01T08:00:00,,",
     "missing product"),
    ("events.csv", "patient_id,event_at,event_type,value", "P1,2026-06-01T08:00:00Z,crs_grade,5",
     "crs_grade must be a whole number 0-4, got '5'"),
    ("events.csv", "patient_id,event_at,event_type,value", "P1,2026-06-01T08:00:00Z,hemophagocytosis,maybe",
     "hemophagocytosis must be true or false, got 'maybe'"),
    ("events.csv", "patient_id,event_at,event_type,value", "P1,2026-06-01T08:00:00Z,haircut,1",
     "unknown event_type 'haircut'"),
])
def test_other_feeds_quarantine_reasons(store, ctx, tmp_path, name, header, row, reason):
    report = load_file(store, write(tmp_path, name, header, row), ctx)
    assert (report.read, report.accepted, report.quarantined) == (1, 0, 1)
    assert store.execute("SELECT reason FROM quarantine.rows").fetchone()[0].startswith(reason)


def test_vitals_events_infusions_stage_in_canonical_units(store, ctx, tmp_path):
    load_file(store, write(tmp_path, "vitals.csv", "patient_id,measured_at,kind,value,unit",
                           "P1,2026-06-01T08:00:00Z,temperature,101.3,[degF]",
                           "P1,2026-06-01T08:00:00Z,o2_device,High_Flow,"), ctx)
    assert store.execute("SELECT kind, round(value, 2), value_text, unit FROM stg.vitals ORDER BY kind").fetchall() == [
        ("o2_device", None, "high_flow", None), ("temperature", 38.5, None, "Cel")]
    load_file(store, write(tmp_path, "inf.csv", "patient_id,infused_at,product,site_timezone",
                           "P1,2026-06-01T08:00:00,axi-cel,Europe/Madrid"), ctx)
    infusion = store.execute("SELECT infusion_id, observed_at::VARCHAR FROM stg.infusions").fetchone()
    assert infusion == ("P1-20260601T0600Z", "2026-06-01 06:00:00+00")  # naive: the row's own zone


def test_duplicate_rows_and_reingested_file_change_nothing(store, ctx, tmp_path):
    first = write(tmp_path, "labs.csv", LAB_HEADER, GOOD_LAB, GOOD_LAB)
    report = load_file(store, first, ctx)
    assert (report.read, report.accepted, report.duplicate, report.quarantined) == (2, 1, 1, 0)
    before = counts(store)
    again = load_file(store, first, ctx)
    assert (again.status, again.read, again.accepted, again.duplicate) == ("already_loaded", 2, 0, 2)
    resend = write(tmp_path, "labs_resend.csv", LAB_HEADER, GOOD_LAB)   # same row, other file
    report = load_file(store, resend, ctx)
    assert (report.read, report.accepted, report.duplicate) == (1, 0, 1)
    after = counts(store)
    assert after["stg.lab_results"] == before["stg.lab_results"] == 1
    assert after["meta.files"] == 2 and after["raw.received"] == 3   # raw keeps every row read


def test_same_value_written_differently_is_a_duplicate(store, ctx, tmp_path):
    load_file(store, write(tmp_path, "a.csv", LAB_HEADER,
                           "P1,2026-06-01T08:00:00-04:00,2276-4,\"1,250\",ng/mL,,,,F,A9"), ctx)
    report = load_file(store, write(tmp_path, "b.csv", LAB_HEADER,
                                    "P1,2026-06-01T12:00:00Z,2276-4,1250,ug/L,,,,F,A9"), ctx)
    assert (report.accepted, report.duplicate) == (0, 1)


def test_crash_mid_load_leaves_the_database_as_before(store, ctx, tmp_path, monkeypatch):
    load_file(store, write(tmp_path, "labs.csv", LAB_HEADER, GOOD_LAB), ctx)
    before = counts(store)

    def crash(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(staging, "publish", crash)   # after every batch was landed
    second = write(tmp_path, "labs2.csv", LAB_HEADER, GOOD_LAB.replace("A1", "A2").replace("850", "900"))
    with pytest.raises(OSError, match="disk full"):
        load_file(store, second, ctx)
    assert counts(store) == before
    monkeypatch.undo()
    report = load_file(store, second, ctx)   # and the file loads once the fault is gone
    assert (report.status, report.accepted) == ("loaded", 1)


def test_files_that_are_not_feeds_are_skipped_with_a_reason(store, ctx, tmp_path):
    odd = write(tmp_path, "ground_truth.csv", "patient_id,archetype", "P1,classic")
    report = load_file(store, odd, ctx)
    assert report.status == "skipped" and report.reason.startswith("header matches no feed")
    assert counts(store)["meta.files"] == 0


def test_counts_always_add_up_on_a_mixed_file(store, ctx, tmp_path):
    rows = [GOOD_LAB, GOOD_LAB, GOOD_LAB.replace("850", "pending").replace("A1", "A3"),
            GOOD_LAB.replace("A1", "A4"), "garbage"]
    report = load_file(store, write(tmp_path, "labs.csv", LAB_HEADER, *rows), ctx)
    assert report.adds_up() and (report.read, report.accepted, report.duplicate, report.quarantined) == (5, 2, 1, 2)


def test_a_bad_line_is_quarantined_and_the_rest_of_the_file_loads(store, ctx, tmp_path):
    bad = b"P1,2026-06-01T08:00:00Z,2276-4,5,ng/\xe9L,,,,F,A7"
    path = tmp_path / "labs.csv"
    path.write_bytes("\n".join([LAB_HEADER, GOOD_LAB]).encode() + b"\n" + bad + b"\n")
    report = load_file(store, path, ctx)
    assert (report.status, report.read, report.accepted, report.quarantined) == ("loaded", 2, 1, 1)
    (line, reason), = store.execute("SELECT line, reason FROM quarantine.rows").fetchall()
    assert (line, reason) == (3, "csv: not UTF-8 (byte 0xE9 at position 37)")


@pytest.mark.parametrize("ids, reason", [
    ('"P1\nFAKE",', "patient_id contains a control character"),
    ("P1\x00,", "patient_id contains a control character"),
])
def test_control_characters_in_ids_are_refused(store, ctx, tmp_path, ids, reason):
    row = ids + GOOD_LAB.split(",", 1)[1]
    report = load_file(store, write(tmp_path, "labs.csv", LAB_HEADER, row), ctx)
    assert (report.read, report.accepted, report.quarantined) == (1, 0, 1)
    assert store.execute("SELECT reason FROM quarantine.rows").fetchone()[0] == reason


@pytest.mark.parametrize("text, reason", [
    (LAB_HEADER + ",value\n" + GOOD_LAB + ",332\n", "header names a column more than once: value"),
    (LAB_HEADER + "\x0b" + GOOD_LAB + "\x0b", "lines end with vertical tabs"),
])
def test_a_refused_file_is_not_recorded_as_loaded(store, ctx, tmp_path, text, reason):
    path = tmp_path / "labs.csv"
    path.write_text(text, encoding="utf-8")
    report = load_file(store, path, ctx)
    assert report.status == "skipped" and report.reason.startswith(reason)
    assert counts(store)["meta.files"] == 0
    path.write_text(LAB_HEADER + "\n" + GOOD_LAB + "\n", encoding="utf-8")   # the fixed file loads
    assert load_file(store, path, ctx).accepted == 1


def test_a_folders_ignore_file_keeps_its_non_feeds_out(tmp_path):
    from cartwatch.loader import feed_files
    (tmp_path / "sub").mkdir()
    for name in ("labs.csv", "answers.csv", "answers.json", "sub/answers.csv", "sub/vitals.csv"):
        (tmp_path / name).write_text("x\n")
    (tmp_path / ".cartwatchignore").write_text("# not feeds\nanswers.*\n")
    assert [p.relative_to(tmp_path).as_posix() for p in feed_files([tmp_path])] == ["labs.csv", "sub/vitals.csv"]
    assert feed_files([tmp_path / "answers.csv"]) == [tmp_path / "answers.csv"]   # named: loaded as asked
