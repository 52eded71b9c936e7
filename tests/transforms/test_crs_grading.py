"""transforms.crs_grading: one day's ASTCT 2019 grade from its inputs and the day before (grade_step),
and a day as known at a moment inside it (grade_partial_days)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from transforms.crs_grading import (CrsRules, DayState, course_known_at, crs_intraday, crs_readings, day_inputs,
                                    grade_course, grade_partial_days, grade_step)
from transforms.rules import load_rules

RULES = load_rules()
R = CrsRules.from_params(RULES.sql_params(), RULES)
OPEN, QUIET = DayState(prev_grade=2), DayState()


@pytest.mark.parametrize("febrile, organ, dose, doc, state, expected", [
    (True, 0, False, None, QUIET, (1, "derived")),
    (True, 3, False, None, QUIET, (3, "derived")),
    (False, 3, False, None, QUIET, (0, "derived")),                  # no fever, no open episode
    (False, 3, False, None, OPEN, (3, "derived")),                   # episode opened by fever goes on
    (False, 2, True, None, QUIET, (2, "derived")),                   # tocilizumab/steroid today
    (False, 2, False, None, DayState(waiver=True), (2, "derived")),  # ... or on an earlier day
    (True, 4, False, 1, QUIET, (1, "documented")),                   # documented wins
    (True, 4, False, None, DayState(held_grade=2, held_day=1), (2, "documented")),   # carried forward
])
def test_grade_step(febrile, organ, dose, doc, state, expected):
    grade, source, _ = grade_step(3, febrile, organ, dose, doc, doc, state, R)
    assert (grade, source) == expected


def test_waiver_ends_with_the_episode_it_covers():
    _, _, state = grade_step(1, False, 2, True, None, None, QUIET, R)        # dose, grade 2
    assert state == DayState(2, True, None, None)
    _, _, state = grade_step(2, False, 0, False, None, None, state, R)       # grade 0: resolved
    assert state.waiver is False
    assert grade_step(3, False, 2, False, None, None, state, R)[0] == 0


def test_a_day_as_known_at_each_reading_matches_the_whole_day_at_its_last_reading():
    t0 = datetime(2026, 5, 1, 4, 0, tzinfo=timezone.utc)
    readings = [(1, 2, "temperature", 38.4), (2, 3, "temperature", 37.0), (2, 9, "sbp", 84),
                (2, 15, "o2_flow", 8.0), (3, 5, "temperature", 37.1)]
    vitals = pl.DataFrame({
        "patient_id": "P", "infusion_id": "I", "day": [d for d, *_ in readings],
        "observed_at": [t0 + timedelta(days=d, hours=h) for d, h, *_ in readings],
        "kind": [k for *_, k, _ in readings], "value": [float(v) for *_, v in readings], "value_text": None,
    }, schema_overrides={"value_text": pl.String})
    events = pl.DataFrame(schema={"patient_id": pl.String, "infusion_id": pl.String, "day": pl.Int32,
                                  "observed_at": pl.Datetime("us", "UTC"), "event_type": pl.String,
                                  "value_num": pl.Float64})
    calendar = pl.DataFrame({"patient_id": "P", "infusion_id": "I", "day": [0, 1, 2, 3],
                             "day_start_at": [t0 + timedelta(days=d) for d in range(4)],
                             "day_end_at": [t0 + timedelta(days=d + 1) for d in range(4)]})
    intraday = crs_intraday(crs_readings(vitals, events, R))
    course = grade_course(calendar, day_inputs(intraday), R)
    assert course["grade"].to_list() == [0, 1, 3, 0]
    points = pl.DataFrame({"point_id": [1, 2, 3, 4], "patient_id": "P", "infusion_id": "I", "day": [2, 2, 2, 2],
                           "at": [t0 + timedelta(days=2, hours=h) for h in (1, 3, 10, 23)]})
    partial = grade_partial_days(points, course, intraday, R).sort("point_id")
    assert partial["grade"].to_list() == [0, 0, 2, 3]   # open episode: graded by what was charted by then
    known = course_known_at(points, course, partial)
    assert known.filter(pl.col("point_id") == 4).sort("day")["grade"].to_list() == [0, 1, 3]
