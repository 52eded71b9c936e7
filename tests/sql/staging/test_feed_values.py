"""The staging macros of sql/staging/feed_values.sql: numbers and timestamps as feeds write them,
each with its exact value or quarantine reason."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import duckdb
import pytest

from cartwatch.staging import STAGING_DIR

NY = "America/New_York"
UTC = timezone.utc
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def con():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute((STAGING_DIR / "feed_values.sql").read_text(encoding="utf-8"))
    yield con
    con.close()


def number(con, text):
    return con.execute("SELECT number_read(n) FROM (SELECT number_text(?::VARCHAR) AS n)", [text]).fetchall()[0][0]


def moment(con, text, *, allow_date_only=False, now=NOW):
    """The four steps as staging runs them, one query level each."""
    return con.execute(
        "SELECT time_judged(u, $now::TIMESTAMPTZ, INTERVAL 10 MINUTE, 2010) FROM ("
        " SELECT time_utc(r, $tz) AS u FROM (SELECT time_read(t, $allow) AS r FROM ("
        "  SELECT time_text($text::VARCHAR) AS t)))",
        {"text": text, "allow": allow_date_only, "tz": NY, "now": now}).fetchall()[0][0]


@pytest.mark.parametrize("text, value, comparator", [
    ("1250", 1250.0, None),
    ("1,250", 1250.0, None),          # thousands separator, never 1.25
    ("1,250,000", 1250000.0, None),
    ("<5", 5.0, "<"),
    ("< 5", 5.0, "<"),
    (">100000", 100000.0, ">"),
    (">=100,000", 100000.0, ">="),
    ("<=0.5", 0.5, "<="),
    ("=12.5", 12.5, None),
    ("-0.3", -0.3, None),
    (".5", 0.5, None),
    ("1.2e3", 1200.0, None),
    ("  42  ", 42.0, None),
    ("\x0b42\xa0", 42.0, None),      # vertical tab and no-break space are white space too
])
def test_numbers_as_lab_systems_send_them(con, text, value, comparator):
    assert number(con, text) == {"value": value, "comparator": comparator, "error": None}


@pytest.mark.parametrize("text, reason", [
    ("pending", "non-numeric value 'pending'"),
    ("see note", "non-numeric value 'see note'"),
    ("1,25", "ambiguous decimal comma in value '1,25'"),
    ("12,5000", "ambiguous decimal comma in value '12,5000'"),
    ("", "missing value"),
    (None, "missing value"),
    ("1:2", "non-numeric value '1:2'"),
    ("it's", "non-numeric value \"it's\""),
    ("x" * 60, "non-numeric value '" + "x" * 40 + "'"),
])
def test_text_is_refused_with_a_reason(con, text, reason):
    assert number(con, text) == {"value": None, "comparator": None, "error": reason}


@pytest.mark.parametrize("value, key", [(1250.0, "1250"), (0.1, "0.1"), (1e-05, "1e-05"),
                                        (38.5, "38.5"), (123456789012.0, "1.23456789e+11"), (None, "")])
def test_number_key_is_pythons_9g(con, value, key):
    assert con.execute("SELECT number_key(?::DOUBLE)", [value]).fetchall()[0][0] == key == (
        "" if value is None else f"{value:.9g}")


@pytest.mark.parametrize("text, expected", [
    ("2026-06-01T08:00:00-04:00", datetime(2026, 6, 1, 12, 0, tzinfo=UTC)),
    ("2026-06-01T12:00:00Z", datetime(2026, 6, 1, 12, 0, tzinfo=UTC)),
    ("2026-06-01 08:00:00+02:00", datetime(2026, 6, 1, 6, 0, tzinfo=UTC)),
    ("2026-06-01T08:00+0530", datetime(2026, 6, 1, 2, 30, tzinfo=UTC)),
    ("2026-06-01T08:00:00.25Z", datetime(2026, 6, 1, 8, 0, 0, 250000, tzinfo=UTC)),
    ("2026-06-01T08:00:00", datetime(2026, 6, 1, 12, 0, tzinfo=UTC)),      # naive: site zone, EDT
    ("2026-01-15T08:00:00", datetime(2026, 1, 15, 13, 0, tzinfo=UTC)),     # naive: site zone, EST
    ("2026-03-08T01:59:00", datetime(2026, 3, 8, 6, 59, tzinfo=UTC)),      # last minute of EST
    ("2026-03-08T03:00:00", datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),       # first minute of EDT
    ("2026-11-01T00:59:00", datetime(2026, 11, 1, 4, 59, tzinfo=UTC)),     # before the repeated hour
    ("2026-11-01T01:30:00", datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),     # repeated hour: first (EDT)
    ("2026-11-01T02:00:00", datetime(2026, 11, 1, 7, 0, tzinfo=UTC)),      # after it: EST
])
def test_iso_8601_with_and_without_offset(con, text, expected):
    assert moment(con, text) == {"at": expected, "error": None}


@pytest.mark.parametrize("text, reason", [
    ("2026-03-08T02:30:00", "nonexistent local time '2026-03-08T02:30:00' in America/New_York (clocks went forward)"),
    ("2026-02-30T08:00:00", "impossible date '2026-02-30T08:00:00'"),
    ("yesterday", "unparseable timestamp 'yesterday'"),
    ("2026-06-01T24:00:00", "unparseable timestamp '2026-06-01T24:00:00'"),
    ("2026-06-01", "timestamp '2026-06-01' has no time of day"),
    ("", "missing timestamp"),
    (None, "missing timestamp"),
])
def test_unusable_timestamps_are_refused(con, text, reason):
    assert moment(con, text) == {"at": None, "error": reason}


def test_date_only_allowed_where_asked(con):
    assert moment(con, "2026-06-01", allow_date_only=True) == {
        "at": datetime(2026, 6, 1, 4, tzinfo=UTC), "error": None}


def test_future_and_prehistoric_times(con):
    edge = NOW + timedelta(minutes=10)
    assert moment(con, edge.isoformat()) == {"at": edge, "error": None}                 # at the edge: ok
    past_edge = edge + timedelta(seconds=1)
    assert moment(con, past_edge.isoformat()) == {
        "at": None, "error": "in the future (2026-11-01T12:10:01+00:00)"}
    assert moment(con, "2009-12-31T23:59:59Z") == {
        "at": None, "error": "before 2010 (2009-12-31T23:59:59+00:00)"}
