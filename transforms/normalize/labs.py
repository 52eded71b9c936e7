"""Labs: codes to analytes, values to numbers, units to canonical, times to UTC (CONTRACT 1)."""

from __future__ import annotations

from transforms.normalize.context import (NormalizeContext, RowRejected, number_key, optional,
                                          required, row_key)
from transforms.parsers.base import LOINC_SYSTEM
from transforms.units import UnitError
from transforms.values import ValueParseError, parse_value

RESULT_STATUSES = ("F", "C", "X", "P")


def normalize_lab(fields: dict[str, str | None], ctx: NormalizeContext) -> dict:
    """One staged lab result (stg.lab_results columns without lineage), or RowRejected."""
    patient_id = required(fields, "patient_id")
    loinc, local_code, analyte = _analyte(fields, ctx)
    status = (optional(fields, "result_status") or "F").upper()
    if status not in RESULT_STATUSES:
        raise RowRejected(f"unknown result_status {status!r}")
    value, comparator, unit = _value(fields, analyte, status, ctx)
    ref_low, ref_high = (None, None) if value is None else (
        _reference(fields, name, analyte, ctx) for name in ("ref_low", "ref_high"))
    observed_at = ctx.timestamp(fields.get("collected_at"), "collected_at")
    resulted_text = optional(fields, "resulted_at")
    resulted_at = ctx.timestamp(resulted_text, "resulted_at") if resulted_text else None
    if resulted_at is not None and resulted_at < observed_at:
        raise RowRejected("resulted_at is before collected_at")
    accession = optional(fields, "accession")
    return {
        "row_key": row_key(patient_id, analyte, observed_at, comparator, number_key(value), status,
                           accession, resulted_at),
        "patient_id": patient_id, "analyte": analyte, "loinc": loinc, "local_code": local_code,
        "test_name": optional(fields, "test_name"), "value": value, "comparator": comparator,
        "unit": unit, "value_original": optional(fields, "value"),
        "unit_original": optional(fields, "unit"), "ref_low": ref_low, "ref_high": ref_high,
        "result_status": status, "accession": accession,
        "source_system": optional(fields, "source_system"),
        "observed_at": observed_at, "resulted_at": resulted_at,
    }


def _analyte(fields: dict[str, str | None], ctx: NormalizeContext) -> tuple[str | None, str | None, str]:
    code = required(fields, "code")
    system = optional(fields, "code_system") or LOINC_SYSTEM
    if system.upper() in (LOINC_SYSTEM, "LOINC", "HTTP://LOINC.ORG"):
        analyte = ctx.analyte_by_loinc.get(code)
        if analyte is None:
            raise RowRejected(f"unknown LOINC {code!r}")
        return code, None, analyte
    mapped = ctx.local_codes.get((system, code)) or ctx.local_codes.get(("", code))
    if mapped is None:
        raise RowRejected(f"unmapped local code {code!r} (system {system!r})")
    loinc, analyte = mapped
    if analyte not in ctx.rules.analytes:
        raise RowRejected(f"local code {code!r} maps to unknown analyte {analyte!r}")
    return loinc, code, analyte


def _value(fields, analyte: str, status: str, ctx: NormalizeContext) -> tuple[float | None, str | None, str]:
    canonical = ctx.units.canonical_unit(analyte)
    text = optional(fields, "value")
    if text is None and status == "X":
        return None, None, canonical  # a cancellation may withdraw a result without repeating it
    try:
        parsed = parse_value(text)
        linear = ctx.units.to_canonical(analyte, optional(fields, "unit"))
    except (ValueParseError, UnitError) as exc:
        raise RowRejected(str(exc)) from None
    return linear.apply(parsed.value), parsed.comparator, canonical


def _reference(fields, name: str, analyte: str, ctx: NormalizeContext) -> float | None:
    text = optional(fields, name)
    if text is None:
        return None
    try:
        parsed = parse_value(text)
        return ctx.units.to_canonical(analyte, optional(fields, "unit")).apply(parsed.value)
    except (ValueParseError, UnitError) as exc:
        raise RowRejected(f"{name}: {exc}") from None
