"""Events: clinician-documented facts (CRS/ICANS grades, treatments, pathology) (CONTRACT 1)."""

from __future__ import annotations

from transforms.normalize.context import (NormalizeContext, RowRejected, number_key, optional,
                                          required, row_key)
from transforms.values import ValueParseError, parse_value

GRADED = ("crs_grade", "icans_grade")
COUNTED = ("vasopressor",)
BOOLEAN = ("hemophagocytosis", "splenomegaly", "hepatomegaly", "immunosuppression")
TREATMENTS = ("tocilizumab", "corticosteroid", "anakinra", "ruxolitinib", "etoposide", "emapalumab")
EVENT_TYPES = GRADED + COUNTED + BOOLEAN + TREATMENTS + ("death",)
_TRUE = ("true", "yes", "1", "y", "t")
_FALSE = ("false", "no", "0", "n", "f")


def normalize_event(fields: dict[str, str | None], ctx: NormalizeContext) -> dict:
    """One staged event (stg.events columns without lineage), or RowRejected.

    A date-only event_at is accepted (daily assessments) and read as 00:00 in the site zone.
    """
    patient_id = required(fields, "patient_id")
    event_type = required(fields, "event_type").lower()
    if event_type not in EVENT_TYPES:
        raise RowRejected(f"unknown event_type {event_type!r}")
    observed_at = ctx.timestamp(fields.get("event_at"), "event_at", allow_date_only=True)
    value_num, value_text = _event_value(event_type, optional(fields, "value"))
    return {
        "row_key": row_key(patient_id, event_type, observed_at, number_key(value_num), value_text),
        "patient_id": patient_id, "event_type": event_type, "value_num": value_num,
        "value_text": value_text, "observed_at": observed_at,
    }


def _event_value(event_type: str, text: str | None) -> tuple[float | None, str | None]:
    if event_type in GRADED or event_type in COUNTED:
        try:
            number = parse_value(text)
        except ValueParseError as exc:
            raise RowRejected(f"{event_type}: {exc}") from None
        upper = 4 if event_type in GRADED else 10
        if number.comparator or number.value != int(number.value) or not 0 <= number.value <= upper:
            raise RowRejected(f"{event_type} must be a whole number 0-{upper}, got {text!r}")
        return number.value, None
    if event_type in BOOLEAN:
        if text is None or text.lower() not in _TRUE + _FALSE:
            raise RowRejected(f"{event_type} must be true or false, got {text!r}")
        return (1.0 if text.lower() in _TRUE else 0.0), None
    return None, text  # treatments and death: dose or note kept as text
