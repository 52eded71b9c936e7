"""What the feeds do to a clean patient: re-sent rows, and rows that must be quarantined.

Each action takes the patient's block of a formatted feed (text rows, in file order) and returns
the new block; every row it adds or changes carries `_expect` (quarantine, duplicate, accepted) and
`_reason`. Corrections, cancellations and preliminaries are clinical facts and are made earlier,
in trajectories.add_corrections.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

# Quarantine reason codes, and the words the loader's reason must contain for each.
REASONS = {
    "non_numeric_value": "non-numeric value",
    "unparseable_timestamp": "unparseable timestamp",
    "impossible_date": "impossible date",
    "future_timestamp": "in the future",
    "unknown_loinc": "unknown LOINC",
    "unconvertible_unit": "does not convert",
    "missing_patient_id": "missing patient_id",
}
FERRITIN_LOINC = "2276-4"
UNKNOWN_LOINC = ("33959-8", "Procalcitonin")   # a real LOINC the rules file does not know


def _rows(block: pl.DataFrame) -> list[dict]:
    return block.to_dicts()


def _frame(rows: list[dict], like: pl.DataFrame) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=like.schema, orient="row")


def _mark(row: dict, expect: str, reason: str, **changes) -> dict:
    return row | changes | {"_expect": expect, "_reason": reason}


def _first(rows: list[dict], loinc: str, skip: int = 0) -> int:
    """Index of the (skip+1)-th row with this LOINC, baseline draws excluded (they come first)."""
    hits = [i for i, r in enumerate(rows) if r["loinc"] == loinc]
    return hits[min(len(hits) - 1, 2 + skip)]


def _reformat(iso: str) -> str:
    """A timestamp as a human would type it: not ISO 8601."""
    return datetime.fromisoformat(iso).strftime("%b %d %Y %I:%M%p")


def _mistyped_year(iso: str) -> str:
    """The year typed 36 years on (2026 -> 2062, a transposition): a result from the future."""
    return f"{int(iso[:4]) + 36}{iso[4:]}"


def malformed(block: pl.DataFrame) -> pl.DataFrame:
    """One row per quarantine reason, each a copy of a real row with one defect, inserted after
    it; and two odd but valid spellings of the pinned ferritins (1,250 and 0.98 mg/L)."""
    rows = _rows(block)
    defects = [
        ("1742-6", 0, lambda r: dict(collected_at=f"{r['collected_at'][:4]}-02-30{r['collected_at'][10:]}"),
         "impossible_date"),
        (FERRITIN_LOINC, 3, lambda r: dict(value="pending", result_status="P"), "non_numeric_value"),
        ("1988-5", 4, lambda r: dict(collected_at=_reformat(r["collected_at"])), "unparseable_timestamp"),
        ("1920-8", 5, lambda r: dict(collected_at=_mistyped_year(r["collected_at"]),
                                     resulted_at=_mistyped_year(r["resulted_at"])), "future_timestamp"),
        ("2532-0", 6, lambda r: dict(loinc=UNKNOWN_LOINC[0], test_name=UNKNOWN_LOINC[1], value="0.8",
                                     unit="ng/mL", ref_low="", ref_high="0.5"), "unknown_loinc"),
        (FERRITIN_LOINC, 7, lambda r: dict(unit="mmol/L", ref_low="", ref_high=""), "unconvertible_unit"),
        ("718-7", 8, lambda r: dict(patient_id=""), "missing_patient_id"),
    ]
    inserts = sorted(((_first(rows, loinc, skip), reason, change) for loinc, skip, change, reason in defects),
                     key=lambda x: x[0], reverse=True)
    for i, reason, change in inserts:
        rows.insert(i + 1, _mark(rows[i], "quarantine", reason, **change(rows[i])))
    for row in rows:
        if row["loinc"] == FERRITIN_LOINC and row["_expect"] == "" and row["value"] == "1250":
            _mark_in_place(row, "accepted", "thousands_separator", value="1,250")
        elif row["loinc"] == FERRITIN_LOINC and row["_expect"] == "" and row["value"] == "980":
            _mark_in_place(row, "accepted", "ferritin_mg_per_l", value="0.98", unit="mg/L",
                           ref_low="0.03", ref_high="0.4")
    return _frame(rows, block)


def _mark_in_place(row: dict, expect: str, reason: str, **changes) -> None:
    row.update(_mark(row, expect, reason, **changes))


def repeat_rows(block: pl.DataFrame, key: str, group: int) -> pl.DataFrame:
    """The rows sharing the `group`-th value of `key` (a draw or measurement time), sent again
    right after them, as an interface re-sending a message does."""
    rows = _rows(block)
    values = list(dict.fromkeys(r[key] for r in rows))
    chosen = values[min(group, len(values) - 1)]
    picked = [i for i, r in enumerate(rows) if r[key] == chosen]
    copies = [_mark(rows[i], "duplicate", "re-sent") for i in picked]
    rows[picked[-1] + 1:picked[-1] + 1] = copies
    return _frame(rows, block)


def resend(block: pl.DataFrame) -> pl.DataFrame:
    """The whole block again (its first copies only), for a second file loaded after the first."""
    unique = block.filter(pl.col("_expect") != "duplicate")
    return unique.with_columns(pl.lit("duplicate").alias("_expect"), pl.lit("re-sent file").alias("_reason"))


def splice(frame: pl.DataFrame, blocks: dict[int, pl.DataFrame]) -> pl.DataFrame:
    """The frame with the rows of some patients (`_n`) replaced by new blocks, order kept."""
    if not blocks:
        return frame
    numbers = frame["_n"].to_numpy()
    parts, pos = [], 0
    for n in sorted(blocks):
        lo, hi = int(numbers.searchsorted(n, "left")), int(numbers.searchsorted(n, "right"))
        parts += [frame.slice(pos, lo - pos), blocks[n]]
        pos = hi
    parts.append(frame.slice(pos))
    return pl.concat(parts)


def block(frame: pl.DataFrame, n: int) -> pl.DataFrame:
    return frame.filter(pl.col("_n") == n)


def apply(frames: dict[str, pl.DataFrame], quality: dict[int, tuple[str, ...]]) -> dict[str, pl.DataFrame]:
    """Apply each patient's data-quality actions; adds `labs_resend` when a patient re-sends."""
    labs, vitals, resent = {}, {}, []
    for n, actions in sorted(quality.items()):
        if "malformed" in actions:
            labs[n] = malformed(block(frames["labs"], n))
        if "duplicates" in actions:
            labs[n] = repeat_rows(block(frames["labs"], n), "collected_at", 6)
            vitals[n] = repeat_rows(block(frames["vitals"], n), "measured_at", 9)
            resent.append(resend(labs[n]))
    out = dict(frames)
    out["labs"] = splice(frames["labs"], labs)
    out["vitals"] = splice(frames["vitals"], vitals)
    if resent:
        out["labs_resend"] = pl.concat(resent)
    return out
