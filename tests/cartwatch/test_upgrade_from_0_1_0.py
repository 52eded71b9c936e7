"""A database written by release 0.1.0 opens in this release with every row intact (the migrations
after 0.1.0 applied on open), and the nightly job, the digest and the exports run on it.

The fixture, tests/fixtures/release_0_1_0/ (rebuilt by its build.sh, which needs the tag v0.1.0),
is data/sample/ as 0.1.0's nightly job loaded and evaluated it, and the manifest of its tables as
0.1.0 left them: row count and content hash each (tests/release_fixture.py).
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from release_fixture import table_digest, tables
from sample_paths import SAMPLE

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "release_0_1_0"
MANIFEST = json.loads((FIXTURE / "manifest.json").read_text(encoding="utf-8"))
AS_OF = datetime.fromisoformat((SAMPLE / "AS_OF").read_text().strip().replace("Z", "+00:00"))
NIGHT_0_1_0 = "2026-11-21"           # the night of AS_OF in the sample's site zone (New York)
NEXT_NIGHT = "2026-11-22"            # this release's first run, a day later: 0.1.0's night stays
# Rows that opening adds to a 0.1.0 table beside its own: the records of the newer migrations.
ADDED_ON_OPEN = {"meta.schema_version": "version <= 2"}
NEW_RESULT = ("patient_id,collected_at,loinc,value,unit,resulted_at,accession\n"
              "CW-0001,2026-07-20T08:00:00-04:00,2276-4,950,ng/mL,2026-07-20T09:00:00-04:00,UPG-1\n")


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory):
    """The 0.1.0 database opened (so migrated) by this release; the digest of every table then."""
    from cartwatch.store import open_store

    db = tmp_path_factory.mktemp("release_0_1_0") / "cartwatch.duckdb"
    with gzip.open(FIXTURE / "cartwatch-0.1.0.duckdb.gz") as packed, open(db, "wb") as out:
        shutil.copyfileobj(packed, out)
    con = open_store(db)
    try:
        digests = {t: table_digest(con, t, ADDED_ON_OPEN.get(t, "TRUE")) for t in tables(con)}
        versions = con.execute("SELECT version, name FROM meta.schema_version ORDER BY version").fetchall()
    finally:
        con.close()
    return db, digests, versions


def test_the_fixture_was_made_with_this_duckdb():
    """The content hashes read DuckDB's text form of values: another DuckDB needs a rebuilt fixture."""
    assert MANIFEST["duckdb"] == duckdb.__version__, "rebuild with tests/fixtures/release_0_1_0/build.sh"


def test_every_row_of_every_0_1_0_table_is_intact(upgraded):
    _, digests, _ = upgraded
    old = MANIFEST["tables"]
    assert len(old) == 43 and old["stg.lab_results"]["rows"] == 9413 and old["raw.received"]["rows"] == 27673
    assert {t: digests.get(t) for t in old} == old


def test_the_migrations_after_0_1_0_are_applied(upgraded):
    _, digests, versions = upgraded
    assert [v for v, _ in versions] == [1, 2, 3] and versions[2][1] == "003_skipped_files"
    assert set(digests) - set(MANIFEST["tables"]) == {"meta.skipped_files"}


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_0_1_0_evaluation_is_not_passed_off_as_this_releases(upgraded, tmp_path, capsys):
    """Before a run of this release, its last evaluation is 0.1.0's, made with other rules: read
    only with those rules (--rules) or evaluated again (--as-of), said in one line."""
    from flows.cli import main

    db, _, _ = upgraded
    assert main(["export", "windows", "--db", str(db), "--out", str(tmp_path / "w.csv")]) == 2
    assert capsys.readouterr().err.endswith(
        "is rules version 2026.12.0, the stored evaluation was made with 2026.11.0 (pass --as-of to evaluate "
        "with this file, or --rules for that one)\n")
    assert not (tmp_path / "w.csv").exists()


@pytest.fixture(scope="module")
def nightly_on_it(upgraded, prefect_harness, tmp_path_factory):
    """This release's nightly job on the upgraded database: a new result arrives, the sample
    (already loaded by 0.1.0) is delivered again."""
    from flows.nightly import nightly

    db, _, _ = upgraded
    inbox = tmp_path_factory.mktemp("inbox")
    shutil.copytree(SAMPLE, inbox, dirs_exist_ok=True)
    (inbox / "labs_next.csv").write_text(NEW_RESULT, encoding="utf-8")
    out = db.parent
    return nightly(as_of=AS_OF + timedelta(days=1), overrides={"db_path": str(db), "inbox": str(inbox),
                                           "digest_dir": str(out / "digest")})


def test_the_nightly_job_runs_on_it(upgraded, nightly_on_it):
    db, _, _ = upgraded
    loaded = [f for f in nightly_on_it["files"] if f["status"] == "loaded"]
    assert [(Path(f["source_file"]).name, f["read"], f["accepted"]) for f in loaded] == [("labs_next.csv", 1, 1)]
    assert {f["status"] for f in nightly_on_it["files"]} == {"loaded", "already_loaded"}
    assert nightly_on_it["counts"]["build"]["mode"] == "full"      # 0.1.0's code built the tables
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM stg.lab_results").fetchone()[0] == 9413 + 1
        versions = con.execute("SELECT DISTINCT rules_version FROM flags.windows").fetchall()
        nights = con.execute("SELECT DISTINCT night::VARCHAR, rules_version FROM flags.windows_by_night "
                             "ORDER BY 1").fetchall()
    finally:
        con.close()
    assert versions == [("2026.12.0",)]
    assert nights == [(NIGHT_0_1_0, "2026.11.0"), (NEXT_NIGHT, "2026.12.0")]


def test_digest_and_exports_read_it(upgraded, nightly_on_it, tmp_path):
    from flows.cli import main

    db, _, _ = upgraded
    assert main(["digest", "--db", str(db), "--format", "json", "--out", str(tmp_path / "d.json")]) == 0
    assert json.loads((tmp_path / "d.json").read_text())["alerts"] == nightly_on_it["alerts"]
    for table in ("windows", "timeline", "flags", "quarantine"):
        assert main(["export", table, "--db", str(db), "--out", str(tmp_path / f"{table}.csv")]) == 0
    assert len(_csv_rows(tmp_path / "quarantine.csv")) == MANIFEST["tables"]["quarantine.rows"]["rows"]
    # the night 0.1.0 stored, read back from its stream
    out = tmp_path / "night.csv"
    assert main(["export", "windows", "--db", str(db), "--stream", "nightly", "--night", NIGHT_0_1_0,
                 "--out", str(out)]) == 0
    stored = _csv_rows(out)
    assert len(stored) == MANIFEST["tables"]["flags.windows_by_night"]["rows"]
    assert {r["rules_version"] for r in stored} == {"2026.11.0"}
