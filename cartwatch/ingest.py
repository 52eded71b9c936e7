"""Ingest files or folders into the store, one transaction per file, and report per-file counts."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Callable

import duckdb

from cartwatch.loader import FileReport, feed_files, file_sha256, load_file
from cartwatch.staging import StagingReference
from transforms.rules import Rules

log = logging.getLogger("cartwatch.ingest")


def staging_reference(con: duckdb.DuckDBPyConnection, rules: Rules, site_tz: str,
                      now: datetime) -> StagingReference:
    """What staging needs, built once and registered on the connection."""
    ref = StagingReference(rules=rules, site_tz=site_tz, now=now)
    ref.register(con)
    return ref


def ingest_paths(con: duckdb.DuckDBPyConnection, paths: list[Path], rules: Rules, *, site_tz: str,
                 now: datetime, run_id: str | None = None, loaded_at: datetime | None = None,
                 on_file: Callable[[int, list[Path], FileReport | None], None] | None = None
                 ) -> list[FileReport]:
    """Load every feed file under `paths`; a file already loaded is reported, not reloaded.

    `now` is the wall clock (results after it are impossible); `loaded_at` the load's stamp.
    A skipped file is recorded in meta.skipped_files (the digest names it). `on_file(i, files,
    report)` is called before each file (report None) and after it (progress on a terminal).
    """
    ref = staging_reference(con, rules, site_tz, now)
    reports = []
    files = feed_files(paths)
    for index, path in enumerate(files):
        if on_file is not None:
            on_file(index, files, None)
        report = load_file(con, path, ref, run_id, loaded_at)
        if report.status == "skipped":
            record_skipped(con, path, report.reason, loaded_at or now, run_id)
        if on_file is not None:
            on_file(index, files, report)
        # file names and counts only: no patient identifier or value reaches the log
        log.info("%s: %s read=%d accepted=%d duplicate=%d quarantined=%d", path.name, report.status,
                 report.read, report.accepted, report.duplicate, report.quarantined)
        reports.append(report)
    return reports


def record_skipped(con: duckdb.DuckDBPyConnection, path: Path, reason: str, seen_at: datetime,
                   run_id: str | None) -> None:
    try:
        sha = file_sha256(path)
    except OSError:
        sha = None
    con.execute("INSERT INTO meta.skipped_files VALUES (?, ?, ?, ?, ?)", [str(path), sha, reason, seen_at, run_id])


def not_loaded(report: FileReport) -> str | None:
    """Why a file counts as not loaded (skipped, empty files included; every row rejected), or None."""
    if report.status == "skipped":
        return f"skipped ({report.reason})" if report.reason else "skipped"
    if report.status == "loaded" and report.accepted == 0 and report.duplicate == 0:
        return f"every row rejected ({report.quarantined} quarantined)"
    return None


def format_reports(reports: list[FileReport]) -> str:
    """The per-file table `cartwatch ingest` prints (contract.md §3 column order), then the reasons."""
    width = max([len(r.source_file) for r in reports] + [5])
    head = ("read", "accepted", "quarantined", "duplicate")
    lines = [f"{'file':<{width}}  {'status':<14}" + "".join(f" {h:>11}" for h in head)]
    for r in reports:
        lines.append(f"{r.source_file:<{width}}  {r.status:<14}"
                     + "".join(f" {getattr(r, h):>11}" for h in head)
                     + (f"  ({r.reason})" if r.reason else ""))
    lines.append(f"{'total':<{width}}  {'':<14}"
                 + "".join(f" {sum(getattr(r, h) for r in reports):>11}" for h in head))
    reasons: dict[str, int] = {}
    for r in reports:
        for reason, n in r.quarantine_reasons.items():
            reasons[reason] = reasons.get(reason, 0) + n
    if reasons:
        lines += ["", "quarantined by reason:"]
        lines += [f"  {n:>7}  {reason}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)
