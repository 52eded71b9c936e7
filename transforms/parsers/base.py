"""The one canonical input model every wire-format parser produces (docs/ARCHITECTURE.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

import polars as pl

FEEDS = ("labs", "vitals", "infusions", "events")

# The fields each feed's parsed rows carry: the CSV columns of CONTRACT section 1 (labs: `loinc`
# becomes `code` + `code_system`, so HL7 and FHIR local codes fit the same model).
FEED_FIELDS: dict[str, tuple[str, ...]] = {
    "labs": ("patient_id", "collected_at", "code", "code_system", "value", "unit", "test_name",
             "ref_low", "ref_high", "resulted_at", "result_status", "accession", "source_system"),
    "vitals": ("patient_id", "measured_at", "kind", "value", "unit"),
    "infusions": ("patient_id", "infused_at", "product", "infusion_id", "target_antigen",
                  "indication", "site_timezone"),
    "events": ("patient_id", "event_at", "event_type", "value"),
}
LOINC_SYSTEM = "LN"
# The scales of documented event values (docs/contract.md, events feed), read by staging and by the
# events suite: ASTCT CRS and ICANS grades run 0-4 (a scale, not a clinical threshold); a count of
# vasopressor agents above this is a typing error, not a patient.
GRADE_SCALE = (0, 4)
VASOPRESSOR_COUNT_MAX = 10


@dataclass(frozen=True)
class ParsedRow:
    """One result, reading, infusion or event as a parser read it, before any judgement.

    `fields` holds strings or None under the names of FEED_FIELDS[feed]. A row the parser could
    not read at all carries `error` (the quarantine reason) and may have empty fields.
    `line` is the 1-based position in the file: the line for CSV (header = 1) and NDJSON, the
    message number for HL7, the entry number for a FHIR Bundle.
    """

    feed: str
    line: int
    raw: str
    fields: dict[str, str | None] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class ParsedBatch:
    """A batch of one feed's parsed rows as columns: `line` (Int32), `raw`, `error` and the
    feed's FEED_FIELDS, all strings or null. Every format hands staging these, so a result stages
    the same whichever format delivered it."""

    feed: str
    frame: pl.DataFrame


def batch_columns(feed: str) -> dict[str, pl.DataType]:
    return {"line": pl.Int32, "raw": pl.String, "error": pl.String,
            **{name: pl.String for name in FEED_FIELDS[feed]}}


def batches_of_rows(rows: Iterable[ParsedRow], size: int) -> Iterator[ParsedBatch]:
    """Rows of a row-at-a-time parser (HL7, FHIR) framed into batches of at most `size` rows per
    feed, in order of arrival within each feed."""
    pending: dict[str, list[ParsedRow]] = {}
    for row in rows:
        bucket = pending.setdefault(row.feed, [])
        bucket.append(row)
        if len(bucket) >= size:
            yield _frame(row.feed, bucket)
            pending[row.feed] = []
    for feed, bucket in pending.items():
        if bucket:
            yield _frame(feed, bucket)


def _frame(feed: str, rows: list[ParsedRow]) -> ParsedBatch:
    columns = {"line": [r.line for r in rows], "raw": [r.raw for r in rows],
               "error": [r.error for r in rows]}
    for name in FEED_FIELDS[feed]:
        columns[name] = [r.fields.get(name) for r in rows]
    return ParsedBatch(feed, pl.DataFrame(columns, schema=batch_columns(feed)))
