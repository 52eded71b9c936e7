"""Stage one parsed batch: judge it in SQL, gate it with its feed's Great Expectations suite, and
write it (staged, quarantined, raw) inside the caller's transaction.

The judging is set-based: `sql/staging/stg_<table>.sql` turns the whole batch into canonical rows
with the first reason each unusable row has. The reference data it joins is built once per ingest
from the rules file: LOINC -> analyte, the local code table, vital kinds, the zones DuckDB knows,
and the unit conversions. Conversions are computed by pint once per distinct (analyte, unit)
spelling ever seen in the process (`transforms/units.py`), never per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb
import polars as pl

from cartwatch.build import named_parameters, strip_comments
from cartwatch.store import SQL_DIR, scalar
from transforms.criteria_inputs import CRITERIA_EVENTS
from transforms.parsers.base import GRADE_SCALE, VASOPRESSOR_COUNT_MAX, ParsedBatch
from transforms.rules import Rules
from transforms.units import UnitConverter, UnitError

STAGING_DIR = SQL_DIR / "staging"
STAGED_TABLE = {"labs": "stg.lab_results", "vitals": "stg.vitals",
                "infusions": "stg.infusions", "events": "stg.events"}
STAGING_SQL = {feed: STAGING_DIR / f"stg_{table.split('.')[1]}.sql" for feed, table in STAGED_TABLE.items()}
MEASURED_FEEDS = ("labs", "vitals")   # feeds whose values carry a unit

# Event types by how their value is read (docs/contract.md, events feed).
GRADED = ("crs_grade", "icans_grade")
COUNTED = ("vasopressor",)
FINDINGS = CRITERIA_EVENTS   # documented yes/no findings (transforms/criteria_inputs.py)
OTHER_EVENTS = ("tocilizumab", "corticosteroid", "anakinra", "ruxolitinib", "etoposide", "emapalumab",
                "death")
TRUE_WORDS = ("true", "yes", "1", "y", "t")
FALSE_WORDS = ("false", "no", "0", "n", "f")


@dataclass
class BatchCounts:
    read: int = 0
    accepted: int = 0
    duplicate: int = 0
    quarantined: int = 0


@dataclass
class StagingReference:
    """What staging joins and reads, built once per ingest from the rules file and the store."""

    rules: Rules
    site_tz: str
    now: datetime
    converter: UnitConverter = field(init=False)
    conversions: dict[tuple[str, str], tuple[float | None, float | None, str | None]] = field(
        default_factory=dict)

    def __post_init__(self) -> None:
        self.converter = UnitConverter(self.rules)

    def params(self, feed: str) -> dict:
        base = {"site_tz": self.site_tz, "now": self.now,
                "future_tolerance": timedelta(minutes=self.rules.value("time_axis.future_tolerance_minutes")),
                "earliest_year": int(self.rules.value("time_axis.earliest_plausible_year"))}
        if feed == "vitals":
            base["o2_devices"] = sorted(self.rules.o2_devices)
        if feed == "events":
            base.update(graded=list(GRADED), graded_max=GRADE_SCALE[1], counted=list(COUNTED),
                        counted_max=VASOPRESSOR_COUNT_MAX, findings=list(FINDINGS), other_events=list(OTHER_EVENTS),
                        true_words=list(TRUE_WORDS), false_words=list(FALSE_WORDS))
        return base

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        """The static reference relations, as views on this connection."""
        analytes = self.rules.analytes.values()
        con.register("staging_loinc", pl.DataFrame(
            {"loinc": list(self.rules.analyte_by_loinc()), "analyte": list(self.rules.analyte_by_loinc().values())}))
        con.register("staging_analytes", pl.DataFrame(
            {"analyte": [a.name for a in analytes], "canonical_unit": [a.canonical_unit for a in analytes]}))
        con.register("staging_vital_kinds", pl.DataFrame(
            {"kind": list(self.rules.vitals),
             "canonical_unit": [str(v["canonical_unit"]) for v in self.rules.vitals.values()]}))
        con.execute("CREATE OR REPLACE TEMP VIEW staging_local_codes AS SELECT code_system, local_code, "
                    "nullif(any_value(loinc), '') AS loinc, any_value(analyte) AS analyte "
                    "FROM ref.lab_codes GROUP BY ALL")
        con.execute("CREATE OR REPLACE TEMP TABLE staging_time_zones AS SELECT name FROM pg_timezone_names()")
        con.execute((STAGING_DIR / "feed_values.sql").read_text(encoding="utf-8"))

    def register_units(self, con: duckdb.DuckDBPyConnection, batch: ParsedBatch) -> None:
        """`staging_units`: conversions for every (measure, unit spelling) the batch can need."""
        measures = self.rules.analytes if batch.feed == "labs" else self.rules.vitals
        spellings = batch.frame.select(pl.col("unit").str.strip_chars().fill_null("").unique())["unit"]
        for unit in spellings.to_list():
            for measure in measures:
                if (measure, unit) not in self.conversions:
                    self.conversions[(measure, unit)] = self._conversion(measure, unit)
        keys = list(self.conversions)
        con.register("staging_units", pl.DataFrame({
            "measure": [k[0] for k in keys], "unit": [k[1] for k in keys],
            "scale": [self.conversions[k][0] for k in keys], "shift": [self.conversions[k][1] for k in keys],
            "error": [self.conversions[k][2] for k in keys]},
            schema={"measure": pl.String, "unit": pl.String, "scale": pl.Float64, "shift": pl.Float64,
                    "error": pl.String}))

    def _conversion(self, measure: str, unit: str) -> tuple[float | None, float | None, str | None]:
        if measure == "o2_device":
            return None, None, None
        try:
            linear = self.converter.to_canonical(measure, unit)
        except UnitError as exc:
            return None, None, str(exc)
        return linear.scale, linear.offset, None


def judge(con: duckdb.DuckDBPyConnection, ref: StagingReference, batch: ParsedBatch) -> None:
    """`staged_batch`: the batch through its staging SQL (canonical columns, lineage, reason)."""
    if batch.feed in MEASURED_FEEDS:
        ref.register_units(con, batch)
    con.register("parsed_batch", batch.frame.with_row_index("batch_row"))
    try:
        sql = STAGING_SQL[batch.feed].read_text(encoding="utf-8")
        con.execute(f"CREATE OR REPLACE TEMP TABLE staged_batch AS {strip_comments(sql)}",
                    named_parameters(sql, ref.params(batch.feed)))
    finally:
        con.unregister("parsed_batch")


def drop_repeats(con: duckdb.DuckDBPyConnection) -> int:
    """A row repeated later in the batch is a duplicate, before any suite sees it."""
    con.execute("ALTER TABLE staged_batch ADD COLUMN repeat BOOLEAN DEFAULT FALSE")
    con.execute("UPDATE staged_batch SET repeat = TRUE WHERE reason IS NULL AND batch_row NOT IN "
                "(SELECT min(batch_row) FROM staged_batch WHERE reason IS NULL GROUP BY row_key)")
    return scalar(con, "SELECT count(*) FROM staged_batch WHERE repeat")


def gate(con: duckdb.DuckDBPyConnection, rules: Rules, feed: str) -> list[dict]:
    """Run the feed's suite over the batch's usable rows; failing rows get the expectation as reason."""
    from expectations.validate import suite_columns, validate_feed   # GX imports in seconds: only here

    frame = con.sql(f"SELECT {', '.join(suite_columns(feed))} FROM staged_batch "
                    "WHERE reason IS NULL AND NOT repeat").df()
    outcome = validate_feed(feed, frame, rules)
    if outcome.failed:
        con.register("failed_rows", pl.DataFrame(
            {"batch_row": list(outcome.failed), "reason": list(outcome.failed.values())},
            schema={"batch_row": pl.UInt32, "reason": pl.String}))
        try:
            con.execute("UPDATE staged_batch SET reason = f.reason FROM failed_rows AS f "
                        "WHERE staged_batch.batch_row = f.batch_row")
        finally:
            con.unregister("failed_rows")
    return outcome.summary


# Where a file's batches wait until the file is published: one temporary table per target, same
# columns. DuckDB keeps every append of an open transaction in memory (measured: about 160 bytes
# a row, 1.6 GB for a 10M-row file), so batches are committed here one by one, outside the WAL
# (temporary tables spill to DuckDB's temporary folder past its memory limit), and the file
# reaches the real tables in one transaction of a few INSERT ... SELECT statements, which DuckDB
# writes straight to disk. A crash loses only these tables: the database is as before the load.
LANDING = {**{feed: f"landing_{table.split('.')[1]}" for feed, table in STAGED_TABLE.items()},
           "raw": "landing_received", "quarantine": "landing_quarantine"}
TARGET = {**STAGED_TABLE, "raw": "raw.received", "quarantine": "quarantine.rows"}


def clear_landing(con: duckdb.DuckDBPyConnection) -> None:
    """Empty landing tables shaped like their targets."""
    for key, table in LANDING.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {TARGET[key]} LIMIT 0")


def write(con: duckdb.DuckDBPyConnection, feed: str, lineage: dict, first_seq: int) -> BatchCounts:
    """Land the raw rows, staged rows and quarantined rows of `staged_batch`, with the file's
    lineage (committed now; published with the file).

    `load_seq` grows with the row's position in the file (`first_seq` + its place in the batch),
    so ties between versions of a result are broken by the order they were sent in.
    """
    table = STAGED_TABLE[feed]
    columns = [c for (c,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'stg' AND table_name = ? "
        "AND column_name NOT IN ('loaded_at', 'source_file', 'source_line', 'source_format', "
        "'file_sha256', 'load_seq') ORDER BY ordinal_position", [table.split(".")[1]]).fetchall()]
    params = {**lineage, "feed": feed, "first_seq": first_seq}

    def run(sql: str) -> None:
        con.execute(sql, named_parameters(sql, params))

    run(f"INSERT INTO {LANDING['raw']} (file_sha256, source_file, line, feed, format, raw, loaded_at) "
        "SELECT $sha, $file, line, $feed, $format, raw, $loaded_at FROM staged_batch")
    run(f"INSERT INTO {LANDING[feed]} BY NAME SELECT {', '.join(columns)}, $loaded_at AS loaded_at, "
        "$file AS source_file, line AS source_line, $format AS source_format, $sha AS file_sha256, "
        "$first_seq + batch_row AS load_seq FROM staged_batch WHERE reason IS NULL AND NOT repeat")
    run(f"INSERT INTO {LANDING['quarantine']} (source_file, line, feed, reason, raw, loaded_at, file_sha256) "
        "SELECT $file, line, $feed, reason, raw, $loaded_at, $sha FROM staged_batch WHERE reason IS NOT NULL")
    read, quarantined, repeats = con.execute(
        "SELECT count(*), count(reason), count(*) FILTER (repeat) FROM staged_batch").fetchall()[0]
    return BatchCounts(read, read - quarantined - repeats, repeats, quarantined)


def publish(con: duckdb.DuckDBPyConnection, feeds: list[str]) -> int:
    """Inside the caller's transaction: move the landed file into the real tables; returns the
    staged rows that are duplicates (stored before, or repeated by an earlier batch of the file)."""
    con.execute(f"INSERT INTO {TARGET['raw']} SELECT * FROM {LANDING['raw']}")
    con.execute(f"INSERT INTO {TARGET['quarantine']} SELECT * FROM {LANDING['quarantine']}")
    duplicates = 0
    for feed in feeds:
        landed = scalar(con, f"SELECT count(*) FROM {LANDING[feed]}")
        inserted = con.execute(f"""
            INSERT INTO {STAGED_TABLE[feed]}
            SELECT * FROM {LANDING[feed]} AS incoming
            WHERE NOT EXISTS (SELECT 1 FROM {STAGED_TABLE[feed]} AS stored WHERE stored.row_key = incoming.row_key)
            QUALIFY row_number() OVER (PARTITION BY row_key ORDER BY load_seq) = 1""").fetchall()[0][0]
        duplicates += landed - inserted
    return duplicates
