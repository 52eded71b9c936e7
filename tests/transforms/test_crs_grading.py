"""transforms.crs_grading: one day's ASTCT 2019 grade from its inputs and the day before (grade_step),
and a day as known at a moment inside it (grade_partial_days, read by crs_milestones.milestones_known_at)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from transforms.crs_grading import (CrsRules, DayState, crs_intraday, crs_readings, day_inputs, grade_course,
                                    grade_partial_days, grade_step)
from transforms.crs_milestones import milestones_known_at
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
    # the course as known at each point: days 0-1 as graded (0, 1), then day 2 as known then
    known = milestones_known_at(course, partial.join(points.select("point_id", "at"), on="point_id"),
                                R.resolution_days).sort("point_id")
    assert known["peak_grade"].to_list() == [1, 1, 2, 3] and known["onset_day"].to_list() == [1, 1, 1, 1]


def test_grade_course_grades_every_infusion_as_the_one_day_rule_does_day_after_day():
    """grade_course runs the n-th day of all infusions in one vectorized call; it must give what
    grade_step gives walking each course alone (courses of different lengths, doses, documented
    grades held and replaced)."""
    import random

    rng = random.Random(7)
    t0 = datetime(2026, 5, 1, 4, 0, tzinfo=timezone.utc)
    calendar, inputs = [], []
    for infusion, length in (("A", 1), ("B", 6), ("C", 11)):
        for day in range(length):
            calendar.append({"patient_id": "P", "infusion_id": infusion, "day": day,
                             "day_start_at": t0 + timedelta(days=day), "day_end_at": t0 + timedelta(days=day + 1)})
            doc = rng.choice([None, None, None, 0, 2])
            inputs.append({"patient_id": "P", "infusion_id": infusion, "day": day,
                           "max_temp_c": rng.choice([36.8, 38.6, None]), "hypotension_grade": rng.choice([None, 2]),
                           "o2_grade": rng.choice([None, 0, 1, 3]), "o2_support": rng.choice([None, True]),
                           "spo2_low": rng.choice([None, True]), "dose": rng.choice([None, False, True]),
                           "doc_max": doc, "doc_last": doc})
    course = grade_course(pl.DataFrame(calendar), pl.DataFrame(inputs, schema_overrides={
        "day": pl.Int32, "hypotension_grade": pl.Int32, "o2_grade": pl.Int32, "doc_max": pl.Int32,
        "doc_last": pl.Int32}), R).sort("infusion_id", "day")
    expected, state, previous = [], DayState(), None
    for row in course.iter_rows(named=True):
        if row["infusion_id"] != previous:
            state, previous = DayState(), row["infusion_id"]
        assert (row["state_prev_grade"], row["state_waiver"], row["state_held_grade"], row["state_held_day"]) == state
        organ = max(row["hypotension_grade"], row["hypoxia_grade"])
        grade, source, state = grade_step(row["day"], row["febrile"], organ, row["dose"], row["doc_max"],
                                          row["doc_last"], state, R)
        expected.append((grade, source))
    assert list(zip(course["grade"], course["grade_source"])) == expected
