"""What a database holds, table by table: row count and a content hash, so that an upgrade can be
checked row for row (tests/cartwatch/test_upgrade_from_0_1_0.py). Run as a program by
tests/fixtures/release_0_1_0/build.sh with release 0.1.0's own Python to write the manifest of
the database that release made; it needs nothing but duckdb.

The hash is order-free: the md5 of each row's text (DuckDB's cast of the row to VARCHAR, times in
UTC), sorted, joined and hashed again. It depends on DuckDB's text form of values, so the fixture
is rebuilt when the DuckDB version changes (the manifest names the version it was made with).
"""

from __future__ import annotations

import json
import sys

import duckdb


def tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [f"{schema}.{name}" for schema, name in con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
        "ORDER BY table_schema, table_name").fetchall()]


def table_digest(con: duckdb.DuckDBPyConnection, table: str, where: str = "TRUE") -> dict:
    """{"rows": count, "md5": hash of the rows' content} of the table's rows matching `where`."""
    rows, digest = con.execute(
        "SELECT count(*), md5(coalesce(string_agg(h, '' ORDER BY h), '')) "
        f"FROM (SELECT md5(CAST(t AS VARCHAR)) AS h FROM {table} AS t WHERE {where})").fetchone()
    return {"rows": rows, "md5": digest}


def manifest(db_path: str) -> dict:
    con = duckdb.connect(db_path, read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return {"duckdb": duckdb.__version__,
                "tables": {table: table_digest(con, table) for table in tables(con)}}
    finally:
        con.close()


if __name__ == "__main__":
    json.dump(manifest(sys.argv[1]), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
