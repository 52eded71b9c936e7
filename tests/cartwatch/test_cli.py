"""The command line: per-file counts, exports with the contract's columns, one-line errors."""

from __future__ import annotations

import csv
import json

import pytest

from cartwatch.cli import parse_as_of
from flows.cli import main
from cartwatch.export import EXPORT_COLUMNS

LAB_HEADER = "patient_id,collected_at,loinc,value,unit,ref_low,ref_high,resulted_at,result_status,accession"


@pytest.fixture
def feeds(tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "labs.csv").write_text("\n".join([
        LAB_HEADER,
        "P1,2026-06-02T08:00:00-04:00,2276-4,\"1,250\",ng/mL,30,400,,F,A1",
        "P1,2026-06-02T08:00:00-04:00,2276-4,\"1,250\",ng/mL,30,400,,F,A1",
        "P1,2026-06-03T08:00:00-04:00,2276-4,pending,ng/mL,30,400,,F,A2"]) + "\n")
    (folder / "infusions.csv").write_text(
        "patient_id,infused_at,product,infusion_id\nP1,2026-06-01T14:00:00-04:00,axi-cel,I1\n")
    (folder / "notes.md").write_text("not a feed")
    return folder


def test_ingest_prints_per_file_counts_that_add_up(feeds, tmp_path, capsys):
    assert main(["ingest", str(feeds), "--db", str(tmp_path / "db.duckdb")]) == 0
    out = capsys.readouterr().out.splitlines()
    labs = next(line for line in out if line.split()[0].endswith("labs.csv")).split()
    assert labs[1:] == ["loaded", "3", "1", "1", "1"]    # read, accepted, quarantined, duplicate
    total = next(line for line in out if line.startswith("total")).split()
    assert total == ["total", "4", "2", "1", "1"]
    assert out[-2:] == ["quarantined by reason:", "        1  non-numeric value …"]
    assert main(["ingest", str(feeds), "--db", str(tmp_path / "db.duckdb")]) == 0
    again = capsys.readouterr().out.splitlines()
    assert next(line for line in again if "labs.csv" in line).split()[1:] == ["already_loaded", "3", "0", "0", "3"]


@pytest.mark.parametrize("table", ["timeline", "quarantine"])
@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_exports_have_exactly_the_contract_columns(feeds, tmp_path, table, fmt):
    db = str(tmp_path / "db.duckdb")
    main(["ingest", str(feeds), "--db", db])
    out = tmp_path / f"{table}.{fmt}"
    assert main(["export", table, "--format", fmt, "--out", str(out), "--db", db,
                 "--as-of", "2026-07-01T00:00:00Z"]) == 0
    if fmt == "csv":
        with open(out, newline="") as handle:
            rows = list(csv.reader(handle))
        header, body = rows[0], rows[1:]
    elif fmt == "json":
        body = json.loads(out.read_text())
        header = list(body[0])
    else:
        import pyarrow.parquet as pq
        table_ = pq.read_table(out)
        header, body = table_.column_names, table_.to_pylist()
    assert tuple(header) == EXPORT_COLUMNS[table]
    assert len(body) == 1


def test_quarantine_export_keeps_file_line_reason_and_raw(feeds, tmp_path):
    db = str(tmp_path / "db.duckdb")
    main(["ingest", str(feeds), "--db", db])
    out = tmp_path / "q.json"
    main(["export", "quarantine", "--format", "json", "--out", str(out), "--db", db])
    (row,) = json.loads(out.read_text())
    assert row["source_file"].endswith("labs.csv") and row["line"] == 4
    assert row["reason"] == "non-numeric value 'pending'"
    assert row["raw"] == "P1,2026-06-03T08:00:00-04:00,2276-4,pending,ng/mL,30,400,,F,A2"


@pytest.mark.parametrize("argv, message", [
    (["ingest", "/no/such/place"], "cartwatch: /no/such/place: no such file or folder"),
    (["export", "timeline", "--out", "x.csv", "--as-of", "someday"], "cartwatch: --as-of: unparseable timestamp"),
    (["ingest", ".", "--site-tz", "Mars/Base"], "cartwatch: site_tz 'Mars/Base' is not an IANA time zone"),
])
def test_bad_input_exits_non_zero_with_one_line(tmp_path, capsys, argv, message):
    assert main(argv + ["--db", str(tmp_path / "db.duckdb")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_as_of_a_bare_date_is_midnight_in_the_site_zone():
    assert parse_as_of("2026-07-01", "America/New_York").isoformat() == "2026-07-01T04:00:00+00:00"
    assert parse_as_of("2026-07-01T06:00:00Z", "America/New_York").isoformat() == "2026-07-01T06:00:00+00:00"
