"""meta.runs: one row per pipeline run, written at its start and completed at its end."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import duckdb


def start_run(con: duckdb.DuckDBPyConnection, kind: str, as_of: datetime, rules_version: str) -> str:
    run_id = uuid.uuid4().hex[:12]
    con.execute("INSERT INTO meta.runs (run_id, kind, as_of, started_at, rules_version) "
                "VALUES (?, ?, ?, now(), ?)", [run_id, kind, as_of, rules_version])
    return run_id


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, *, outcome: str, files: int = 0,
               counts: dict | None = None, error: str | None = None) -> None:
    con.execute(
        "UPDATE meta.runs SET finished_at = now(), outcome = ?, files = ?, counts = ?, error = ?, "
        "duration_s = epoch(now() - started_at) WHERE run_id = ?",
        [outcome, files, json.dumps(counts or {}), error, run_id])


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
