"""Incremental evaluation: rebuild only the patients whose evaluation can have changed.

The derived and flags layers are per-patient: no patient's rows depend on another's. A patient's
evaluation as of t depends on the rows known by t, and on t itself only through time windows of the
rules (quiet periods, lags, look-backs), all bounded by the longest duration in the rules file, the
*horizon* H. So between a build as of t1 and one as of t2 > t1, a patient's evaluation can change
only if:

- rows of the patient were loaded since the last build (stg load_seq above the one recorded), or
- a row of the patient is known in (t1 - H, t2]: newly known rows, and patients recently active
  enough that a time window may still close.

Every other patient's rows are carried over. The build runs the run order with `ref.scope` holding
the touched patients (the four base derived files read only their staged rows, so every later step
reads only theirs), then merges: in each table the touched patients' rows are replaced, the others
are left where they are, so a night costs what its patients cost, not what the history holds. All
of it in one transaction. A full build happens instead on the first build, when the rules file,
the code (sql/, transforms/) or the site zone changed (fingerprint), when `as_loaded` changed, when as-of moves back, or
when asked.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from cartwatch import build as builder
from cartwatch.store import SQL_DIR, transaction
from transforms.rules import Rules

TRANSFORMS_DIR = Path(__file__).resolve().parent.parent / "transforms"

# The code a build depends on: (folder, file suffixes hashed). transforms/ holds the polars steps and
# everything they import; sql/ the SQL steps, macros and run order (migrations are the store's, not
# the evaluation's).
CODE_HASHED = ((SQL_DIR, (".sql", ".txt", ".csv")), (TRANSFORMS_DIR, (".py", ".yaml", ".csv")))
HORIZON_MARGIN_HOURS = 48      # calendar-day rounding and DST on top of the longest rule window
STATE_COLUMNS = ("fingerprint", "as_of", "as_loaded", "load_seq", "tables", "stamp", "mode", "patients",
                 "built_at")

KNOWN_ROWS = """
    SELECT patient_id, coalesce(resulted_at, observed_at) AS known_at, loaded_at, load_seq FROM stg.lab_results
    UNION ALL SELECT patient_id, observed_at, loaded_at, load_seq FROM stg.vitals
    UNION ALL SELECT patient_id, observed_at, loaded_at, load_seq FROM stg.events
    UNION ALL SELECT patient_id, observed_at, loaded_at, load_seq FROM stg.infusions
"""


@dataclass
class BuildReport:
    mode: str                 # full | incremental | unchanged
    reason: str
    patients: int | None      # patients evaluated (None: all)
    seconds: float


def horizon(rules: Rules) -> timedelta:
    """The longest time window of any rule (hours and days), plus a margin."""
    hours = [v for k, v in rules.values.items() if rules.raw["rules"][k]["unit"] == "h"]
    days = [v for k, v in rules.values.items() if rules.raw["rules"][k]["unit"] == "d"]
    return timedelta(hours=max(hours + [d * 24 for d in days] + [0]) + HORIZON_MARGIN_HOURS)


def fingerprint(rules: Rules, site_tz: str) -> str:
    """What the evaluation is a function of besides the data: the rules file, the site zone, and all
    the code a build can run: every file under sql/ (migrations aside) and every module under
    transforms/, so a change in logic a step imports (crs_grading, ferritin_signal) is seen too."""
    digest = hashlib.sha256(rules.path.read_bytes())
    digest.update(site_tz.encode())
    for root, suffixes in CODE_HASHED:
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in suffixes and "schema" not in path.relative_to(root).parts:
                digest.update(str(path.relative_to(root.parent)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def read_state(con: duckdb.DuckDBPyConnection) -> dict | None:
    row = con.execute(f"SELECT {', '.join(STATE_COLUMNS)} FROM meta.build_state").fetchone()
    return dict(zip(STATE_COLUMNS, row)) if row else None


def _write_state(con, *, fp: str, as_of: datetime, as_loaded: bool, tables: list[str], mode: str,
                 patients: int | None) -> None:
    """Record the build, and stamp its tables (a build by other code loses the stamp)."""
    seq = con.execute(f"SELECT coalesce(max(load_seq), -1) FROM ({KNOWN_ROWS})").fetchone()[0]
    stamp = f"cartwatch build {uuid.uuid4().hex}"
    for table in tables:
        con.execute(f"COMMENT ON TABLE {table} IS '{stamp}'")
    con.execute("DELETE FROM meta.build_state")
    con.execute("INSERT INTO meta.build_state (fingerprint, as_of, as_loaded, load_seq, tables, stamp, mode, "
                "patients, built_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, now())",
                [fp, as_of, as_loaded, seq, tables, stamp, mode, patients])


def _stamps(con) -> dict[str, str | None]:
    return {f"{s}.{t}": c for s, t, c in con.execute(
        "SELECT schema_name, table_name, comment FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name IN ('derived', 'flags')").fetchall()}


def _table_oids(con) -> dict[str, int]:
    return {f"{s}.{t}": oid for s, t, oid in con.execute(
        "SELECT schema_name, table_name, table_oid FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name IN ('derived', 'flags')").fetchall()}


def _run_steps(con, ctx: builder.BuildContext) -> list[str]:
    """The build's steps inside the caller's transaction; returns the tables they (re)created."""
    before = _table_oids(con)
    builder.run_steps(con, ctx)
    after = _table_oids(con)
    return sorted(t for t, oid in after.items() if before.get(t) != oid)


def touched_patients(con, *, since: datetime, as_of: datetime, as_loaded: bool, load_seq: int,
                     window: timedelta) -> list[str]:
    """Patients with rows loaded after `load_seq`, or (when time moved on) a row known in (since - window, as_of]."""
    known = "CASE WHEN $as_loaded THEN greatest(known_at, loaded_at) ELSE known_at END"
    return [p for (p,) in con.execute(
        f"SELECT DISTINCT patient_id FROM ({KNOWN_ROWS}) WHERE load_seq > $seq "
        f"OR ($as_of::TIMESTAMPTZ > $since::TIMESTAMPTZ AND {known} > $since::TIMESTAMPTZ - $window "
        f"AND {known} <= $as_of::TIMESTAMPTZ) ORDER BY 1",
        {"seq": load_seq, "since": since, "as_of": as_of, "as_loaded": as_loaded, "window": window}).fetchall()]


def _full_reason(con, state: dict | None, fp: str, as_of: datetime, as_loaded: bool) -> str | None:
    if state is None:
        return "first build"
    if state["fingerprint"] != fp:
        return "rules, code (sql/, transforms/) or site zone changed"
    if state["as_loaded"] != as_loaded:
        return "as-loaded changed"
    if as_of < state["as_of"]:
        return "as-of before the last build's"
    stamps = _stamps(con)
    if any(stamps.get(t, "") != state["stamp"] for t in state["tables"]):
        return "the tables were rebuilt by another command since"
    for table in state["tables"]:
        schema, name = table.split(".")
        if not con.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema = ? AND "
                           "table_name = ? AND column_name = 'patient_id'", [schema, name]).fetchone()[0]:
            return f"{table} has no patient_id to merge on"
    return None


def evaluate(con: duckdb.DuckDBPyConnection, rules: Rules, *, as_of: datetime, as_loaded: bool,
             site_tz: str, full: bool = False) -> BuildReport:
    """Bring derived/flags to `as_of`, incrementally when it gives the same result as a full build."""
    started = time.perf_counter()
    fp = fingerprint(rules, site_tz)
    ctx = builder.build_context(rules, as_of=as_of, as_loaded=as_loaded, site_tz=site_tz)
    state = read_state(con)
    reason = "requested" if full else _full_reason(con, state, fp, as_of, as_loaded)
    if reason is not None:
        with transaction(con):
            con.execute("DELETE FROM ref.scope")
            tables = _run_steps(con, ctx)
            _write_state(con, fp=fp, as_of=as_of, as_loaded=as_loaded, tables=tables, mode="full", patients=None)
        return BuildReport("full", reason, None, time.perf_counter() - started)
    patients = touched_patients(con, since=state["as_of"], as_of=as_of, as_loaded=as_loaded,
                                load_seq=state["load_seq"], window=horizon(rules))
    tables = list(state["tables"])
    with transaction(con):
        if patients:
            _scoped_build(con, ctx, patients, tables)
        _write_state(con, fp=fp, as_of=as_of, as_loaded=as_loaded, tables=tables,
                     mode="incremental" if patients else "unchanged", patients=len(patients))
    return BuildReport("incremental" if patients else "unchanged",
                       f"{len(patients)} patients touched", len(patients), time.perf_counter() - started)


def _scoped_build(con, ctx: builder.BuildContext, patients: list[str], tables: list[str]) -> None:
    """Inside the caller's transaction: build the scope's patients alone, then put their rows in
    place of theirs in the last build's tables (the other patients' rows are not touched)."""
    con.execute("DELETE FROM ref.scope")
    con.execute("INSERT INTO ref.scope SELECT unnest(?)", [patients])
    for table in tables:
        con.execute(f"ALTER TABLE {table} RENAME TO {table.split('.')[1]}__previous")
    rebuilt = _run_steps(con, ctx)
    if sorted(rebuilt) != sorted(tables):
        raise RuntimeError(f"the build wrote {rebuilt}, the last full build {tables}: run a full build")
    types = _column_types(con)
    for table in tables:
        schema, name = table.split(".")
        _merge(con, table, same_columns=types[table] == types[f"{schema}.{name}__previous"])
    con.execute("DELETE FROM ref.scope")


def _merge(con, table: str, same_columns: bool) -> None:
    """`table` (the scope's rows) into `<table>__previous` (everyone's, as last built), renamed back.

    The cost follows the scope, not the history: the scope's old rows are deleted and its new ones
    appended. A column the scope typed differently (all NULL there, say) cannot be appended to: then
    the other patients' rows are copied into the new table instead, as a full merge.
    """
    schema, name = table.split(".")
    previous = f"{schema}.{name}__previous"
    if same_columns:
        con.execute(f"DELETE FROM {previous} WHERE patient_id IN (SELECT patient_id FROM ref.scope)")
        con.execute(f"INSERT INTO {previous} BY NAME SELECT * FROM {table}")
        con.execute(f"DROP TABLE {table}")
        con.execute(f"ALTER TABLE {previous} RENAME TO {name}")
    else:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {previous} "
                    "WHERE patient_id NOT IN (SELECT patient_id FROM ref.scope)")
        con.execute(f"DROP TABLE {previous}")


def _column_types(con) -> dict[str, list[tuple[str, str]]]:
    """Every derived and flags table's (column, type) list, in column order."""
    types: dict[str, list[tuple[str, str]]] = {}
    for schema, table, column, kind in con.execute(
            "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name IN ('derived', 'flags') "
            "ORDER BY schema_name, table_name, column_index").fetchall():
        types.setdefault(f"{schema}.{table}", []).append((column, kind))
    return types
