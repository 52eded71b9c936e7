"""derived.crs_daily: the ASTCT 2019 grade of each calendar day post-infusion (clinical-rules.md §2):
the grading table, fever as entry criterion, tocilizumab, documented grades and their carry-forward,
DST days, re-infusion and as-of."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from engine_helpers import Scenario

START = "2026-05-01"      # infusion day (day 0), 10:00 local; no DST change in May


def on(day: int, hhmm: str = "08:00", start: str = START) -> str:
    from datetime import date
    return f"{date.fromisoformat(start) + timedelta(days=day)} {hhmm}"


# One build, one patient per grading case: (readings on day 1, expected grade, hypotension, hypoxia).
GRADING = {
    "fever_only": ([("temperature", 38.0)], [], 1, 0, 0),                      # exactly 38.0 C is fever
    "no_fever": ([("temperature", 37.9), ("sbp", 80)], [], 0, 2, 0),           # no entry criterion
    "sbp": ([("temperature", 38.5), ("sbp", 89)], [], 2, 2, 0),
    "sbp_90": ([("temperature", 38.5), ("sbp", 90)], [], 1, 0, 0),             # SBP < 90 only
    "map": ([("temperature", 38.5), ("map", 64)], [], 2, 2, 0),
    "one_pressor": ([("temperature", 38.5)], [("vasopressor", 1)], 3, 3, 0),
    "two_pressors": ([("temperature", 38.5)], [("vasopressor", 2)], 4, 4, 0),
    "cannula_6": ([("temperature", 38.5), ("o2_device", "nasal_cannula"), ("o2_flow", 6)], [], 2, 0, 2),
    "cannula_7": ([("temperature", 38.5), ("o2_device", "nasal_cannula"), ("o2_flow", 7)], [], 3, 0, 3),
    "face_mask": ([("temperature", 38.5), ("o2_device", "face_mask")], [], 3, 0, 3),
    "bipap": ([("temperature", 38.5), ("o2_device", "bipap")], [], 4, 0, 4),
    "spo2_fallback": ([("temperature", 38.5), ("spo2", 88)], [], 2, 0, 2),
    "spo2_room_air": ([("temperature", 38.5), ("o2_device", "room_air"), ("spo2", 88)], [], 2, 0, 2),
    "spo2_90": ([("temperature", 38.5), ("spo2", 90)], [], 1, 0, 0),
    "worst_of_day": ([("temperature", 38.5), ("sbp", 85), ("o2_device", "high_flow")], [], 3, 2, 3),
}


@pytest.fixture(scope="module")
def graded():
    s = Scenario()
    for pid, (vitals, events, *_) in GRADING.items():
        s.infusion(pid, on(0, "10:00"))
        for i, (kind, value) in enumerate(vitals):
            s.vital(pid, kind, on(1, f"08:{i:02d}"), value)
        for kind, value in events:
            s.event(pid, kind, on(1, "09:00"), value)
    s.build(on(30))
    return s


@pytest.mark.parametrize("pid", GRADING)
def test_astct_grading_table(graded, pid):
    *_, grade, hypotension, hypoxia = GRADING[pid]
    row = graded.one("SELECT * FROM derived.crs_daily WHERE patient_id = ? AND day = 1", [pid])
    assert (row["grade"], row["hypotension_grade"], row["hypoxia_grade"]) == (grade, hypotension, hypoxia)
    assert row["grade_source"] == "derived"
    assert graded.grades(pid)[0] == (0, "derived")          # day 0, nothing charted


def test_days_run_from_0_to_the_last_day_with_data_with_site_midnights(graded):
    rows = graded.rows("SELECT day, day_start_at, day_end_at FROM derived.crs_daily WHERE patient_id = 'sbp' "
                       "ORDER BY day")
    assert [r["day"] for r in rows] == [0, 1]
    assert rows[0]["day_start_at"] == graded.t(on(0, "00:00"))
    assert rows[1]["day_end_at"] == graded.t(on(2, "00:00"))


def test_fever_opens_an_episode_that_hypotension_carries_until_a_grade_0_day():
    s = Scenario()
    s.infusion("P1", on(0, "10:00"))
    days = {1: [("sbp", 85)],                                   # hypotension, no fever: not CRS
            2: [("temperature", 38.4)],                         # fever opens the episode
            3: [("temperature", 37.0), ("sbp", 85)],            # no fever, hypotension: grade 2
            4: [("temperature", 37.0), ("o2_device", "nasal_cannula"), ("o2_flow", 2)],
            5: [("temperature", 37.0)],                         # grade 0: resolution
            6: [("temperature", 37.0), ("sbp", 85)]}            # hypotension again, no fever: not CRS
    for day, readings in days.items():
        for i, (kind, value) in enumerate(readings):
            s.vital("P1", kind, on(day, f"08:{i:02d}"), value)
    s.build(on(30))
    assert {d: g for d, (g, _) in s.grades("P1").items()} == {0: 0, 1: 0, 2: 1, 3: 2, 4: 2, 5: 0, 6: 0}


@pytest.mark.parametrize("drug", ["tocilizumab", "corticosteroid"])
def test_fever_not_required_after_tocilizumab_or_corticosteroid(drug):
    s = Scenario()
    for pid in ("treated", "control"):
        s.infusion(pid, on(0, "10:00"))
        s.vital(pid, "temperature", on(2, "08:00"), 37.6)        # fever masked
        s.vital(pid, "sbp", on(3, "08:00"), 84)
        s.vital(pid, "temperature", on(3, "08:00"), 37.2)
        s.vital(pid, "temperature", on(4, "08:00"), 37.0)
        s.vital(pid, "o2_device", on(5, "08:00"), "face_mask")   # after resolution: fever needed again
    s.event("treated", drug, on(2, "12:00"), "8 mg/kg")
    s.build(on(30))
    assert {d: g for d, (g, _) in s.grades("treated").items()} == {0: 0, 1: 0, 2: 0, 3: 2, 4: 0, 5: 0}
    assert {d: g for d, (g, _) in s.grades("control").items()} == {0: 0, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0}


def test_documented_grades_win_hold_forward_and_derived_fill_only_before_the_first():
    s = Scenario()
    s.infusion("P1", on(0, "10:00"))
    s.vital("P1", "temperature", on(1, "08:00"), 38.5)           # derived grade 1
    s.vital("P1", "temperature", on(2, "08:00"), 38.5)
    s.vital("P1", "sbp", on(2, "08:00"), 80)                     # derived would be 2 ...
    s.event("P1", "crs_grade", on(2, "00:00"), 1)                # ... the documented 1 wins
    s.vital("P1", "temperature", on(3, "08:00"), 37.0)           # no document: 1 carried forward
    s.vital("P1", "temperature", on(4, "08:00"), 39.0)
    s.vital("P1", "o2_device", on(4, "08:00"), "bipap")          # derived would be 4: still the held 1
    s.event("P1", "crs_grade", on(5, "00:00"), 3)
    s.event("P1", "crs_grade", on(5, "20:00"), 2)                # worst of the day 3, the last (2) carried
    s.vital("P1", "temperature", on(6, "08:00"), 37.0)
    s.build(on(30))
    assert s.grades("P1") == {0: (0, "derived"), 1: (1, "derived"), 2: (1, "documented"), 3: (1, "documented"),
                              4: (1, "documented"), 5: (3, "documented"), 6: (2, "documented")}


def test_hold_days_limit_lets_derived_grades_take_over_again(rules):
    values = dict(rules.values, **{"crs.documented_grade_hold_days": 1})
    s = Scenario(rules=dataclasses.replace(rules, values=values))
    s.infusion("P1", on(0, "10:00"))
    s.event("P1", "crs_grade", on(1, "00:00"), 2)
    for day in (2, 3):
        s.vital("P1", "temperature", on(day, "08:00"), 37.0)
    s.vital("P1", "sbp", on(3, "08:00"), 85)                     # open episode: hypotension grades 2
    s.vital("P1", "temperature", on(4, "08:00"), 37.0)
    s.build(on(30))
    assert s.grades("P1") == {0: (0, "derived"), 1: (2, "documented"), 2: (2, "documented"),
                              3: (2, "derived"), 4: (0, "derived")}


def test_dst_days_are_23_and_25_hours_long_and_late_evening_stays_on_its_day():
    s = Scenario()
    s.infusion("SPRING", "2026-03-06 10:00")                     # 2026-03-08: clocks go forward
    s.vital("SPRING", "temperature", "2026-03-08 23:30", 38.2)   # 03:30 UTC on 03-09, still day 2
    s.vital("SPRING", "temperature", "2026-03-09 00:30", 37.0)
    s.infusion("FALL", "2026-10-30 10:00")                       # 2026-11-01: clocks go back
    s.vital("FALL", "temperature", "2026-11-02 08:00", 37.0)
    s.build("2026-11-20 00:00")
    spring = {r["day"]: r for r in s.rows("SELECT * FROM derived.crs_daily WHERE patient_id = 'SPRING'")}
    assert spring[2]["day_end_at"] - spring[2]["day_start_at"] == timedelta(hours=23)
    assert (spring[2]["grade"], spring[2]["max_temp_c"], spring[3]["grade"]) == (1, 38.2, 0)
    fall = {r["day"]: r for r in s.rows("SELECT * FROM derived.crs_daily WHERE patient_id = 'FALL'")}
    assert fall[2]["day_end_at"] - fall[2]["day_start_at"] == timedelta(hours=25)
    assert fall[1]["day_end_at"] - fall[1]["day_start_at"] == timedelta(hours=24)


def test_reinfusion_starts_its_own_course_and_as_of_hides_later_readings():
    s = Scenario()
    s.infusion("P1", on(0, "10:00"), "I1")
    s.vital("P1", "temperature", on(2, "08:00"), 38.5)
    s.infusion("P1", on(10, "10:00"), "I2")
    s.vital("P1", "temperature", on(10, "08:00"), 38.1)          # before the second infusion: first course
    s.vital("P1", "temperature", on(11, "08:00"), 38.9)          # day 1 of the second
    s.vital("P1", "temperature", on(12, "08:00"), 39.5)          # after as_of: invisible
    s.build(on(12, "07:00"))
    rows = s.rows("SELECT infusion_id, day, grade, max_temp_c FROM derived.crs_daily ORDER BY infusion_id, day")
    first = [(r["day"], r["grade"]) for r in rows if r["infusion_id"] == "I1"]
    second = [(r["day"], r["grade"], r["max_temp_c"]) for r in rows if r["infusion_id"] == "I2"]
    assert first == [(d, 1 if d in (2, 10) else 0) for d in range(11)]
    assert second == [(0, 0, None), (1, 1, 38.9)]
