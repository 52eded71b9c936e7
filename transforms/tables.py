"""Frames in and out of the store for the polars steps: Arrow both ways, no Python rows."""

from __future__ import annotations

from typing import Mapping

import duckdb
import polars as pl


def read_frame(con: duckdb.DuckDBPyConnection, sql: str, params: Mapping | None = None) -> pl.DataFrame:
    """A query's result as a polars frame (TIMESTAMPTZ as UTC datetimes; an empty result keeps its schema)."""
    return con.sql(sql, params=dict(params) if params else None).pl()


def write_table(con: duckdb.DuckDBPyConnection, table: str, df: pl.DataFrame) -> None:
    """CREATE OR REPLACE `table` from a frame (tz-aware datetimes become TIMESTAMPTZ)."""
    con.register("_cartwatch_frame", df.to_arrow())
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _cartwatch_frame")
    finally:
        con.unregister("_cartwatch_frame")
