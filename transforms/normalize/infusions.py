"""Infusions: the CAR-T infusion that starts each episode, with the site's time zone (CONTRACT 1)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from transforms.normalize.context import NormalizeContext, RowRejected, optional, required, row_key


def normalize_infusion(fields: dict[str, str | None], ctx: NormalizeContext) -> dict:
    """One staged infusion (stg.infusions columns without lineage), or RowRejected.

    A naive infused_at is read in the row's own site_timezone when it has one.
    """
    patient_id = required(fields, "patient_id")
    site_timezone = optional(fields, "site_timezone")
    if site_timezone:
        _check_zone(site_timezone)
    infused_at = ctx.timestamp(fields.get("infused_at"), "infused_at", tz=site_timezone)
    product = required(fields, "product")
    infusion_id = optional(fields, "infusion_id") or f"{patient_id}-{infused_at:%Y%m%dT%H%MZ}"
    return {
        "row_key": row_key(patient_id, infusion_id, infused_at, product, site_timezone),
        "patient_id": patient_id, "infusion_id": infusion_id, "product": product,
        "target_antigen": optional(fields, "target_antigen"),
        "indication": optional(fields, "indication"), "site_timezone": site_timezone,
        "observed_at": infused_at,
    }


def _check_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RowRejected(f"unknown site_timezone {name!r}") from None
