"""meta.runs: one row per pipeline run, written at its start, marked at each step, completed at its end.

A run that never completes (its process killed) keeps an empty outcome; the next run marks it
`killed` when it starts (`start_run`). That is safe because runs are written only by a job that
holds the database (store.job_lock): while this job holds it, no other run can be going on, so
an unfinished run of another process is dead. Its process id and host are in `counts` (pid, host)
and the step it had reached in `counts.step`.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb


@dataclass(frozen=True)
class DeadRun:
    """A run found unfinished: killed (or its machine stopped) at `step`."""

    run_id: str
    kind: str
    started_at: datetime
    step: str

    def describe(self) -> str:
        return (f"{self.kind} run {self.run_id} started {self.started_at.isoformat(timespec='seconds')} was killed "
                f"during step '{self.step}' (no outcome recorded; marked killed)")


def start_run(con: duckdb.DuckDBPyConnection, kind: str, as_of: datetime, rules_version: str) -> str:
    run_id = uuid.uuid4().hex[:12]
    con.execute("INSERT INTO meta.runs (run_id, kind, as_of, started_at, rules_version, counts) "
                "VALUES (?, ?, ?, now(), ?, ?)",
                [run_id, kind, as_of, rules_version, json.dumps(_owner() | {"step": "start"})])
    return run_id


def mark_step(con: duckdb.DuckDBPyConnection, run_id: str, step: str) -> None:
    """Record the step a run has reached (what a killed run's record then says)."""
    con.execute("UPDATE meta.runs SET counts = json_merge_patch(counts, ?) WHERE run_id = ?",
                [json.dumps({"step": step}), run_id])


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, *, outcome: str, files: int = 0,
               counts: dict | None = None, error: str | None = None) -> None:
    """The run's outcome and counts; the step it had reached stays unless `counts` names one (a
    failed backfill's record then says which night it had stored last)."""
    con.execute(
        "UPDATE meta.runs SET finished_at = now(), outcome = ?, files = ?, "
        "counts = json_merge_patch(json_object('step', counts->>'step'), ?), error = ?, "
        "duration_s = epoch(now() - started_at) WHERE run_id = ?",
        [outcome, files, json.dumps(_owner() | (counts or {})), error, run_id])


def record_failed_start(con: duckdb.DuckDBPyConnection, kind: str, as_of: datetime | None, rules_version: str | None,
                        step: str, error: str) -> str:
    """A run that failed before its flow could record it (Prefect did not start, for one)."""
    run_id = uuid.uuid4().hex[:12]
    con.execute("INSERT INTO meta.runs (run_id, kind, as_of, started_at, finished_at, outcome, files, counts, "
                "duration_s, rules_version, error) VALUES (?, ?, ?, now(), now(), 'failed', 0, ?, 0, ?, ?)",
                [run_id, kind, as_of, json.dumps(_owner() | {"step": step}), rules_version, error])
    return run_id


def mark_dead_runs(con: duckdb.DuckDBPyConnection) -> list[DeadRun]:
    """Mark every unfinished run of another process `killed`; call it holding the database."""
    rows = con.execute(
        "SELECT run_id, kind, started_at, coalesce(counts->>'step', 'unknown') FROM meta.runs "
        "WHERE outcome IS NULL AND coalesce(TRY_CAST(counts->>'pid' AS INTEGER), -1) <> ? "
        "ORDER BY started_at", [os.getpid()]).fetchall()
    dead = [DeadRun(*row) for row in rows]
    for run in dead:
        con.execute("UPDATE meta.runs SET outcome = 'killed', error = ? WHERE run_id = ?",
                    [run.describe(), run.run_id])
    return dead


def runs_gone_wrong(con: duckdb.DuckDBPyConnection, kinds: tuple[str, ...],
                    started_after: datetime | None) -> list[dict]:
    """Runs of `kinds` marked killed or recorded failed that started after `started_after` (all
    when None), oldest first: kind, outcome, as_of, started_at, the step reached and the error."""
    cursor = con.execute(
        "SELECT kind, outcome, as_of, started_at, coalesce(counts->>'step', 'unknown') AS step, error "
        "FROM meta.runs WHERE outcome IN ('killed', 'failed') AND list_contains(?, kind) "
        "AND (?::TIMESTAMPTZ IS NULL OR started_at > ?::TIMESTAMPTZ) ORDER BY started_at, run_id",
        [list(kinds), started_after, started_after])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _owner() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
