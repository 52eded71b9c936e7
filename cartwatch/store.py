"""The embedded DuckDB store: open it, migrate it in place, and load reference tables.

Migrations are the numbered files of sql/schema/ (`NNN_name.sql`); `meta.schema_version` records
which have been applied, so a database made by an earlier release upgrades when it is opened.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
MIGRATIONS_DIR = SQL_DIR / "schema"
LAB_CODES_CSV = SQL_DIR / "reference" / "lab_codes.csv"
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


class StoreError(RuntimeError):
    """The database cannot be opened or migrated."""


def migrations(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, Path]]:
    """The migration files, in order; refuses gaps and duplicate numbers."""
    found = sorted((int(m.group(1)), p) for p in directory.glob("*.sql")
                   if (m := _MIGRATION_NAME.match(p.name)))
    numbers = [n for n, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise StoreError(f"{directory}: migrations must be numbered 001, 002, ... without gaps: {numbers}")
    return found


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    con.execute("CREATE SCHEMA IF NOT EXISTS meta")
    con.execute("CREATE TABLE IF NOT EXISTS meta.schema_version "
                "(version INTEGER NOT NULL, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")
    return scalar(con, "SELECT coalesce(max(version), 0) FROM meta.schema_version")


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None):
    """The first column of the first row, or None, with the result drained.

    DuckDB 2.0 keeps an undrained result open and then refuses other work on the connection
    (`register`, for one), so fetchone() is not used on shared connections.
    """
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def first_row(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None):
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def migrate(con: duckdb.DuckDBPyConnection, directory: Path = MIGRATIONS_DIR) -> int:
    """Apply every migration newer than the database, each in its own transaction."""
    current = schema_version(con)
    for number, path in migrations(directory):
        if number <= current:
            continue
        with transaction(con):
            con.execute(path.read_text(encoding="utf-8"))
            con.execute("INSERT INTO meta.schema_version VALUES (?, ?, now())", [number, path.stem])
        current = number
    return current


def load_lab_codes(con: duckdb.DuckDBPyConnection, csv_path: Path = LAB_CODES_CSV) -> None:
    """Replace ref.lab_codes with the repository's mapping table (it is data, versioned in git)."""
    if not csv_path.is_file():
        return
    with transaction(con):
        con.execute("DELETE FROM ref.lab_codes")
        con.execute(
            "INSERT INTO ref.lab_codes BY NAME SELECT * FROM read_csv(?, header=true, all_varchar=true)",
            [str(csv_path)])


# DuckDB's own default is 80% of the machine's memory; bounded, it spills joins, sorts and
# temporary tables to disk instead, so a cohort load's peak memory does not grow with the cohort.
MEMORY_LIMIT = "1GB"


def open_store(db_path: str | Path, memory_limit: str = MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) and migrate the database; times are handled in UTC inside."""
    if str(db_path) != ":memory:":
        Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(db_path))
    except duckdb.IOException as exc:
        raise StoreError(f"{db_path}: cannot open the database ({exc})") from None
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET memory_limit = ?", [memory_limit])
    migrate(con)
    load_lab_codes(con)
    return con


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All or nothing: a failure inside rolls back, leaving the database as it was."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
