"""`cartwatch export`: the tables other tools read, with exactly the columns of docs/contract.md.

The format follows `--out`'s extension (.csv, .parquet, .json); `--format` may say it too, and a
mismatch is refused (a .parquet file holding CSV text breaks the tool that reads it). With
`mask_ids`, patient and infusion ids are replaced by the digest's pseudonyms, and a quarantined
row's raw text (which holds the patient id) by "(masked)".
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa

from cartwatch.store import sql_path


# contract.md §5: column lists are part of the interface; changing one is a breaking change.
EXPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "windows": ("patient_id", "infusion_id", "criteria_set", "status", "onset_at", "onset_day",
                "end_at", "end_day", "crs_onset_day", "crs_peak_day", "crs_resolved_day",
                "late_onset", "evidence", "rules_version"),
    "timeline": ("patient_id", "infusion_id", "at", "day", "analyte", "loinc", "value", "unit",
                 "uln", "lln", "baseline", "x_uln", "x_baseline", "source"),
    "flags": ("patient_id", "infusion_id", "day", "crs_grade", "crs_grade_source", "ferritin_max",
              "ferritin_signal", "easix", "m_easix", "hscore_min", "hscore_max", "hlh_2004_met",
              "hlh_2004_evaluable", "astct_iec_hs_2023", "cartox_2017", "shah_2020",
              "ucsf_masl_2020", "hlh_94", "rules_version"),
    "quarantine": ("source_file", "line", "reason", "raw", "loaded_at"),
}

EXPORT_QUERIES: dict[str, str] = {
    "windows": "SELECT {cols} FROM flags.windows ORDER BY patient_id, infusion_id, criteria_set, onset_at",
    "timeline": "SELECT {cols} FROM (SELECT *, observed_at AS \"at\" FROM derived.timeline) "
                "ORDER BY patient_id, \"at\", analyte",
    "flags": "SELECT {cols} FROM flags.daily ORDER BY patient_id, infusion_id, day",
    "quarantine": "SELECT {cols} FROM quarantine.rows ORDER BY loaded_at, source_file, line",
}
# one night of a stream (cartwatch/streams.py): windows and each infusion's latest day of flags
NIGHT_QUERIES: dict[str, str] = {
    "windows": "SELECT {cols} FROM flags.windows_by_night WHERE stream = $stream AND as_of = $as_of "
               "ORDER BY patient_id, infusion_id, criteria_set, onset_at",
    "flags": "SELECT {cols} FROM flags.daily_by_night WHERE stream = $stream AND as_of = $as_of "
             "ORDER BY patient_id, infusion_id, day",
}
FORMATS = {"csv": "(FORMAT csv, HEADER true)", "parquet": "(FORMAT parquet)",
           "json": "(FORMAT json, ARRAY true)"}
FHIR = "fhir"            # windows only: FHIR R4 NDJSON (cartwatch/export_fhir.py)
EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json", ".ndjson": FHIR}
MASKED_RAW = "(masked)"


class ExportError(ValueError):
    """The export cannot be made (unknown table or format, table not built)."""


def export_format(out: Path, fmt: str | None) -> str:
    """The format of an export: `--format`, or else `--out`'s extension; the two must agree."""
    by_extension = EXTENSIONS.get(out.suffix.lower())
    if fmt is not None and fmt not in (*FORMATS, FHIR):
        raise ExportError(f"--format {fmt!r}: one of {', '.join(FORMATS)}, {FHIR}")
    if fmt is None:
        if by_extension is None:
            raise ExportError(f"--out {out}: cannot tell the format from the extension "
                              f"(name it .csv, .parquet, .json or .ndjson, or pass --format)")
        return by_extension
    if by_extension is not None and by_extension != fmt:
        raise ExportError(f"--out {out}: the extension says {by_extension} but --format says {fmt}")
    return fmt


def export_query(table: str, night: bool = False) -> str:
    if table not in EXPORT_COLUMNS:
        raise ExportError(f"unknown export {table!r}; one of {', '.join(EXPORT_COLUMNS)}")
    if night and table not in NIGHT_QUERIES:
        raise ExportError(f"export {table}: not stored per night; --stream and --night apply to "
                          f"{' and '.join(NIGHT_QUERIES)}")
    cols = ", ".join(f'"{c}"' for c in EXPORT_COLUMNS[table])
    return (NIGHT_QUERIES if night else EXPORT_QUERIES)[table].format(cols=cols)


def export_table(con: duckdb.DuckDBPyConnection, table: str, fmt: str, out: Path, *,
                 mask_ids: bool = False, night=None) -> int:
    """Write one export (of the last evaluation, or of a stored `night`); returns the rows written
    (for FHIR, the windows written as DetectedIssues)."""
    if fmt not in (*FORMATS, FHIR):
        raise ExportError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}, {FHIR}")
    if fmt == FHIR and table != "windows":
        raise ExportError(f"export {table}: --format fhir applies to windows only")
    query = export_query(table, night is not None)
    params = {"stream": night.stream, "as_of": night.as_of} if night is not None else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = con.sql(query, params=params or None).to_arrow_table()
    except duckdb.CatalogException:
        raise ExportError(f"export {table}: nothing evaluated in this database yet: run `cartwatch nightly`, "
                          "or pass --as-of to evaluate now") from None
    if fmt == FHIR:
        from cartwatch.export_fhir import write_fhir
        from transforms.parsers.codes import vital_loinc_by_kind

        return write_fhir(con, data, out, dict(vital_loinc_by_kind()), mask_ids=mask_ids)
    if mask_ids:
        data = masked_table(data)
    name = f"export_{uuid.uuid4().hex[:8]}"
    con.register(name, data)
    try:
        con.execute(f"COPY (SELECT * FROM {name}) TO '{sql_path(out)}' {FORMATS[fmt]}")
    finally:
        con.unregister(name)
    return data.num_rows


def masked_table(data: pa.Table) -> pa.Table:
    """Ids replaced by the digest's pseudonyms; a quarantined row's raw text and reason scrubbed."""
    from cartwatch.digest.ids import mask, mask_source
    from cartwatch.notify import scrub

    def replace(column: str, fn) -> None:
        nonlocal data
        if column in data.column_names:
            values = [None if v is None else fn(v) for v in data.column(column).to_pylist()]
            data = data.set_column(data.column_names.index(column), column,
                                   pa.array(values, type=data.schema.field(column).type))

    replace("patient_id", mask)
    replace("infusion_id", lambda v: mask(v, prefix="inf-"))
    replace("raw", lambda v: MASKED_RAW)
    replace("reason", scrub)
    replace("source", mask_source)
    replace("source_file", mask_source)
    replace("evidence", _masked_evidence)
    return data


def _masked_evidence(text: str) -> str:
    """The evidence JSON of a window with each item's source masked (a file name can hold an id)."""
    from cartwatch.digest.ids import mask_source
    items = json.loads(text)
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and "source" in item:
            item["source"] = mask_source(item["source"])
    return json.dumps(items, separators=(",", ":"))


