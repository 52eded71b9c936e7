"""A reading command's `--as-of` evaluation, built in a scratch database instead of the store.

`explain`, `report`, `export` and `digest` read the store's last evaluation (the nightly's). With
`--as-of T` they read an evaluation as of T; built in the store, it would replace the nightly's
for every later reader (and `meta.build_state` would say T). So it is built in a scratch DuckDB
file of its own: in a private temporary folder (owner-only), removed when the command ends, also on
error. The scratch database attaches the store READ_ONLY (a write to it is refused by DuckDB, not
by care) and holds:

- views over the store's tables for what the build and the readers only read: staged rows (`stg.*`),
  raw and quarantine rows, `ref.lab_codes`, `meta.*` and the stored nights (`flags.*_by_night`);
- tables of its own for what the build writes: every derived and flags table and macro, `ref.scope`,
  `ref.analytes` and `meta.build_state` (empty, so the build is a full one).

The build is the one the store gets (cartwatch.incremental.evaluate, same run order, same code), so
the command's output is the same as an evaluation in the store would give.

The store is attached, so no other process may hold it open for writing meanwhile (DuckDB refuses
a read-only attach of a file another process has open read-write): the command keeps taking the
job lock, as every command does.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

import duckdb

from cartwatch.store import MEMORY_LIMIT, migrate, sql_path
from transforms.rules import Rules

STORE = "store"       # the catalog name of the attached store inside the scratch database
BUILT_HERE = {("ref", "scope"), ("ref", "analytes"), ("meta", "build_state")}


def built_here(schema: str, table: str) -> bool:
    """Tables the build writes: the derived and flags layers (stored nights aside) and its bookkeeping."""
    if schema in ("derived", "flags"):
        return not table.endswith("_by_night")
    return (schema, table) in BUILT_HERE


def store_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? "
                       "UNION SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = ? "
                       "AND NOT internal ORDER BY 1, 2", [STORE, STORE]).fetchall()


def expose_store(con: duckdb.DuckDBPyConnection) -> None:
    """A view over each store table the build and the readers only read, in place of the empty
    table of the same name the migrations made (the big staged tables are read, not copied)."""
    for schema, table in store_tables(con):
        if built_here(schema, table):
            continue
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        con.execute(f'DROP TABLE IF EXISTS "{schema}"."{table}"')
        con.execute(f'CREATE VIEW "{schema}"."{table}" AS SELECT * FROM {STORE}."{schema}"."{table}"')


def attach_store(con: duckdb.DuckDBPyConnection, db_path: str | Path) -> None:
    con.execute(f"ATTACH '{sql_path(Path(db_path).resolve())}' AS {STORE} (READ_ONLY)")


@contextmanager
def scratch_evaluation(db_path: str | Path, rules: Rules, *, as_of: datetime, as_loaded: bool,
                       site_tz: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to a scratch database holding the evaluation as of `as_of` over the store's rows.

    The caller must not hold the store open in this process (DuckDB attaches a file once).
    """
    from cartwatch.incremental import evaluate

    folder = Path(tempfile.mkdtemp(prefix="cartwatch-scratch-"))      # mode 0700: the owner's alone
    try:
        con = duckdb.connect(str(folder / "scratch.duckdb"))
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET memory_limit = ?", [MEMORY_LIMIT])
            attach_store(con, db_path)
            migrate(con)           # the layers' schemas, the build's own tables and the shared macros
            expose_store(con)
            evaluate(con, rules, as_of=as_of, as_loaded=as_loaded, site_tz=site_tz, full=True)
            yield con
        finally:
            con.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
