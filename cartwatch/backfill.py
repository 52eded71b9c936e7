"""Backfills: a cohort evaluated as of each night of a date range, and the per-night results.

A night is the nightly run time (the schedule's hour and minute, site zone) of a date. The store's
file is held by one process, so a backfill reads the stg tables of its cohort once into Arrow, and
each worker thread evaluates nights in an in-memory DuckDB of its own made from them (built once per
thread), returning that night's windows, latest daily flags and digest selection. The main thread
commits the nights in order: results, digest (which starts from the previous night's state) and the
night's completion record, in one transaction; a killed backfill resumes at the first night without
a record.

Per-night results (flags.windows_by_night, flags.daily_by_night, flags.digest_by_night) are written
the same way by nightly runs (stream 'nightly') and backfills (stream 'backfill:<id>'), so the two
can be compared night by night.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from cartwatch.build import build
from cartwatch.digest import make_digest
from cartwatch.digest.select import canonical_evidence, patient_snapshot, table_columns
from cartwatch.incremental import fingerprint
from cartwatch.settings import Settings
from cartwatch.store import open_store, sql_path, transaction
from transforms.rules import Rules
from transforms.timestamps import zone

DEFAULT_NIGHTLY_CRON = "0 2 * * *"
STG_TABLES = ("stg.infusions", "stg.lab_results", "stg.vitals", "stg.events")
WINDOW_COLUMNS = ("patient_id", "infusion_id", "criteria_set", "status", "onset_at", "onset_day", "end_at",
                  "end_day", "crs_onset_day", "crs_peak_day", "crs_resolved_day", "late_onset", "evidence",
                  "rules_version")
DAILY_COLUMNS = ("patient_id", "infusion_id", "day", "crs_grade", "crs_grade_source", "ferritin_max",
                 "ferritin_signal", "easix", "m_easix", "hscore_min", "hscore_max", "hlh_2004_met",
                 "hlh_2004_evaluable", "astct_iec_hs_2023", "cartox_2017", "shah_2020", "ucsf_masl_2020",
                 "hlh_94", "rules_version")


class BackfillError(ValueError):
    """The backfill cannot run as asked (empty cohort, bad range, unreadable patients file)."""


# ---------------------------------------------------------------------------------------------
# nights


def nightly_cron(settings: Settings) -> str:
    """The nightly schedule (settings `nightly_cron`, 02:00 daily by default), in the site zone."""
    return settings.nightly_cron or DEFAULT_NIGHTLY_CRON


def nightly_time(cron: str) -> dtime:
    """Hour and minute of a daily cron (`M H * * *`)."""
    fields = cron.split()
    if len(fields) != 5 or not fields[0].isdigit() or not fields[1].isdigit():
        raise BackfillError(f"nightly schedule {cron!r}: a backfill needs a fixed daily 'M H * * *' time")
    return dtime(int(fields[1]), int(fields[0]))


def nights(start: date, end: date, at: dtime, site_tz: str) -> list[tuple[date, datetime]]:
    """(night, as-of in UTC) for every date from start to end inclusive."""
    if end < start:
        raise BackfillError(f"--end {end} is before --start {start}")
    out = []
    for k in range((end - start).days + 1):
        d = start + timedelta(days=k)
        out.append((d, datetime.combine(d, at, zone(site_tz)).astimezone(timezone.utc)))
    return out


# ---------------------------------------------------------------------------------------------
# per-night results (shared with the nightly flow)


def _select(con, table: str, columns: tuple[str, ...], by_night: str, qualify: str = "") -> pa.Table:
    have = table_columns(con, table)
    if not {"patient_id"} <= have:
        return con.sql(f"SELECT * EXCLUDE (stream, night, as_of) FROM {by_night} WHERE false").to_arrow_table()
    cols = ", ".join(c if c in have else f"NULL AS {c}" for c in columns)
    return con.sql(f"SELECT {cols} FROM {table} {qualify}").to_arrow_table()


def night_results(con: duckdb.DuckDBPyConnection) -> tuple[pa.Table, pa.Table]:
    """flags.windows (CONTRACT columns, evidence items in time order) and each infusion's latest day
    of flags.daily, as Arrow."""
    windows = _select(con, "flags.windows", WINDOW_COLUMNS, "flags.windows_by_night")
    if windows.num_rows and "evidence" in windows.column_names:
        ordered = [canonical_evidence(e) for e in windows.column("evidence").to_pylist()]
        windows = windows.set_column(windows.column_names.index("evidence"), "evidence",
                                     pa.array(ordered, type=pa.string()))
    daily = _select(con, "flags.daily", DAILY_COLUMNS, "flags.daily_by_night",
                    "QUALIFY row_number() OVER (PARTITION BY patient_id, infusion_id ORDER BY day DESC) = 1")
    return windows, daily


def store_night_results(con: duckdb.DuckDBPyConnection, stream: str, night: date, as_of: datetime,
                        windows: pa.Table, daily: pa.Table) -> None:
    """Replace the stream's results for this as-of (inside the caller's transaction)."""
    for table, data in (("flags.windows_by_night", windows), ("flags.daily_by_night", daily)):
        con.execute(f"DELETE FROM {table} WHERE stream = ? AND as_of = ?", [stream, as_of])
        name = f"night_rows_{uuid.uuid4().hex[:8]}"
        con.register(name, data)
        try:
            con.execute(f"INSERT INTO {table} BY NAME SELECT ?::VARCHAR AS stream, ?::DATE AS night, "
                        f"?::TIMESTAMPTZ AS as_of, * FROM {name}", [stream, night, as_of])
        finally:
            con.unregister(name)


# ---------------------------------------------------------------------------------------------
# plan


@dataclass
class Plan:
    backfill_id: str
    stream: str
    nights: list[tuple[date, datetime]]
    patients: list[str]
    as_loaded: bool
    params: dict
    done: set[date] = field(default_factory=set)

    @property
    def remaining(self) -> list[tuple[date, datetime]]:
        return [n for n in self.nights if n[0] not in self.done]


def read_patients_file(path: str | Path) -> list[str]:
    """One patient id a line; blank lines and '#' comments ignored; a CSV's first column also works."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BackfillError(f"--patients {path}: {exc.strerror or exc}") from None
    ids = [line.split(",")[0].strip() for line in text.splitlines()]
    return [i for i in ids if i and not i.startswith("#") and i != "patient_id"]


def cohort_infusions(con: duckdb.DuckDBPyConnection, *, site_tz: str, patients: list[str] | None = None,
                     product: str | None = None, infused_from: date | None = None,
                     infused_to: date | None = None) -> list[tuple[str, str]]:
    """(patient, infusion) of every infusion matching every filter given (infusion date in its
    site's zone): the selection of `backfill` and `report`."""
    return con.execute("""
        SELECT DISTINCT patient_id, infusion_id FROM stg.infusions
        WHERE ($patients::VARCHAR[] IS NULL OR list_contains($patients::VARCHAR[], patient_id))
          AND ($product::VARCHAR IS NULL OR lower(product) = lower($product::VARCHAR))
          AND ($from::DATE IS NULL OR timezone(coalesce(site_timezone, $tz), observed_at)::DATE >= $from::DATE)
          AND ($to::DATE IS NULL OR timezone(coalesce(site_timezone, $tz), observed_at)::DATE <= $to::DATE)
        ORDER BY 1, 2""", {"patients": patients, "product": product, "from": infused_from, "to": infused_to,
                           "tz": site_tz}).fetchall()


def cohort(con: duckdb.DuckDBPyConnection, *, site_tz: str, patients: list[str] | None = None,
           product: str | None = None, infused_from: date | None = None,
           infused_to: date | None = None) -> list[str]:
    """Patients with an infusion matching every filter given (infusion date in its site's zone)."""
    found = cohort_infusions(con, site_tz=site_tz, patients=patients, product=product,
                             infused_from=infused_from, infused_to=infused_to)
    return list(dict.fromkeys(p for p, _ in found))


def make_plan(con: duckdb.DuckDBPyConnection, rules: Rules, settings: Settings, *, start: date, end: date,
              patients: list[str] | None = None, product: str | None = None, infused_from: date | None = None,
              infused_to: date | None = None, as_loaded: bool = False, known_by: datetime | None = None) -> Plan:
    """The nights, the cohort and the backfill's id (what makes its nights reproducible)."""
    members = cohort(con, site_tz=settings.site_tz, patients=patients, product=product,
                     infused_from=infused_from, infused_to=infused_to)
    if not members:
        raise BackfillError("no patient with an infusion matches the cohort filters")
    cron = nightly_cron(settings)
    params = {"start": start.isoformat(), "cohort": hashlib.sha256("\n".join(members).encode()).hexdigest(),
              "as_loaded": as_loaded, "build": fingerprint(rules, settings.site_tz), "cron": cron,
              "site_tz": settings.site_tz, "patients_file": patients is not None, "product": product,
              "infused_from": infused_from and infused_from.isoformat(),
              "infused_to": infused_to and infused_to.isoformat()}
    if not as_loaded:   # rows loaded later would change what an earlier night knew: a new backfill
        params["data"] = con.execute("SELECT count(*) FROM meta.files").fetchone()[0]
    if known_by is not None:    # --as-of: only rows known (and, with as_loaded, loaded) by then
        params["known_by"] = known_by.astimezone(timezone.utc).isoformat()
    backfill_id = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    plan = Plan(backfill_id, f"backfill:{backfill_id}", nights(start, end, nightly_time(cron), settings.site_tz),
                members, as_loaded, params)
    plan.done = {d for (d,) in con.execute("SELECT night FROM meta.backfill_nights WHERE backfill_id = ?",
                                           [backfill_id]).fetchall()}
    with transaction(con):
        con.execute("INSERT INTO meta.backfills VALUES (?, ?, now(), ?, ?) ON CONFLICT (backfill_id) DO UPDATE "
                    "SET nights = greatest(meta.backfills.nights, excluded.nights)",
                    [backfill_id, json.dumps(params), len(plan.nights), len(members)])
    return plan


# ---------------------------------------------------------------------------------------------
# workers


@dataclass
class Sources:
    """The cohort's stg rows, read once; each worker thread builds its database from them once."""

    token: str
    tables: dict[str, pa.Table]
    rules: Rules
    site_tz: str
    as_loaded: bool
    local: threading.local = field(default_factory=threading.local)
    cancelled: bool = False
    connections: list = field(default_factory=list)

    def close(self) -> None:
        for con in self.connections:
            con.close()
        self.connections.clear()


def read_sources(con: duckdb.DuckDBPyConnection, patients: list[str], rules: Rules, settings: Settings,
                 as_loaded: bool, known_by: datetime | None = None) -> Sources:
    """The cohort's stg rows; with `known_by` (backfill --as-of), only the rows known by then."""
    tables = {}
    con.execute("CREATE OR REPLACE TEMP TABLE backfill_cohort AS SELECT unnest(?::VARCHAR[]) AS patient_id",
                [patients])
    for table in STG_TABLES:
        known = "coalesce(resulted_at, observed_at)" if table == "stg.lab_results" else "observed_at"
        cutoff = "" if known_by is None else (
            f" AND {known} <= $known_by::TIMESTAMPTZ" + (" AND loaded_at <= $known_by::TIMESTAMPTZ" if as_loaded else ""))
        tables[table] = con.sql(f"SELECT * FROM {table} WHERE patient_id IN "
                                f"(SELECT patient_id FROM temp.backfill_cohort){cutoff}",
                                params={"known_by": known_by} if known_by is not None else None).to_arrow_table()
    con.execute("DROP TABLE temp.backfill_cohort")
    return Sources(uuid.uuid4().hex, tables, rules, settings.site_tz, as_loaded)


def worker_store(sources: Sources) -> duckdb.DuckDBPyConnection:
    """This thread's in-memory database with the cohort's stg rows (made on first use)."""
    con = getattr(sources.local, "con", None)
    if con is None:
        con = open_store(":memory:")
        for table, data in sources.tables.items():
            con.register("source_rows", data)
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM source_rows")
            con.unregister("source_rows")
        sources.local.con = con
        sources.connections.append(con)
    return con


@dataclass
class NightResult:
    night: date
    as_of: datetime
    windows: pa.Table
    daily: pa.Table
    snapshot: dict
    seconds: float


def evaluate_night(sources: Sources, night: date, as_of: datetime) -> NightResult:
    """Build the cohort as of the night in this thread's database; return what the night stores."""
    started = time.perf_counter()
    con = worker_store(sources)
    build(con, sources.rules, as_of=as_of, as_loaded=sources.as_loaded, site_tz=sources.site_tz)
    windows, daily = night_results(con)
    snapshot = patient_snapshot(con, as_of=as_of, rules=sources.rules)
    return NightResult(night, as_of, windows, daily, snapshot, time.perf_counter() - started)


def commit_night(con: duckdb.DuckDBPyConnection, plan: Plan, result: NightResult, rules: Rules,
                 settings: Settings) -> dict:
    """Results, digest and completion record of one night, in one transaction (nights in order)."""
    with transaction(con):
        store_night_results(con, plan.stream, result.night, result.as_of, result.windows, result.daily)
        doc = make_digest(con, rules, as_of=result.as_of, as_loaded=plan.as_loaded, stream=plan.stream,
                          site_tz=settings.site_tz, snapshot=result.snapshot,
                          created_at=datetime.now(timezone.utc))
        con.execute("INSERT INTO meta.backfill_nights VALUES (?, ?, ?, ?, ?, ?, now())",
                    [plan.backfill_id, result.night, result.as_of, result.windows.num_rows, doc["alerts"],
                     result.seconds])
    plan.done.add(result.night)
    return doc


# ---------------------------------------------------------------------------------------------
# patient partitions (backfill on a Dask cluster)
#
# The flow process writes the cohort's stg rows as Parquet, one folder per partition of patients
# (contiguous ranges of the sorted cohort); a worker anywhere with read/write access to the folder
# evaluates every night for its partition in an in-memory DuckDB and writes, per night, the windows,
# the latest daily flags and the digest snapshot of its patients; the flow process, the store's one
# writer, then commits the nights in order from those files. The evaluation is per patient (no
# patient's rows depend on another's), so the union of the partitions is the cohort's result.

MANIFEST = "manifest.json"
NIGHTS_DIR = "nights"


class PartitionError(RuntimeError):
    """A partition cannot be evaluated (missing files, or a worker running other code than the flow)."""


@dataclass(frozen=True)
class Partition:
    folder: str          # a path every worker can read and write
    patients: int


def partition_root(settings: Settings, plan: Plan, base: str | Path | None = None) -> Path:
    """Where this backfill's partitions live: `base/<backfill id>`, by default beside the database."""
    if base is None:
        base = Path(f"{settings.db_path}.partitions")
    return Path(base).resolve() / plan.backfill_id


def write_partitions(con: duckdb.DuckDBPyConnection, plan: Plan, rules: Rules, settings: Settings,
                     root: Path, size: int) -> list[Partition]:
    """The cohort's stg rows as Parquet, `size` patients a partition, with a manifest each.

    A partition whose manifest exists is kept (a resumed backfill reuses it and the nights its
    worker already wrote)."""
    if size < 1:
        raise BackfillError(f"partition size {size}: at least one patient a partition")
    parts = []
    build = fingerprint(rules, settings.site_tz)
    for k, start in enumerate(range(0, len(plan.patients), size)):
        members = plan.patients[start:start + size]
        folder = root / f"part-{k:05d}"
        parts.append(Partition(str(folder), len(members)))
        if (folder / MANIFEST).exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        con.execute("CREATE OR REPLACE TEMP TABLE partition_members AS SELECT unnest(?::VARCHAR[]) AS patient_id",
                    [members])
        for table in STG_TABLES:
            target = folder / f"{table}.parquet"
            con.execute(f"COPY (SELECT * FROM {table} WHERE patient_id IN "
                        f"(SELECT patient_id FROM temp.partition_members)) TO '{sql_path(target)}' "
                        "(FORMAT parquet)")
        con.execute("DROP TABLE temp.partition_members")
        shutil.copyfile(rules.path, folder / "rules.yaml")
        manifest = {"backfill_id": plan.backfill_id, "fingerprint": build, "site_tz": settings.site_tz,
                    "as_loaded": plan.as_loaded, "patients": len(members)}
        _write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2))
    return parts


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _night_dir(folder: Path, night: date) -> Path:
    return folder / NIGHTS_DIR / night.isoformat()


def evaluate_partition(folder: str, nights_to_run: list[tuple[date, datetime]]) -> dict:
    """On a worker: build the partition as of each night not yet written; write each night's
    windows.parquet, daily.parquet and snapshot.json into nights/<date>/ (atomically)."""
    from transforms.rules import load_rules

    started = time.perf_counter()
    root = Path(folder)
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PartitionError(f"{root}: no readable manifest ({exc.strerror or exc}): "
                             "workers need access to the partition folder") from None
    rules = load_rules(root / "rules.yaml")
    if fingerprint(rules, manifest["site_tz"]) != manifest["fingerprint"]:
        raise PartitionError(f"{root}: this worker's cartwatch (SQL and steps) differs from the flow's: "
                             "install the same version on every worker")
    todo = [(d, at) for d, at in nights_to_run if not _night_dir(root, d).exists()]
    if todo:
        con = open_store(":memory:")
        try:
            for table in STG_TABLES:
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM "
                            f"read_parquet('{sql_path(root / f'{table}.parquet')}')")
            for night, as_of in todo:
                build(con, rules, as_of=as_of, as_loaded=manifest["as_loaded"], site_tz=manifest["site_tz"])
                windows, daily = night_results(con)
                snapshot = patient_snapshot(con, as_of=as_of, rules=rules)
                _write_night(root, night, windows, daily, snapshot)
        finally:
            con.close()
    return {"folder": folder, "nights": len(todo), "seconds": round(time.perf_counter() - started, 3)}


def _write_night(root: Path, night: date, windows: pa.Table, daily: pa.Table, snapshot: dict) -> None:
    final = _night_dir(root, night)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    pq.write_table(windows, tmp / "windows.parquet")
    pq.write_table(daily, tmp / "daily.parquet")
    (tmp / "snapshot.json").write_text(json.dumps(snapshot), encoding="utf-8")
    try:
        os.rename(tmp, final)
    except OSError:         # written meanwhile by another attempt at the same partition
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.exists():
            raise


def merge_snapshots(parts: list[dict]) -> dict:
    """The cohort's snapshot from its partitions' (in partition order): lists joined, counts
    summed, everything else equal in every part."""
    merged: dict = {}
    for key in parts[0]:
        values = [p[key] for p in parts]
        if isinstance(values[0], list):
            merged[key] = [item for v in values for item in v]
        elif isinstance(values[0], int) and not isinstance(values[0], bool):
            merged[key] = sum(values)
        elif all(v == values[0] for v in values):
            merged[key] = values[0]
        else:
            raise PartitionError(f"snapshot key {key!r} differs between partitions: {values[:3]}")
    return merged


def read_partitioned_night(partitions: list[Partition], night: date, as_of: datetime) -> NightResult:
    """One night of every partition, as the threaded backfill's NightResult."""
    windows, daily, snapshots = [], [], []
    for part in partitions:
        folder = _night_dir(Path(part.folder), night)
        if not folder.exists():
            raise PartitionError(f"{part.folder}: night {night} was not written")
        windows.append(pq.read_table(folder / "windows.parquet"))
        daily.append(pq.read_table(folder / "daily.parquet"))
        snapshots.append(json.loads((folder / "snapshot.json").read_text(encoding="utf-8")))
    return NightResult(night, as_of, _concat(windows), _concat(daily), merge_snapshots(snapshots), 0.0)


def _concat(tables: list[pa.Table]) -> pa.Table:
    non_empty = [t for t in tables if t.num_rows] or tables[:1]
    return pa.concat_tables(non_empty, promote_options="permissive")
