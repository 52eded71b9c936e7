"""Vitals: kinds, canonical units (temperature in Cel), oxygen devices by name (CONTRACT 1)."""

from __future__ import annotations

from transforms.normalize.context import (NormalizeContext, RowRejected, number_key, optional,
                                          required, row_key)
from transforms.units import UnitError
from transforms.values import ValueParseError, parse_value

O2_DEVICE = "o2_device"


def normalize_vital(fields: dict[str, str | None], ctx: NormalizeContext) -> dict:
    """One staged vital-sign reading (stg.vitals columns without lineage), or RowRejected."""
    patient_id = required(fields, "patient_id")
    kind = required(fields, "kind").lower()
    if kind not in ctx.rules.vitals:
        raise RowRejected(f"unknown vital kind {kind!r}")
    observed_at = ctx.timestamp(fields.get("measured_at"), "measured_at")
    value, value_text, unit = _reading(fields, kind, ctx)
    return {
        "row_key": row_key(patient_id, kind, observed_at, number_key(value), value_text),
        "patient_id": patient_id, "kind": kind, "value": value, "value_text": value_text,
        "unit": unit, "observed_at": observed_at,
    }


def _reading(fields, kind: str, ctx: NormalizeContext) -> tuple[float | None, str | None, str | None]:
    if kind == O2_DEVICE:
        device = required(fields, "value").lower()
        if device not in ctx.rules.o2_devices:
            raise RowRejected(f"unknown o2_device {device!r}")
        return None, device, None
    try:
        parsed = parse_value(optional(fields, "value"))
        linear = ctx.units.to_canonical(kind, optional(fields, "unit"))
    except (ValueParseError, UnitError) as exc:
        raise RowRejected(str(exc)) from None
    return linear.apply(parsed.value), None, ctx.units.canonical_unit(kind)
