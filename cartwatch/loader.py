"""Load one feed file into the store: read it in columnar batches, judge each batch in SQL, gate
it with Great Expectations, land it, then publish the whole file in one transaction.

Idempotent: a file already loaded (same content hash) changes nothing, and a row whose content key
is already stored counts as a duplicate. A file that gives no row at all (empty, blank, a header or
a Bundle without anything under it) is skipped with its reason, never recorded as loaded, so that
a corrected delivery of it is read. Every row read ends as accepted, duplicate or quarantined,
and those three always add up to the rows read. A failure anywhere inside the write rolls the
whole file back, so the database is as it was before the load. Memory is bounded by the batch,
not the file (transforms/parsers: about 8 MB of CSV or 200,000 HL7/FHIR results a batch): batches
wait in temporary landing tables (cartwatch/staging.py says why) until the file is published.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from cartwatch import staging
from cartwatch.staging import StagingReference
from cartwatch.store import first_row, scalar, transaction
from transforms.parsers.csv_feed import NotAFeed
from transforms.parsers.detect import NoRows, UnsupportedFile, no_rows_reason, read_batches

FEED_FILE_EXTENSIONS = (".csv", ".hl7", ".txt", ".ndjson", ".json")


@dataclass
class FileReport:
    """What happened to one file; `status` is loaded, already_loaded or skipped."""

    source_file: str
    status: str
    format: str = ""
    read: int = 0
    accepted: int = 0
    duplicate: int = 0
    quarantined: int = 0
    reason: str = ""
    feeds: list[str] = field(default_factory=list)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    def adds_up(self) -> bool:
        return self.read == self.accepted + self.duplicate + self.quarantined


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


IGNORE_FILE = ".cartwatchignore"


def feed_files(paths: list[Path]) -> list[Path]:
    """Files to load, folders expanded recursively: a folder's own files before its subfolders,
    each level by name (a stable order, and an inbox's main extract before its side copies).

    A folder's `.cartwatchignore` lists, one per line, glob patterns of files that are not feeds
    (an answer key, a manifest): they are not loaded and not reported as skipped."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            ignored = _ignore_patterns(path)
            files = (p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FEED_FILE_EXTENSIONS
                     and not any(p.relative_to(path).match(pattern) for pattern in ignored))
            found.extend(sorted(files, key=lambda p: (len(p.relative_to(path).parts), str(p))))
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return found


def _ignore_patterns(folder: Path) -> list[str]:
    ignore = folder / IGNORE_FILE
    if not ignore.is_file():
        return []
    lines = (line.strip() for line in ignore.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def load_file(con: duckdb.DuckDBPyConnection, path: Path, ref: StagingReference,
              run_id: str | None = None, loaded_at: datetime | None = None) -> FileReport:
    """Load one file; see the module docstring for the guarantees.

    `loaded_at` defaults to the reference's clock; a simulated run (`nightly --as-of`) passes its
    as-of time so that `--as-loaded` replays see exactly what that night saw.
    """
    loaded_at = loaded_at or ref.now
    sha = file_sha256(path)
    # a file an earlier release recorded with no rows (0.1.0 did) is read again
    previous = first_row(con, "SELECT rows_read, format FROM meta.files WHERE file_sha256 = ? AND rows_read > 0",
                         [sha])
    if previous:
        return FileReport(str(path), "already_loaded", previous[1], read=previous[0], duplicate=previous[0])
    staging.clear_landing(con)
    try:
        fmt, batches = read_batches(path)
        report, validations = _land_batches(con, path, fmt, batches, ref, sha, loaded_at)
        if report.read == 0:
            raise NoRows(no_rows_reason(path, fmt))
        with transaction(con):
            duplicates = staging.publish(con, report.feeds)
            con.execute("DELETE FROM meta.files WHERE file_sha256 = ?", [sha])   # its empty record
            report.accepted -= duplicates
            report.duplicate += duplicates
            con.execute("INSERT INTO meta.files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [sha, str(path), fmt, ",".join(report.feeds), loaded_at, report.read,
                         report.accepted, report.duplicate, report.quarantined, run_id])
            _insert_validations(con, validations, sha, loaded_at)
    except (UnsupportedFile, NotAFeed, UnicodeDecodeError) as exc:
        return FileReport(str(path), "skipped", reason=str(exc))
    finally:
        staging.clear_landing(con)
    assert report.adds_up(), f"{path}: counts do not add up: {report}"
    return report


def _land_batches(con, path: Path, fmt: str, batches, ref: StagingReference, sha: str,
                  loaded_at: datetime) -> tuple[FileReport, list[dict]]:
    """Every batch of the file judged, gated and landed (staging.LANDING), one commit each; the
    report and one suite summary per expectation."""
    report = FileReport(str(path), "loaded", fmt)
    lineage = {"sha": sha, "file": str(path), "format": fmt, "loaded_at": loaded_at}
    first_seq = (scalar(con, "SELECT count(*) FROM meta.files") + 1) << 32
    validations: dict[tuple[str, str, str], dict] = {}
    for batch in batches:
        staging.judge(con, ref, batch)
        staging.drop_repeats(con)
        for summary in staging.gate(con, ref.rules, batch.feed):
            _add_validation(validations, batch.feed, summary)
        counts = staging.write(con, batch.feed, lineage, first_seq + report.read)
        report.read += counts.read
        report.accepted += counts.accepted
        report.duplicate += counts.duplicate
        report.quarantined += counts.quarantined
        if batch.feed not in report.feeds:
            report.feeds.append(batch.feed)
    report.feeds.sort()
    report.quarantine_reasons = _reason_counts(con)
    return report, list(validations.values())


def _add_validation(validations: dict, feed: str, summary: dict) -> None:
    """One summary per expectation per file, whatever the number of batches."""
    key = (feed, summary["expectation"], summary["column"])
    seen = validations.get(key)
    if seen is None:
        validations[key] = {**summary, "feed": feed}
        return
    seen["success"] = seen["success"] and summary["success"]
    seen["element_count"] = (seen["element_count"] or 0) + (summary["element_count"] or 0)
    seen["unexpected_count"] += summary["unexpected_count"]


def _reason_counts(con) -> dict[str, int]:
    """The landed file's quarantined rows by reason category (reason_category, computed in SQL)."""
    return dict(con.execute(
        "SELECT trim(regexp_replace(regexp_replace(reason, $values, '…', 'g'), '\\s+', ' ', 'g')) AS category, "
        f"count(*) FROM {staging.LANDING['quarantine']} GROUP BY category ORDER BY category",
        {"values": _REASON_VALUES}).fetchall())


def _insert_validations(con, validations, sha: str, at: datetime) -> None:
    rows = [[sha, s["feed"], s["suite"], s["expectation"], s["column"], s["success"],
             s["element_count"], s["unexpected_count"], at] for s in validations]
    if rows:
        con.executemany("INSERT INTO meta.validations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


# A reason without the row's own values (quoted text, parenthesised detail, numbers and times), for
# counting reasons across rows: "non-numeric value 'pending'" -> "non-numeric value …".
_REASON_VALUES = r"'[^']*'|\([^)]*\)|\d[\d.:+\-T]*"


def reason_category(reason: str) -> str:
    """One reason's category in Python (the digest's data-quality section reads few reasons)."""
    return re.sub(r"\s+", " ", re.sub(_REASON_VALUES, "…", reason)).strip()


def summary_json(reports: list[FileReport]) -> str:
    return json.dumps([r.__dict__ for r in reports], default=str)
