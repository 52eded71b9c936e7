from datetime import datetime, timedelta, timezone

import pytest

from transforms.timestamps import TimestampError, check_plausible, parse_timestamp

NY = "America/New_York"
UTC = timezone.utc


@pytest.mark.parametrize("text, expected", [
    ("2026-06-01T08:00:00-04:00", datetime(2026, 6, 1, 12, 0, tzinfo=UTC)),
    ("2026-06-01T12:00:00Z", datetime(2026, 6, 1, 12, 0, tzinfo=UTC)),
    ("2026-06-01 08:00:00+02:00", datetime(2026, 6, 1, 6, 0, tzinfo=UTC)),
    ("2026-06-01T08:00:00", datetime(2026, 6, 1, 12, 0, tzinfo=UTC)),      # naive: site zone, EDT
    ("2026-01-15T08:00:00", datetime(2026, 1, 15, 13, 0, tzinfo=UTC)),     # naive: site zone, EST
    ("2026-03-08T01:59:00", datetime(2026, 3, 8, 6, 59, tzinfo=UTC)),      # last minute of EST
    ("2026-03-08T03:00:00", datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),       # first minute of EDT
    ("2026-11-01T01:30:00", datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),     # repeated hour: first (EDT)
])
def test_iso_8601_with_and_without_offset(text, expected):
    assert parse_timestamp(text, NY) == expected


@pytest.mark.parametrize("text, reason", [
    ("2026-03-08T02:30:00", "nonexistent local time '2026-03-08T02:30:00' in America/New_York"),
    ("2026-02-30T08:00:00", "impossible date '2026-02-30T08:00:00'"),
    ("yesterday", "unparseable timestamp 'yesterday'"),
    ("2026-06-01", "timestamp '2026-06-01' has no time of day"),
    ("", "missing timestamp"),
])
def test_unusable_timestamps_are_refused(text, reason):
    with pytest.raises(TimestampError, match=reason.replace("(", r"\(")):
        parse_timestamp(text, NY)


def test_date_only_allowed_where_asked():
    assert parse_timestamp("2026-06-01", NY, allow_date_only=True) == datetime(2026, 6, 1, 4, tzinfo=UTC)


def test_future_and_prehistoric_times():
    now = datetime(2026, 11, 1, 12, tzinfo=UTC)
    tolerance = timedelta(minutes=10)
    check_plausible(now + tolerance, now, future_tolerance=tolerance, earliest_year=2010)  # at the edge: ok
    with pytest.raises(TimestampError, match="in the future"):
        check_plausible(now + tolerance + timedelta(seconds=1), now, future_tolerance=tolerance,
                        earliest_year=2010)
    with pytest.raises(TimestampError, match="before 2010"):
        check_plausible(datetime(2009, 12, 31, tzinfo=UTC), now, future_tolerance=tolerance,
                        earliest_year=2010)
