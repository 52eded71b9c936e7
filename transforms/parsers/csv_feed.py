"""CSV feeds (CONTRACT 1): the feed kind is told by the header; one ParsedRow per data line."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterator

from transforms.parsers.base import FEED_FIELDS, LOINC_SYSTEM, ParsedRow

# The required columns that identify each feed's header.
REQUIRED_COLUMNS = {
    "labs": ("patient_id", "collected_at", "loinc", "value", "unit"),
    "vitals": ("patient_id", "measured_at", "kind", "value", "unit"),
    "infusions": ("patient_id", "infused_at", "product"),
    "events": ("patient_id", "event_at", "event_type", "value"),
}


class NotAFeed(ValueError):
    """A CSV whose header matches none of the four feeds."""


def feed_of_header(header: list[str]) -> str:
    columns = {c.strip().lower() for c in header}
    for feed, required in REQUIRED_COLUMNS.items():
        if columns.issuperset(required):
            return feed
    raise NotAFeed(f"header matches no feed: {', '.join(header)[:200]}")


def parse_csv_text(text: str) -> Iterator[ParsedRow]:
    """Rows of one CSV feed; `line` is the physical line a row starts on (header = 1)."""
    lines = text.splitlines(keepends=True)
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return
    header = [h.strip().lower() for h in header]
    feed = feed_of_header(header)
    start = reader.line_num + 1
    for values in reader:
        raw = "".join(lines[start - 1:reader.line_num]).rstrip("\r\n")
        line, start = start, reader.line_num + 1
        if not any(v.strip() for v in values):
            continue  # blank line: nothing was sent
        if len(values) != len(header):
            yield ParsedRow(feed, line, raw, error=f"csv: expected {len(header)} fields, got {len(values)}")
            continue
        yield ParsedRow(feed, line, raw, _fields(feed, dict(zip(header, values))))


def _fields(feed: str, record: dict[str, str]) -> dict[str, str | None]:
    if feed == "labs":
        record = {**record, "code": record.get("loinc"), "code_system": LOINC_SYSTEM}
    return {name: record.get(name) for name in FEED_FIELDS[feed]}


def parse_csv_file(path: Path) -> Iterator[ParsedRow]:
    # utf-8-sig: spreadsheet exports often start with a byte-order mark
    yield from parse_csv_text(Path(path).read_text(encoding="utf-8-sig"))
