"""The embedded DuckDB store: open it, migrate it in place, and load reference tables.

Migrations are the numbered files of sql/schema/ (`NNN_name.sql`); `meta.schema_version` records
which have been applied, so a database made by an earlier release upgrades when it is opened.

One job at a time: DuckDB lets one process hold the file, and refuses a second at once. A cartwatch
job therefore takes `job_lock` first: an advisory lock on `<database>.lock` that records the job's
kind, process id and start time. A second job waits for it (up to `lock_wait_seconds`), then stops
with one line naming the job that holds the database. The operating system releases the lock when
the holder exits, however it exits (a killed job never leaves a stale lock).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import duckdb

from cartwatch.processes import alive

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
MIGRATIONS_DIR = SQL_DIR / "schema"
LAB_CODES_CSV = SQL_DIR / "reference" / "lab_codes.csv"
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


class StoreError(RuntimeError):
    """The database cannot be opened or migrated (the message is one line naming it and why)."""


class JobBusy(StoreError):
    """Another cartwatch job held the database for longer than this job was willing to wait."""


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


def sql_path(path: str | Path) -> str:
    """A path as the inside of a SQL string literal (quotes doubled): DuckDB's COPY and ATTACH take
    no parameter for a file name."""
    return str(path).replace("'", "''")


def table_columns(con: duckdb.DuckDBPyConnection, qualified: str) -> set[str]:
    """The columns of `schema.table` in this connection's own database (not in an attached store:
    a scratch evaluation attaches one with the same names); empty when the table does not exist."""
    schema, table = qualified.split(".")
    return {c for (c,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = current_database() "
        "AND table_schema = ? AND table_name = ?",
        [schema, table]).fetchall()}


def migrate(con: duckdb.DuckDBPyConnection, directory: Path = MIGRATIONS_DIR) -> int:
    """Apply every migration newer than the database, each in its own transaction."""
    current = schema_version(con)
    known = migrations(directory)
    if known and current > known[-1][0]:
        raise StoreError(f"database schema version {current} is newer than this cartwatch knows "
                         f"({known[-1][0]}): upgrade cartwatch")
    for number, path in known:
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


def open_store(db_path: str | Path, *, create: bool = True,
               memory_limit: str = MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """Open (creating it when `create`) and migrate the database; times are handled in UTC inside.

    Commands that only read (digest, export) pass create=False: a mistyped path is an error, not
    a new empty database.
    """
    if str(db_path) != ":memory:":
        check_database(db_path, create=create)
        Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(db_path))
    except duckdb.Error as exc:
        problem, busy = open_problem(db_path, exc)
        raise (JobBusy if busy else StoreError)(f"database {db_path}: {problem}") from None
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET memory_limit = ?", [memory_limit])
    migrate(con)
    load_lab_codes(con)
    return con


DUCKDB_MAGIC = b"DUCK"     # bytes 8-11 of every DuckDB database file


def check_database(db_path: str | Path, *, create: bool) -> None:
    """Refuse, in one line, a database path that cannot be what the command needs (no DuckDB call)."""
    path = Path(db_path)
    if path.is_dir():
        raise StoreError(f"database {path}: is a folder, not a database file")
    if not path.exists():
        if not create:
            raise StoreError(f"database {path}: no such file (digest, export, explain and report read "
                             "an existing database: run `cartwatch nightly` or `cartwatch ingest` first, or fix --db)")
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is not None and not os.access(parent, os.W_OK):
            raise StoreError(f"database {path}: cannot be created ({parent} is not writable)")
        return
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise StoreError(f"database {path}: cannot be read ({exc.strerror or exc})") from None
    if len(head) and head[8:12] != DUCKDB_MAGIC:
        raise StoreError(f"database {path}: not a DuckDB database file")


def open_problem(db_path: str | Path, exc: Exception) -> tuple[str, bool]:
    """DuckDB's reason for refusing to open a file, in one line, and whether another process holds it."""
    text = " ".join(str(exc).split())
    pid = re.search(r"\(PID (\d+)\)", text)
    if "lock" in text.lower() and pid:
        job = lock_holder(db_path)
        if job and str(job.get("pid")) == pid.group(1):
            return f"held by another cartwatch job: {describe_job(job)}", True
        return f"held by another process (pid {pid.group(1)}), not a cartwatch job", True
    return text, False


# ---------------------------------------------------------------------------------------------
# one job at a time

_HELD: dict[str, list] = {}         # lock path -> [file, depth, job]: re-entrant within a process
_HELD_GUARD = threading.Lock()


def lock_path(db_path: str | Path) -> Path:
    path = Path(db_path).expanduser().resolve()
    return path.with_name(path.name + ".lock")


def lock_holder(db_path: str | Path) -> dict | None:
    """The job recorded in the lock file (kind, pid, started_at), if any."""
    for _ in range(3):      # the holder truncates then writes: read again if caught in between
        try:
            text = lock_path(db_path).read_text(encoding="utf-8")
        except OSError:
            return None
        if text.strip():
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                pass
        time.sleep(0.05)
    return None


def describe_job(job: dict | None) -> str:
    if not job:
        return "a job that did not say what it is"
    return f"{job.get('kind', '?')} (pid {job.get('pid', '?')}, started {job.get('started_at', '?')})"


@contextmanager
def job_lock(db_path: str | Path, kind: str, wait_seconds: float,
             on_wait: Callable[[dict | None], None] | None = None, what: str = "database") -> Iterator[None]:
    """Hold the database for one cartwatch job; wait up to `wait_seconds` for another to finish.

    Re-entrant within a process (the command line takes it, then the flow it runs takes it again).
    `on_wait` is called once, with the holder, when this job has to wait.
    """
    if str(db_path) == ":memory:":
        yield
        return
    path = lock_path(db_path)
    key = str(path)
    with _HELD_GUARD:
        if key in _HELD:
            _HELD[key][1] += 1
            entry = _HELD[key]
        else:
            entry = None
    if entry is None:
        entry = [_acquire(path, db_path, kind, wait_seconds, on_wait, what), 1, kind]
        with _HELD_GUARD:
            _HELD[key] = entry
    try:
        yield
    finally:
        with _HELD_GUARD:
            entry[1] -= 1
            if entry[1] == 0:
                del _HELD[key]
                entry[0].close()     # closing the file releases the lock


def _acquire(path: Path, db_path: str | Path, kind: str, wait_seconds: float,
             on_wait: Callable[[dict | None], None] | None, what: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle = open(path, "a+", encoding="utf-8")
    except OSError as exc:
        raise StoreError(f"{what} {db_path}: cannot create its lock file {path} "
                         f"({exc.strerror or exc})") from None
    try:
        _lock(handle, path, db_path, kind, wait_seconds, on_wait, what)
    except BaseException:
        handle.close()
        raise
    return handle


def _lock(handle, path: Path, db_path: str | Path, kind: str, wait_seconds: float,
          on_wait: Callable[[dict | None], None] | None, what: str) -> None:
    """Take the lock on an open lock file (waiting up to `wait_seconds`) and record this job in it.
    While it waits, a marker beside the lock file says so: a holder that can (a backfill, between
    two nights) then lets this job in."""
    deadline = time.monotonic() + wait_seconds
    told = False
    marker = None
    try:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = lock_holder(db_path)
                if time.monotonic() >= deadline:
                    waited = f"; waited {wait_seconds:g} s (setting lock_wait_seconds)" if wait_seconds else ""
                    raise JobBusy(f"{what} {db_path}: held by another cartwatch job: {describe_job(holder)}"
                                  f"{waited}") from None
                if marker is None:
                    marker = _mark_waiting(path, kind)
                if not told and on_wait is not None:
                    on_wait(holder)
                    told = True
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)
    job = {"kind": kind, "pid": os.getpid(), "host": socket.gethostname(),
           "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:2]))}
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(job))
    handle.flush()


# ---------------------------------------------------------------------------------------------
# a long job lets waiting jobs in (a backfill between two nights)

WAITING_SUFFIX = ".waiting-"
HANDOVER_SECONDS = 30      # how long a yielding holder leaves the lock to a waiting job before taking it back


def _mark_waiting(path: Path, kind: str) -> Path | None:
    marker = path.with_name(f"{path.name}{WAITING_SUFFIX}{os.getpid()}")
    try:
        marker.write_text(kind, encoding="utf-8")
    except OSError:
        return None      # only a courtesy to the holder: waiting works without it
    return marker


def waiting_jobs(db_path: str | Path) -> list[str]:
    """The kinds of the jobs of other live processes waiting for the database."""
    path = lock_path(db_path)
    kinds = []
    for marker in path.parent.glob(f"{path.name}{WAITING_SUFFIX}*"):
        pid = marker.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and alive(int(pid)):
            try:
                kinds.append(marker.read_text(encoding="utf-8").strip() or "?")
            except OSError:
                continue
    return kinds


def let_waiting_jobs_in(con: duckdb.DuckDBPyConnection, db_path: str | Path, kind: str,
                        wait_seconds: float) -> duckdb.DuckDBPyConnection:
    """Between two units of work of a long job: when other jobs wait for the database, close it,
    release the lock until they have taken it (up to HANDOVER_SECONDS), take it back (waiting up to
    `wait_seconds` for them to finish, as any job waits) and return the database opened again;
    otherwise return `con` as it is. Call it between transactions only."""
    key = str(lock_path(db_path))
    with _HELD_GUARD:
        entry = _HELD.get(key)
    if entry is None or not waiting_jobs(db_path):
        return con
    con.close()
    handle = entry[0]
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    deadline = time.monotonic() + HANDOVER_SECONDS
    while waiting_jobs(db_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    _lock(handle, lock_path(db_path), db_path, kind, wait_seconds, None, "database")
    return open_store(db_path)


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
