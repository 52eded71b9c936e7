"""derived.ferritin_trajectory end to end: as-of visibility, pre-infusion hyperferritinemia, the CRS
course as known at each result (same-day fever before or after the draw), re-infusion."""

from __future__ import annotations

from datetime import date, timedelta

from engine_helpers import Scenario

START = "2026-05-01"


def on(day: int, hhmm: str = "08:00") -> str:
    return f"{date.fromisoformat(START) + timedelta(days=day)} {hhmm}"


def test_a_result_resulted_after_as_of_is_invisible():
    s = Scenario()
    s.infusion("P1", on(0, "10:00"))
    s.lab("P1", "ferritin", on(3, "06:00"), 600, resulted_at=on(3, "09:00"))
    s.lab("P1", "ferritin", on(5, "06:00"), 2500, resulted_at=on(5, "14:00"))   # collected before as_of
    s.build(on(5, "12:00"))
    assert [r["value"] for r in s.ferritin("P1")] == [600]
    s.build(on(5, "14:00"))
    assert [r["value"] for r in s.ferritin("P1")] == [600, 2500]


def test_pre_infusion_hyperferritinemia_is_judged_against_baseline():
    s = Scenario()
    s.infusion("P1", on(0, "10:00"))
    s.lab("P1", "ferritin", on(-2), 1500)                        # baseline above ULN (400)
    s.lab("P1", "ferritin", on(16), 1000)
    s.lab("P1", "ferritin", on(17), 2500)                        # > 2 x ULN, < 2 x baseline
    s.lab("P1", "ferritin", on(18), 3100)                        # > 2 x baseline
    s.build(on(30))
    rows = s.ferritin("P1")
    assert [(r["day"], r["baseline"], r["elevated"], r["signal"], r["status"]) for r in rows] == [
        (-2, 1500, False, None, None),                           # the baseline itself: no status
        (16, 1500, False, None, None),
        (17, 1500, False, None, None),                           # a re-rise, but not elevated
        (18, 1500, True, "re_rise", "suspected")]


def test_crs_course_is_read_as_known_at_each_result():
    s = Scenario()
    for pid in ("EARLY", "LATE"):
        s.infusion(pid, on(0, "10:00"))
        s.lab(pid, "ferritin", on(3), 500)
        s.vital(pid, "temperature", on(16, "08:00"), 38.7)       # first fever, day 16
    s.lab("EARLY", "ferritin", on(16, "07:59"), 1200)            # drawn before the fever: no CRS yet
    s.lab("LATE", "ferritin", on(16, "08:00"), 1200)             # drawn with it: CRS onset known
    s.build(on(30))
    early, late = s.ferritin("EARLY")[-1], s.ferritin("LATE")[-1]
    assert (early["signal"], early["timing_holds"], early["status"]) == ("re_rise", True, "suspected")
    # with CRS known at the draw, the draw is the CRS-phase peak itself: no nadir after it, no signal
    assert (late["crs_phase_peak"], late["post_peak_nadir"], late["timing_holds"], late["status"]) == (
        1200, None, False, None)
    assert early["crs_phase_peak"] is None and early["post_peak_nadir"] == 500


def test_reescalation_counts_from_the_reading_that_shows_it():
    s = Scenario()
    s.infusion("P1", on(0, "10:00"))
    s.vital("P1", "temperature", on(2), 38.6)
    s.vital("P1", "sbp", on(2), 85)                               # grade 2
    s.vital("P1", "temperature", on(3), 38.6)                     # grade 1: improvement day 3
    s.vital("P1", "temperature", on(4), 37.0)
    s.vital("P1", "sbp", on(4), 85)                               # grade 2 again: re-escalation day 4, 08:00
    for hhmm, value in (("06:00", 9000), ("07:00", 2000), ("07:30", 1000), ("09:00", 2100)):
        s.lab("P1", "ferritin", on(4, hhmm), value)
    s.build(on(30))
    *_, before, after = s.ferritin("P1")
    assert before["value"] == 1000 and after["value"] == 2100
    assert after["re_rise"] and after["timing_holds"] and after["status"] == "suspected"
    assert s.one("SELECT reescalated_day FROM derived.crs_episodes")["reescalated_day"] == 4


def test_reinfusion_has_its_own_trajectory():
    s = Scenario()
    s.infusion("P1", on(0, "10:00"), "I1")
    s.vital("P1", "temperature", on(2), 38.6)
    s.lab("P1", "ferritin", on(2), 5000)
    s.infusion("P1", on(40, "10:00"), "I2")                       # I1's ferritin is too old to be baseline
    s.lab("P1", "ferritin", on(41), 900)                          # I2 day 1: nadir since I2's infusion
    s.lab("P1", "ferritin", on(42), 1900)                         # re-rise, no CRS yet in I2, day 2: watch
    s.build(on(60))
    rows = [r for r in s.ferritin("P1") if r["infusion_id"] == "I2"]
    assert [(r["day"], r["baseline"], r["post_peak_nadir"], r["crs_phase_peak"], r["status"]) for r in rows] == [
        (1, None, None, None, None), (2, None, 900, None, "watch")]
    assert s.one("SELECT onset_day FROM derived.crs_episodes WHERE infusion_id = 'I2'")["onset_day"] is None


def test_timing_and_lag_boundaries_against_the_built_crs_course():
    s = Scenario()
    for pid in ("AT48", "AFTER48", "LAG"):
        s.infusion(pid, on(0, "10:00"))
        s.vital(pid, "temperature", on(1), 38.5)                  # CRS day 1
        s.vital(pid, "temperature", on(2), 37.0)                  # improvement 00:00 day 2, resolved end of day 2
        s.lab(pid, "ferritin", on(1, "08:30"), 3000)
    for pid, hhmm in (("AT48", "00:00"), ("AFTER48", "00:01")):
        s.lab(pid, "ferritin", on(3), 1000)
        s.lab(pid, "ferritin", on(4, hhmm), 2500)                 # improvement + 48 h is 00:00 of day 4
    s.lab("LAG", "ferritin", on(5, "00:00"), 6000)                # exactly resolution + 48 h: CRS phase
    s.lab("LAG", "ferritin", on(6), 7000)
    s.build(on(10))
    e = s.one("SELECT improvement_at, ferritin_window_end_at FROM derived.crs_episodes WHERE patient_id = 'LAG'")
    assert (e["improvement_at"], e["ferritin_window_end_at"]) == (s.t(on(2, "00:00")), s.t(on(5, "00:00")))
    at48, after48 = s.ferritin("AT48")[-1], s.ferritin("AFTER48")[-1]
    assert (at48["signal"], at48["timing_holds"], at48["status"]) == ("re_rise", False, "watch")
    assert (after48["signal"], after48["timing_holds"], after48["status"]) == ("re_rise", True, "suspected")
    at_end, later = s.ferritin("LAG")[-2:]
    assert (at_end["crs_phase_peak"], at_end["new_high"], at_end["status"]) == (6000, False, None)
    assert (later["crs_phase_peak"], later["signal"], later["status"]) == (6000, "new_high", "suspected")
