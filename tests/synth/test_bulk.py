"""The benchmark cohort (`cartwatch synth --cohort`): same bytes for the same arguments, the sample's
columns, the volume of issue 8's cohort, a next-day file, and every row accepted by the loader."""

from __future__ import annotations

import csv
import json

import pytest

from flows.cli import main
from cartwatch.synth import bulk
from tests.sample_paths import SAMPLE as SAMPLE_DIR

FEEDS = ("labs", "vitals", "infusions", "events")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bulk, "CHUNK", 15)        # three chunks
        info = bulk.write_cohort(40, 7, out / "history", next_day_dir=out / "inbox", span_days=60)
    return info, out


def _header(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_same_arguments_same_bytes(cohort, tmp_path, monkeypatch):
    info, out = cohort
    monkeypatch.setattr(bulk, "CHUNK", 15)
    bulk.write_cohort(40, 7, tmp_path / "history", next_day_dir=tmp_path / "inbox", span_days=60)
    for folder in ("history", "inbox"):
        for path in sorted((out / folder).iterdir()):
            if path.name != "COHORT_INFO":      # holds the seconds it took
                assert path.read_bytes() == (tmp_path / folder / path.name).read_bytes(), path.name


def test_columns_are_the_samples(cohort):
    _, out = cohort
    for feed in FEEDS:
        assert _header(out / "history" / f"{feed}.csv") == _header(SAMPLE_DIR / f"{feed}.csv")


def test_volume_per_patient_and_counts_recorded(cohort):
    info, out = cohort
    recorded = json.loads((out / "history" / "COHORT_INFO").read_text())
    assert recorded["files"] == {f"{feed}.csv": len(_rows(out / "history" / f"{feed}.csv")) for feed in FEEDS}
    assert (out / "history" / "AS_OF").read_text().strip() == info.as_of
    labs = _rows(out / "history" / "labs.csv")
    per_patient = {}
    for row in labs:
        if row["result_status"] == "F":
            per_patient[row["patient_id"]] = per_patient.get(row["patient_id"], 0) + 1
    full_courses = [n for n in per_patient.values() if n == 890]     # infused 36 days or more before as-of
    assert len(full_courses) > len(per_patient) / 3
    full = {p for p, n in per_patient.items() if n == 890}
    vitals = [r for r in _rows(out / "history" / "vitals.csv") if r["patient_id"] in full]
    assert 120 <= len(vitals) / len(full) <= 160
    assert {r["result_status"] for r in labs} == {"F", "C"}
    assert any(r["value"].startswith("<") for r in labs)


def test_next_day_holds_only_new_rows_of_active_patients(cohort):
    info, out = cohort
    labs = _rows(next((out / "inbox").glob("labs_*.csv")))
    assert labs and info.active_patients == len({r["patient_id"] for r in labs})
    history = {(r["patient_id"], r["collected_at"], r["loinc"], r["result_status"])
               for r in _rows(out / "history" / "labs.csv")}
    assert not history & {(r["patient_id"], r["collected_at"], r["loinc"], r["result_status"]) for r in labs}
    infused = {r["patient_id"] for r in _rows(out / "history" / "infusions.csv")}
    assert {r["patient_id"] for r in labs} <= infused


def test_the_loader_accepts_every_row(cohort, tmp_path, capsys):
    _, out = cohort
    assert main(["ingest", "--db", str(tmp_path / "c.duckdb"), str(out / "history"), str(out / "inbox")]) == 0
    total = capsys.readouterr().out.split("\ntotal")[1].split("\n")[0].split()
    read, accepted, quarantined, duplicate = map(int, total)
    expected = sum(json.loads((out / "history" / "COHORT_INFO").read_text())[key][name]
                   for key in ("files", "next_day_files")
                   for name in json.loads((out / "history" / "COHORT_INFO").read_text())[key])
    assert (read, accepted, quarantined, duplicate) == (expected, expected, 0, 0)


def test_cli_cohort_mode(tmp_path, capsys):
    assert main(["synth", "--cohort", "--patients", "5", "--seed", "3", "--out", str(tmp_path / "c")]) == 0
    assert "wrote a cohort of 5 patients" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "AS_OF", "COHORT_INFO", "events.csv", "infusions.csv", "labs.csv", "vitals.csv"]
