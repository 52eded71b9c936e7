"""The cohort as the four CSV feeds of contract.md §1: numeric columns in, text columns out (polars).

Rows are grouped by patient, in time order. Helper columns start with `_` and never reach a file:
`_n` (patient number), `_expect` and `_reason` (what the ground truth says about the row).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from cartwatch.synth.cohort import SimPatient
from cartwatch.synth.sites import SITES
from cartwatch.synth.trajectories import PANEL_CODE, STATUS, TAG
from cartwatch.synth.units import LAB_ANALYTES, O2_DEVICES, VITAL_KINDS, unit_names
from transforms.rules import Rules

# contract.md §1, exactly (labs with every optional column).
COLUMNS = {
    "labs": ("patient_id", "collected_at", "loinc", "value", "unit", "test_name", "ref_low", "ref_high",
             "resulted_at", "result_status", "accession", "source_system"),
    "vitals": ("patient_id", "measured_at", "kind", "value", "unit"),
    "infusions": ("patient_id", "infused_at", "product", "infusion_id", "target_antigen", "indication",
                  "site_timezone"),
    "events": ("patient_id", "event_at", "event_type", "value"),
}
TEST_NAMES = {
    "en": ("Ferritin", "CRP", "IL-6", "Fibrinogen", "AST", "ALT", "LDH", "Bilirubin total",
           "Triglycerides", "Creatinine", "Platelets", "ANC", "Hemoglobin", "WBC", "PT", "INR", "aPTT",
           "D-dimer"),
    "es": ("Ferritina", "PCR", "IL-6", "Fibrinógeno", "GOT (AST)", "GPT (ALT)", "LDH", "Bilirrubina total",
           "Triglicéridos", "Creatinina", "Plaquetas", "Neutrófilos", "Hemoglobina", "Leucocitos",
           "T. protrombina", "INR", "TTPa", "Dímero D"),
}
PANEL_LETTER = {code: name[0].upper() for name, code in PANEL_CODE.items()}
STATUS_LETTER = {code: letter for letter, code in STATUS.items()}
TAG_NAME = {code: name for name, code in TAG.items()}
ISO = "%Y-%m-%dT%H:%M:%S"


def patient_id(number: pl.Expr) -> pl.Expr:
    return pl.concat_str([pl.lit("CW-"), number.cast(pl.String).str.zfill(4)])


def _iso(at: pl.Expr, zone: str, clock: str) -> pl.Expr:
    """ISO 8601 in one zone: with offset, as UTC `Z`, or naive local."""
    utc = pl.from_epoch(at, time_unit="s").dt.replace_time_zone("UTC")
    if clock == "utc":
        return utc.dt.to_string(ISO + "Z")
    local = utc.dt.convert_time_zone(zone)
    return local.dt.to_string(ISO if clock == "naive" else ISO + "%:z")


def with_timestamps(raw: pl.DataFrame, columns: dict[str, str]) -> pl.DataFrame:
    """Text timestamp columns (new name -> epoch column), each row in its `tz` and `clock`:
    one formatting pass per (zone, clock) group, then back to the rows' order."""
    raw = raw.with_row_index("_row")
    groups = raw.partition_by(["tz", "clock"], as_dict=True, maintain_order=True)
    parts = [part.with_columns(_iso(pl.col(src), zone, clock).alias(name) for name, src in columns.items())
             for (zone, clock), part in groups.items()]
    return pl.concat(parts).sort("_row")


def number(value: pl.Expr, decimals: pl.Expr) -> pl.Expr:
    """Fixed decimals as a lab prints them (12.0, 0.98, 1250); NaN as empty. Integer arithmetic:
    the value is already rounded to its decimals, so value x 10^d is a whole number."""
    scale = pl.lit(10, pl.Int64).pow(decimals.cast(pl.Int64))
    scaled = (value * scale.cast(pl.Float64)).round(0).cast(pl.Int64, strict=False)
    whole = (scaled // scale).cast(pl.String)
    fraction = (scaled % scale).cast(pl.String).str.zfill(decimals.cast(pl.Int64))
    text = pl.when(decimals == 0).then(whole).otherwise(pl.concat_str([whole, pl.lit("."), fraction]))
    return pl.when(value.is_nan()).then(None).otherwise(text)


def _lookup(codes: pl.Expr, table: dict | tuple[str, ...]) -> pl.Expr:
    mapping = dict(enumerate(table)) if isinstance(table, tuple) else table
    return codes.replace_strict(list(mapping), list(mapping.values()), return_dtype=pl.String)


# --- per feed -----------------------------------------------------------------------------------

SITE_CODES = tuple(SITES)


def _site_of(sim: SimPatient, n: int) -> dict[str, np.ndarray]:
    return {"_n": np.full(n, sim.patient.number, dtype=np.int32),
            "site": np.full(n, SITE_CODES.index(sim.patient.design.site.code), dtype=np.int8)}


def _site_columns(feed_clock: str | None = None) -> list[pl.Expr]:
    """Site attributes from the site index (`clock`: the site's clock for this feed, or fixed)."""
    sites = list(SITES.values())
    table = lambda attr: {i: getattr(s, attr) for i, s in enumerate(sites)}  # noqa: E731
    clock = (pl.lit(feed_clock) if feed_clock in ("offset", "utc", "naive")
             else _lookup(pl.col("site"), table(feed_clock)))
    return [_lookup(pl.col("site"), table("timezone")).alias("tz"), clock.alias("clock"),
            _lookup(pl.col("site"), table("code")).alias("site_code"),
            _lookup(pl.col("site"), table("lab_system")).alias("source_system"),
            _lookup(pl.col("site"), table("language")).alias("language")]


def _frame(cohort: list[SimPatient], part: str, keep: tuple[str, ...], clock: str) -> pl.DataFrame:
    arrays = [{**{k: getattr(sim, part)[k] for k in keep}, **_site_of(sim, len(getattr(sim, part)["t"]))}
              for sim in cohort]
    raw = pl.DataFrame({k: np.concatenate([a[k] for a in arrays]) for k in arrays[0]})
    return raw.with_columns(_site_columns(clock))


def labs_frame(cohort: list[SimPatient], rules: Rules) -> pl.DataFrame:
    keep = ("t", "t_result", "analyte", "written", "decimals", "unit", "ref_low_written",
            "ref_high_written", "status", "draw", "panel", "tag")
    raw = with_timestamps(_frame(cohort, "labs", keep, "lab_clock"),
                          {"collected_at": "t", "resulted_at": "t_result"})
    loinc = tuple(rules.analyte(a).loinc[0] for a in LAB_ANALYTES)
    names = {(lang, i): name for lang, table in TEST_NAMES.items() for i, name in enumerate(table)}
    name_key = pl.concat_str([pl.col("language"), pl.lit(":"), pl.col("analyte").cast(pl.String)])
    return raw.select(
        pl.col("_n"),
        patient_id(pl.col("_n")).alias("patient_id"),
        "collected_at",
        _lookup(pl.col("analyte"), loinc).alias("loinc"),
        number(pl.col("written"), pl.col("decimals")).alias("value"),
        _lookup(pl.col("unit"), unit_names()).alias("unit"),
        _lookup(name_key, {f"{lang}:{i}": n for (lang, i), n in names.items()}).alias("test_name"),
        number(pl.col("ref_low_written"), pl.col("decimals")).alias("ref_low"),
        number(pl.col("ref_high_written"), pl.col("decimals")).alias("ref_high"),
        "resulted_at",
        _lookup(pl.col("status"), STATUS_LETTER).alias("result_status"),
        pl.concat_str([pl.col("site_code"), pl.col("_n").cast(pl.String).str.zfill(4), pl.lit("-"),
                       pl.col("draw").cast(pl.String).str.zfill(3),
                       _lookup(pl.col("panel"), PANEL_LETTER)]).alias("accession"),
        "source_system",
        _lookup(pl.col("tag"), TAG_NAME).alias("_expect"),
        pl.lit("").alias("_reason"),
    )


def vitals_frame(cohort: list[SimPatient]) -> pl.DataFrame:
    raw = with_timestamps(_frame(cohort, "vitals", ("t", "kind", "written", "decimals", "unit"), "vitals_clock"),
                          {"measured_at": "t"})
    device = pl.col("kind") == VITAL_KINDS.index("o2_device")
    return raw.select(
        pl.col("_n"),
        patient_id(pl.col("_n")).alias("patient_id"),
        "measured_at",
        _lookup(pl.col("kind"), VITAL_KINDS).alias("kind"),
        pl.when(device).then(_lookup(pl.col("written").cast(pl.Int64), O2_DEVICES))
        .otherwise(number(pl.col("written"), pl.col("decimals"))).alias("value"),
        _lookup(pl.col("unit"), unit_names()).alias("unit"),
        pl.lit("").alias("_expect"), pl.lit("").alias("_reason"),
    )


def events_frame(cohort: list[SimPatient]) -> pl.DataFrame:
    rows = [(sim.patient.number, SITE_CODES.index(sim.patient.design.site.code), at, kind, value)
            for sim in cohort for at, kind, value in sim.events]
    raw = pl.DataFrame(rows, schema=["_n", "site", "t", "event_type", "value"], orient="row")
    raw = with_timestamps(raw.with_columns(_site_columns("offset")), {"event_at": "t"})
    return raw.select(pl.col("_n"), patient_id(pl.col("_n")).alias("patient_id"), "event_at", "event_type",
                      "value", pl.lit("").alias("_expect"), pl.lit("").alias("_reason"))


def infusions_frame(cohort: list[SimPatient]) -> pl.DataFrame:
    rows = [(sim.patient.number, SITE_CODES.index(sim.patient.design.site.code), ep.infusion_at,
             ep.course.product.name, ep.infusion_id, ep.course.product.target_antigen, ep.course.product.indication)
            for sim in cohort for ep in sim.episodes]
    raw = pl.DataFrame(rows, schema=["_n", "site", "t", "product", "infusion_id", "target_antigen", "indication"],
                       orient="row")
    raw = with_timestamps(raw.with_columns(_site_columns("offset")), {"infused_at": "t"})
    return raw.select(pl.col("_n"), patient_id(pl.col("_n")).alias("patient_id"), "infused_at", "product",
                      "infusion_id", "target_antigen", "indication", pl.col("tz").alias("site_timezone"),
                      pl.lit("").alias("_expect"), pl.lit("").alias("_reason"))


def feed_frames(cohort: list[SimPatient], rules: Rules) -> dict[str, pl.DataFrame]:
    return {"labs": labs_frame(cohort, rules), "vitals": vitals_frame(cohort),
            "infusions": infusions_frame(cohort), "events": events_frame(cohort)}


def write_csv(frame: pl.DataFrame, feed: str, path: Path) -> None:
    """UTF-8, header row, `\\n` line ends, empty for missing; quotes only where needed."""
    frame.select(COLUMNS[feed]).write_csv(path, line_terminator="\n", null_value="")
