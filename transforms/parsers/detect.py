"""Which parser reads a file: by extension, confirmed by content (CONTRACT 1)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterator

from transforms.parsers.base import ParsedRow

FORMATS = ("csv", "hl7", "fhir")
_HL7_SEGMENT = re.compile(rb"(?:^|[\r\n\x0b])(?:MSH|FHS|BHS)[^A-Za-z0-9\r\n]")


class UnsupportedFile(ValueError):
    """A file that is not a cartwatch feed (skipped with this reason, never half-read)."""


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
    if suffix == ".ndjson":
        return "fhir"
    if suffix == ".json":
        return "fhir"
    raise UnsupportedFile(f"unsupported extension {suffix or '(none)'}")


def parser_for(path: Path) -> tuple[str, Callable[[Path], Iterator[ParsedRow]]]:
    """The format name and a function yielding the file's ParsedRows."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    fmt = detect_format(path, head)
    if fmt == "csv":
        from transforms.parsers.csv_feed import parse_csv_file
        return fmt, parse_csv_file
    if fmt == "hl7":
        from transforms.parsers.hl7_oru import parse_hl7_file
        return fmt, parse_hl7_file
    if path.suffix.lower() == ".ndjson":
        from transforms.parsers.fhir_r4 import parse_fhir_ndjson
        return fmt, parse_fhir_ndjson
    if b'"resourceType"' not in head:
        # a .json file is a feed only when it is a FHIR resource (ground-truth files are not)
        raise UnsupportedFile("JSON without a FHIR resourceType near its start")
    from transforms.parsers.fhir_r4 import parse_fhir_bundle
    return fmt, parse_fhir_bundle
