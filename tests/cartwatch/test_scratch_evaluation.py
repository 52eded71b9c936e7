"""A reading command's --as-of evaluates in a scratch database: the store keeps the nightly's
evaluation (every table's rows and content, meta.build_state), and the command's output is the one
an evaluation in the store as of that moment gives."""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from datetime import datetime

import duckdb
import pytest

from flows.cli import main
from sample_paths import SITE_TZ

AS_OF = "2026-07-07T12:00:00-04:00"      # day +10 of CW-0001; 7 of the sample's 29 infusions then
SCRATCH_FOLDERS = os.path.join(tempfile.gettempdir(), "cartwatch-scratch-*")


def store_state(db) -> dict:
    """Every table's row count and an order-free hash of its rows, the table comments (build stamps)
    and the last evaluation's moment."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = con.execute("SELECT schema_name, table_name, comment FROM duckdb_tables() "
                             "WHERE database_name = current_database() ORDER BY 1, 2").fetchall()
        state = {f"{s}.{t}": (*con.execute(f'SELECT count(*), sum(hash(r)::HUGEINT) FROM "{s}"."{t}" AS r')
                              .fetchall()[0], comment) for s, t, comment in tables}
        state["as_of"] = con.execute("SELECT as_of, as_loaded, built_at FROM meta.build_state").fetchall()
        return state
    finally:
        con.close()


def outputs(db, folder, *more: str) -> dict[str, str]:
    """What each reading command writes, as text."""
    folder.mkdir(exist_ok=True)
    commands = {"explain": ["explain", "CW-0001", "--format", "json"], "report": ["report"],
                "export": ["export", "windows"], "digest": ["digest", "--format", "json"]}
    suffix = {"explain": "json", "report": "json", "export": "csv", "digest": "json"}
    texts = {}
    for name, command in commands.items():
        out = folder / f"{name}.{suffix[name]}"
        assert main([*command, "--db", str(db), "--out", str(out), *more]) == 0, name
        texts[name] = out.read_text(encoding="utf-8")
    return texts


def cohort_and_moment(texts: dict[str, str]) -> tuple[int, str]:
    """The report's infusions and the digest's as-of."""
    return json.loads(texts["report"])["cohort"]["infusions"], json.loads(texts["digest"])["as_of"]


@pytest.fixture
def evaluated_in_store(sample_db, tmp_path, rules):
    """A copy of the sample store evaluated in place as of AS_OF: what --as-of gave before."""
    from cartwatch.incremental import evaluate
    from cartwatch.store import open_store

    db = tmp_path / "in_store.duckdb"
    shutil.copy(sample_db, db)
    con = open_store(db, create=False)
    evaluate(con, rules, as_of=datetime.fromisoformat(AS_OF), as_loaded=False, site_tz=SITE_TZ)
    con.close()
    return db


def test_as_of_reads_a_scratch_evaluation_and_leaves_the_store_as_it_was(sample_db, evaluated_in_store, tmp_path,
                                                                          capsys):
    db = tmp_path / "store.duckdb"
    shutil.copy(sample_db, db)
    before = store_state(db)
    scratch_before = set(glob.glob(SCRATCH_FOLDERS))

    then = outputs(db, tmp_path / "as_of", "--as-of", AS_OF)

    assert store_state(db) == before
    assert set(glob.glob(SCRATCH_FOLDERS)) == scratch_before       # the scratch database is gone
    assert then == outputs(evaluated_in_store, tmp_path / "in_store")
    assert cohort_and_moment(then) == (7, "2026-07-07T16:00:00Z")
    # the next reader without --as-of reads the nightly's evaluation, as on the untouched store
    now = outputs(db, tmp_path / "now")
    assert now == outputs(sample_db, tmp_path / "sample")
    assert cohort_and_moment(now) == (29, "2026-11-22T00:00:00Z")
    capsys.readouterr()


def test_a_failing_scratch_evaluation_is_removed_and_leaves_the_store(sample_db, tmp_path, capsys):
    db = tmp_path / "store.duckdb"
    shutil.copy(sample_db, db)
    con = duckdb.connect(str(db))      # a store the build cannot read: a staged column renamed
    con.execute("ALTER TABLE stg.vitals RENAME COLUMN observed_at TO seen_at")
    con.close()
    before = store_state(db)
    scratch_before = set(glob.glob(SCRATCH_FOLDERS))

    assert main(["report", "--db", str(db), "--out", str(tmp_path / "r.json"), "--as-of", AS_OF]) != 0
    assert "observed_at" in capsys.readouterr().err
    assert set(glob.glob(SCRATCH_FOLDERS)) == scratch_before
    assert store_state(db) == before


def test_the_scratch_database_cannot_write_the_store(sample_db, tmp_path, rules):
    from cartwatch.scratch import scratch_evaluation

    db = tmp_path / "store.duckdb"
    shutil.copy(sample_db, db)
    with scratch_evaluation(db, rules, as_of=datetime.fromisoformat(AS_OF), as_loaded=False, site_tz=SITE_TZ) as con:
        folder = os.path.dirname(con.execute("SELECT path FROM duckdb_databases() WHERE database_name = "
                                             "current_database()").fetchall()[0][0])
        assert os.stat(folder).st_mode & 0o777 == 0o700
        assert con.execute("SELECT as_of FROM meta.build_state").fetchall()[0][0] == datetime.fromisoformat(AS_OF)
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("DELETE FROM store.stg.vitals")
    assert not os.path.exists(folder)
