"""The report's table of a stored night (cartwatch/report/night_sources.py), on hand-made rows: the
night's windows and follow-up, its evaluated infusions only, the feeds as known by its as-of."""

from __future__ import annotations

from datetime import date, datetime, timezone

from cartwatch.report.outcomes import outcomes
from cartwatch.streams import Night

NY = "America/New_York"
AS_OF = datetime(2026, 3, 15, 6, tzinfo=timezone.utc)          # 02:00 EDT on the night of 2026-03-15
NIGHT = Night("backfill:b1", date(2026, 3, 15), AS_OF)


def utc(d: int, h: int) -> datetime:
    return datetime(2026, 3, d, h, tzinfo=timezone.utc)


def infusion(con, patient: str, infusion_id: str, at: datetime, product: str = "axi-cel") -> None:
    con.execute("INSERT INTO stg.infusions VALUES (?, ?, ?, ?, 'CD19', NULL, NULL, ?, ?, 'f.csv', 1, 'csv', 'x', 1)",
                [f"{patient}-{infusion_id}", patient, infusion_id, product, at, at])


def death(con, patient: str, at: datetime) -> None:
    con.execute("INSERT INTO stg.events VALUES (?, ?, 'death', 1, NULL, ?, ?, 'e.csv', 1, 'csv', 'x', 1)",
                [f"{patient}-death", patient, at, at])


def evaluated(con, patient: str, infusion_id: str, day: int, as_of: datetime = AS_OF) -> None:
    con.execute("INSERT INTO flags.daily_by_night (stream, night, as_of, patient_id, infusion_id, day) "
                "VALUES ('backfill:b1', ?, ?, ?, ?, ?)", [NIGHT.night, as_of, patient, infusion_id, day])


def window(con, patient: str, infusion_id: str, status: str, onset_day: int, crs_peak_day: int | None) -> None:
    con.execute("INSERT INTO flags.windows_by_night (stream, night, as_of, patient_id, infusion_id, criteria_set, "
                "status, onset_at, onset_day, crs_peak_day, late_onset) VALUES ('backfill:b1', ?, ?, ?, ?, "
                "'astct_iec_hs_2023', ?, ?, ?, ?, false)",
                [NIGHT.night, AS_OF, patient, infusion_id, status, utc(1, 12), onset_day, crs_peak_day])


def test_a_stored_night_reads_its_own_rows_and_what_was_known_by_then(store):
    infusion(store, "P1", "P1-I1", utc(1, 15))
    window(store, "P1", "P1-I1", "suspected", 9, 3)
    evaluated(store, "P1", "P1-I1", 13)
    death(store, "P1", utc(15, 5))                   # 01:00 EDT on 2026-03-15: day 14, known by the night
    infusion(store, "P2", "P2-I1", utc(2, 15))
    evaluated(store, "P2", "P2-I1", 12)
    death(store, "P2", utc(15, 7))                   # after the night's as-of: not known then
    infusion(store, "P3", "P3-I1", utc(3, 15))       # not evaluated that night (outside the backfill)
    infusion(store, "P4", "P4-I1", utc(16, 15))      # infused after the night
    evaluated(store, "P4", "P4-I1", 0, as_of=utc(16, 6))          # (another night's row)

    members = [("P1", "P1-I1"), ("P2", "P2-I1"), ("P3", "P3-I1"), ("P4", "P4-I1")]
    frame = outcomes(store, members, NIGHT, NY).filter(criteria_set="astct_iec_hs_2023")
    assert frame.select("patient_id", "last_day", "crs_peak_day", "crs_improvement_day", "death_day",
                        "highest_status", "flagged", "onset_day").rows() == [
        ("P1", 13, 3, None, 14, "suspected", True, 9),
        ("P2", 12, None, None, None, "none", False, None)]
