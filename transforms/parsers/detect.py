"""Which reader takes a file: by extension, confirmed by content (docs/contract.md, section 1)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from transforms.parsers.base import ParsedBatch, batches_of_rows

FORMATS = ("csv", "hl7", "fhir")
BATCH_ROWS = 200_000   # rows per batch from the row-at-a-time parsers (HL7, FHIR)
_HL7_SEGMENT = re.compile(rb"(?:^|[\r\n\x0b])(?:MSH|FHS|BHS)[^A-Za-z0-9\r\n]")


class UnsupportedFile(ValueError):
    """A file that is not a cartwatch feed (skipped with this reason, never half-read)."""


class NoRows(UnsupportedFile):
    """A file of a known format that holds no row at all: refused, so that it is never recorded
    as loaded (a later, fixed delivery of it must load)."""


# Why a file of each format can be read and still hold no row (after the empty and blank cases).
_NO_ROWS_BECAUSE = {"csv": "a header without data rows", "hl7": "no message, only batch header segments",
                    "fhir": "no resource (a Bundle without entries)"}


def no_rows_reason(path: Path, fmt: str) -> str:
    """The one-line reason a file gave no row: empty, only blank lines, or its format's case."""
    if path.stat().st_size == 0:
        return "no rows: the file is empty"
    if _only_whitespace(path):
        return "no rows: the file holds only blank lines"
    return f"no rows: {_NO_ROWS_BECAUSE.get(fmt, 'nothing read')}"


def _only_whitespace(path: Path) -> bool:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            if block.lstrip(b"\xef\xbb\xbf").strip():
                return False
    return True


def detect_format(path: Path, head: bytes) -> str:
    suffix = path.suffix.lower()
    text = head.lstrip(b"\xef\xbb\xbf\x0b\r\n \t")
    if suffix == ".csv":
        return "csv"
    if suffix in (".hl7", ".txt"):
        # any field separator, and junk before the first segment is the parser's to report
        if _HL7_SEGMENT.search(text):
            return "hl7"
        raise UnsupportedFile("no MSH, FHS or BHS segment near the start")
    if suffix in (".ndjson", ".json"):
        return "fhir"
    raise UnsupportedFile(f"unsupported extension {suffix or '(none)'}")


def read_batches(path: Path) -> tuple[str, Iterator[ParsedBatch]]:
    """The format name and the file's parsed rows as columnar batches of bounded size."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if len(head) < 4096 and not head.lstrip(b"\xef\xbb\xbf").strip():
        raise NoRows(no_rows_reason(path, ""))    # empty or blank, whatever its extension says
    fmt = detect_format(path, head)
    if fmt == "csv":
        from transforms.parsers.csv_feed import parse_csv_batches
        return fmt, parse_csv_batches(path)
    if fmt == "hl7":
        from transforms.parsers.hl7_oru import parse_hl7_file
        return fmt, batches_of_rows(parse_hl7_file(path), BATCH_ROWS)
    if path.suffix.lower() == ".ndjson":
        from transforms.parsers.fhir_r4 import parse_fhir_ndjson
        return fmt, batches_of_rows(parse_fhir_ndjson(path), BATCH_ROWS)
    if b'"resourceType"' not in head:
        # a .json file is a feed only when it is a FHIR resource (ground-truth files are not)
        raise UnsupportedFile("JSON without a FHIR resourceType near its start")
    from transforms.parsers.fhir_r4 import parse_fhir_bundle
    return fmt, batches_of_rows(parse_fhir_bundle(path), BATCH_ROWS)
