"""Per-feed normalizers: parsed rows (any format) -> staged rows in canonical units, or reasons."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from transforms.normalize.context import NormalizeContext, RowRejected
from transforms.normalize.events import normalize_event
from transforms.normalize.infusions import normalize_infusion
from transforms.normalize.labs import normalize_lab
from transforms.normalize.vitals import normalize_vital
from transforms.parsers.base import ParsedRow

NORMALIZERS: dict[str, Callable[[dict, NormalizeContext], dict]] = {
    "labs": normalize_lab,
    "vitals": normalize_vital,
    "infusions": normalize_infusion,
    "events": normalize_event,
}


@dataclass
class Normalized:
    """Staged rows per feed (each with `_line`, `_raw`) and rejected rows with their reason."""

    staged: dict[str, list[dict]] = field(default_factory=lambda: {f: [] for f in NORMALIZERS})
    rejected: list[tuple[ParsedRow, str]] = field(default_factory=list)


def normalize_rows(rows: Iterable[ParsedRow], ctx: NormalizeContext) -> Normalized:
    out = Normalized()
    for row in rows:
        if row.error:
            out.rejected.append((row, row.error))
            continue
        try:
            staged = NORMALIZERS[row.feed](row.fields, ctx)
        except RowRejected as exc:
            out.rejected.append((row, str(exc)))
            continue
        staged["_line"], staged["_raw"] = row.line, row.raw
        out.staged[row.feed].append(staged)
    return out


__all__ = ["NormalizeContext", "Normalized", "RowRejected", "normalize_rows"]
