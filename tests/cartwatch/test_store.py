"""Migrations: applied on open, recorded, and an older database upgrades in place."""

import shutil

import duckdb
import pytest

from cartwatch.store import MIGRATIONS_DIR, StoreError, migrate, migrations, open_store, schema_version


def test_fresh_database_gets_every_migration(tmp_path):
    con = open_store(tmp_path / "db.duckdb")
    assert schema_version(con) == len(migrations())
    assert con.execute("SELECT count(*) FROM ref.lab_codes").fetchall()[0][0] >= 0
    con.close()


def test_database_of_an_earlier_release_upgrades_in_place(tmp_path):
    old_release = tmp_path / "old"
    old_release.mkdir()
    shutil.copy(MIGRATIONS_DIR / "001_layers.sql", old_release)
    db = tmp_path / "db.duckdb"
    con = duckdb.connect(str(db))
    assert migrate(con, old_release) == 1
    con.execute("INSERT INTO meta.runs (run_id, kind, started_at) VALUES ('r1', 'nightly', now())")
    con.close()
    new_release = tmp_path / "new"
    shutil.copytree(old_release, new_release)
    (new_release / "002_add_note.sql").write_text("ALTER TABLE meta.runs ADD COLUMN note VARCHAR;")
    con = duckdb.connect(str(db))
    assert migrate(con, new_release) == 2
    assert con.execute("SELECT run_id, note FROM meta.runs").fetchall() == [("r1", None)]
    assert migrate(con, new_release) == 2   # nothing left to apply
    con.close()


def test_failing_migration_leaves_the_database_at_its_version(tmp_path):
    release = tmp_path / "rel"
    release.mkdir()
    shutil.copy(MIGRATIONS_DIR / "001_layers.sql", release)
    (release / "002_broken.sql").write_text("CREATE TABLE meta.ok (x INT); SELECT nonsense FROM nowhere;")
    con = duckdb.connect(":memory:")
    with pytest.raises(duckdb.Error):
        migrate(con, release)
    assert schema_version(con) == 1
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'ok'").fetchall() == [(0,)]


def test_gaps_in_migration_numbers_are_refused(tmp_path):
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "003_c.sql").write_text("SELECT 1;")
    with pytest.raises(StoreError, match="without gaps"):
        migrations(tmp_path)
