"""derived.crs_episodes: onset, peak, improvement, re-escalation, resolution and the ferritin
CRS-phase window end of each infusion (clinical-rules.md §2 and 3)."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from engine_helpers import Scenario
from transforms.crs_milestones import crs_milestones

START = "2026-05-01"


def on(day: int, hhmm: str = "08:00") -> str:
    return f"{date.fromisoformat(START) + timedelta(days=day)} {hhmm}"


def course(s: Scenario, pid: str, days: dict[int, list[tuple[str, float | str]]]) -> None:
    s.infusion(pid, on(0, "10:00"), f"{pid}-I")
    for day, readings in days.items():
        for i, (kind, value) in enumerate(readings):
            s.vital(pid, kind, on(day, f"08:{i:02d}"), value)


FEVER, NORMAL = ("temperature", 38.6), ("temperature", 37.0)
HYPOTENSION, HIGH_FLOW = ("sbp", 85), ("o2_device", "high_flow")


@pytest.fixture(scope="module")
def episodes():
    s = Scenario()
    # onset day 2, peak 3 (first day at the maximum, held on day 4), improvement day 5, resolved day 6
    course(s, "CLASSIC", {1: [NORMAL], 2: [FEVER], 3: [FEVER, HIGH_FLOW], 4: [FEVER, HIGH_FLOW],
                          5: [NORMAL, HYPOTENSION], 6: [NORMAL], 7: [NORMAL]})
    # improvement day 4, re-escalation day 5 (a higher grade than the day before)
    course(s, "REGRADE", {2: [FEVER, HYPOTENSION], 3: [FEVER, HYPOTENSION], 4: [FEVER], 5: [FEVER, HIGH_FLOW],
                          6: [NORMAL], 7: [NORMAL]})
    # improvement day 4, afebrile day 5 at the same grade, febrile day 6: re-escalation by fever
    course(s, "REFEVER", {3: [FEVER, HIGH_FLOW], 4: [NORMAL, ("o2_device", "nasal_cannula")],
                          5: [NORMAL, ("o2_device", "nasal_cannula")], 6: [FEVER], 7: [NORMAL]})
    course(s, "NOCRS", {1: [NORMAL], 5: [HYPOTENSION]})
    # resolution day 8 is not over at as_of: unresolved, improvement known
    course(s, "OPEN", {7: [FEVER], 8: [NORMAL]})
    s.build(on(8, "20:00"))
    return s


def episode(s: Scenario, pid: str) -> dict:
    return s.one("SELECT * FROM derived.crs_episodes WHERE patient_id = ?", [pid])


def test_onset_peak_improvement_resolution_and_ferritin_window(episodes):
    e = episode(episodes, "CLASSIC")
    assert (e["onset_day"], e["peak_grade"], e["peak_day"], e["improvement_day"], e["resolved_day"]) == (2, 3, 3, 5, 6)
    assert e["onset_at"] == episodes.t(on(2, "00:00")) and e["peak_at"] == episodes.t(on(3, "00:00"))
    assert e["improvement_at"] == episodes.t(on(5, "00:00"))        # 00:00 of the first day below the peak
    assert e["resolved_at"] == episodes.t(on(7, "00:00"))           # end of the first full grade-0 day
    assert e["ferritin_window_end_at"] == e["resolved_at"] + timedelta(hours=48)
    assert (e["duration_days"], e["had_crs"], e["reescalated_day"]) == (4, True, None)


@pytest.mark.parametrize("pid, improvement_day, reescalated_day", [("REGRADE", 4, 5), ("REFEVER", 4, 6)])
def test_reescalation_after_improvement(episodes, pid, improvement_day, reescalated_day):
    e = episode(episodes, pid)
    assert (e["improvement_day"], e["reescalated_day"]) == (improvement_day, reescalated_day)
    assert e["reescalated_at"] == episodes.t(on(reescalated_day, "00:00"))


def test_no_crs_gives_an_empty_episode_row(episodes):
    e = episode(episodes, "NOCRS")
    assert e["had_crs"] is False
    assert all(e[k] is None for k in ("onset_day", "peak_day", "improvement_at", "resolved_at",
                                      "ferritin_window_end_at", "duration_days"))


def test_a_grade_0_day_not_yet_over_does_not_resolve(episodes):
    e = episode(episodes, "OPEN")
    assert (e["onset_day"], e["improvement_day"], e["resolved_day"], e["ferritin_window_end_at"]) == (7, 8, None, None)


def _days(grades: list[int], cutoff_day: int | None = None) -> pl.DataFrame:
    from datetime import datetime, timezone
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    n = len(grades)
    return pl.DataFrame({
        "k": "x", "day": list(range(n)), "grade": grades, "febrile": [g > 0 for g in grades],
        "day_start_at": [start + timedelta(days=d) for d in range(n)],
        "day_end_at": [start + timedelta(days=d + 1) for d in range(n)],
        "cutoff": start + timedelta(days=cutoff_day if cutoff_day is not None else n),
    })


@pytest.mark.parametrize("grades, resolution_days, expected", [
    ([0, 1, 2, 2, 1, 0, 0], 1, (1, 2, 2, 4, 5)),
    ([0, 1, 2, 2, 1, 0, 0], 2, (1, 2, 2, 4, 6)),      # two clear days asked for
    ([0, 1, 0, 2, 0], 1, (1, 1, 1, 2, 2)),            # only the first resolution counts
    ([1, 1, 1], 1, (0, 1, 0, None, None)),
])
def test_milestones_on_a_bare_course(grades, resolution_days, expected):
    m = crs_milestones(_days(grades), ["k"], resolution_days).row(0, named=True)
    assert (m["onset_day"], m["peak_grade"], m["peak_day"], m["improvement_day"], m["resolved_day"]) == expected
