"""Timestamps from feeds: ISO 8601 with offset or `Z`; naive times are in the site time zone."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class TimestampError(ValueError):
    """A timestamp that cannot be used; its message is the quarantine reason."""


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def parse_timestamp(text: str | None, site_tz: str, *, allow_date_only: bool = False) -> datetime:
    """An aware UTC datetime from an ISO 8601 string.

    A naive time is read in `site_tz`. A naive time that does not exist there (the hour skipped
    when clocks go forward) is refused; an ambiguous one (the repeated hour) is read as its first
    occurrence, as most lab systems that send naive times keep writing daylight time until the
    switch.
    """
    if text is None or not text.strip():
        raise TimestampError("missing timestamp")
    text = text.strip()
    if _DATE_ONLY.match(text) and not allow_date_only:
        raise TimestampError(f"timestamp {text!r} has no time of day")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise TimestampError(_why_unparseable(text)) from None
    if parsed.tzinfo is None:
        parsed = _localize(parsed, zone(site_tz), text)
    return parsed.astimezone(timezone.utc)


def _why_unparseable(text: str) -> str:
    match = re.match(r"^(\d{4})-(\d{2})-(\d{2})", text)
    if match:
        try:
            date(*(int(g) for g in match.groups()))
        except ValueError:
            return f"impossible date {text!r}"
    return f"unparseable timestamp {text[:40]!r}"


def _localize(naive: datetime, tz: ZoneInfo, text: str) -> datetime:
    aware = naive.replace(tzinfo=tz, fold=0)
    round_trip = aware.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None)
    if round_trip != naive:
        raise TimestampError(f"nonexistent local time {text!r} in {tz.key} (clocks went forward)")
    return aware


def check_plausible(at: datetime, now: datetime, *, future_tolerance: timedelta,
                    earliest_year: int) -> None:
    """Refuse a time in the future (beyond clock skew) or before CAR-T therapy existed."""
    if at > now + future_tolerance:
        raise TimestampError(f"in the future ({at.isoformat()})")
    if at.year < earliest_year:
        raise TimestampError(f"before {earliest_year} ({at.isoformat()})")
