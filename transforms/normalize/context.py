"""What every normalizer needs: rules, units, codes, the site time zone and the load's clock."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from transforms.rules import Rules
from transforms.timestamps import check_plausible, parse_timestamp
from transforms.units import UnitConverter


class RowRejected(ValueError):
    """A row that cannot be staged; the message is its quarantine reason."""


@dataclass
class NormalizeContext:
    rules: Rules
    site_tz: str
    now: datetime                       # the load's time: results after it (beyond skew) are refused
    local_codes: dict[tuple[str, str], tuple[str | None, str]]  # (system, code) -> (loinc, analyte)
    units: UnitConverter | None = None

    def __post_init__(self) -> None:
        self.units = self.units or UnitConverter(self.rules)
        self.analyte_by_loinc = self.rules.analyte_by_loinc()
        self.future_tolerance = timedelta(minutes=self.rules.value("time_axis.future_tolerance_minutes"))
        self.earliest_year = int(self.rules.value("time_axis.earliest_plausible_year"))

    def timestamp(self, text: str | None, what: str, *, tz: str | None = None,
                  allow_date_only: bool = False) -> datetime:
        """A plausible UTC time, or RowRejected naming the column and the reason."""
        try:
            at = parse_timestamp(text, tz or self.site_tz, allow_date_only=allow_date_only)
            check_plausible(at, self.now, future_tolerance=self.future_tolerance,
                            earliest_year=self.earliest_year)
        except ValueError as exc:
            raise RowRejected(f"{what}: {exc}") from None
        return at


def required(fields: dict[str, str | None], name: str) -> str:
    value = (fields.get(name) or "").strip()
    if not value:
        raise RowRejected(f"missing {name}")
    return value


def optional(fields: dict[str, str | None], name: str) -> str | None:
    value = (fields.get(name) or "").strip()
    return value or None


def row_key(*parts: object) -> str:
    """A stable identity for a row's content, the same whichever format or file delivered it."""
    text = "\x1f".join("" if p is None else (p.isoformat() if isinstance(p, datetime) else str(p))
                       for p in parts)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def number_key(value: float | None) -> str:
    return "" if value is None else f"{value:.9g}"
