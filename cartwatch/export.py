"""`cartwatch export`: the tables other tools read, with exactly the columns of CONTRACT 3."""

from __future__ import annotations

from pathlib import Path

import duckdb

from cartwatch.store import scalar

# CONTRACT 3: column lists are part of the interface; changing one is a breaking change.
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
FORMATS = {"csv": "(FORMAT csv, HEADER true)", "parquet": "(FORMAT parquet)",
           "json": "(FORMAT json, ARRAY true)"}


class ExportError(ValueError):
    """The export cannot be made (unknown table or format, table not built)."""


def export_query(table: str) -> str:
    if table not in EXPORT_COLUMNS:
        raise ExportError(f"unknown export {table!r}; one of {', '.join(EXPORT_COLUMNS)}")
    cols = ", ".join(f'"{c}"' for c in EXPORT_COLUMNS[table])
    return EXPORT_QUERIES[table].format(cols=cols)


def export_table(con: duckdb.DuckDBPyConnection, table: str, fmt: str, out: Path) -> int:
    """Write one export; returns the number of rows written."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    query = export_query(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        con.execute(f"COPY ({query}) TO '{_sql_path(out)}' {FORMATS[fmt]}")
        return scalar(con, f"SELECT count(*) FROM ({query})")
    except duckdb.CatalogException as exc:
        raise ExportError(f"export {table}: its table is not built yet ({exc})") from None


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
