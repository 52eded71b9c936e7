"""The oracle's reading of clinical-rules.md §3 at its boundaries, on a few hand-made results."""

from __future__ import annotations

from datetime import date

import pytest

from cartwatch.synth.oracle import Episode, Reading, Result, crs_facts, verdict
from cartwatch.synth.sites import Calendar

TZ = "America/Chicago"
CAL = Calendar.around(TZ, date(2026, 6, 10), -7, 40)
INFUSION = CAL.start(0) + 12 * 3600
GRADES = (0, 1, 2, 2, 0, 0)          # onset day 1, improvement and resolution day 4


def at(day: int, hour: float = 6) -> int:
    return int(CAL.start(day) + hour * 3600)


def episode(ferritin, grades=GRADES, fibrinogen=()) -> Episode:
    facts = crs_facts(grades, CAL, {})
    results = tuple(Result(t, v, 30.0, 400.0) for t, v in ferritin)
    labs = {k: () for k in ("ast", "alt", "anc", "platelets", "hemoglobin")}
    labs["fibrinogen"] = tuple(Result(t, v, 200.0, 400.0) for t, v in fibrinogen)
    return Episode(INFUSION, None, CAL, facts, results, labs, ())


def status(ferritin, **kw) -> str:
    from transforms.rules import load_rules
    return verdict(episode(ferritin, **kw), load_rules()).status


BEFORE = [(at(-1), 300), (at(2), 3000), (at(3), 4000), (at(5), 2500), (at(8), 1500)]


@pytest.mark.parametrize("value, expected", [(2700, "suspected"), (2699, "none")])
def test_rapid_rise_of_exactly_the_rate_counts(value, expected):
    # 1500 at 06:00, then 12 h later: (2700 - 1500) / 12 = 100 ng/mL/h; no re-rise (< 2 x 1500)
    assert status(BEFORE + [(at(16), 1500), (at(16, 18), value)]) == expected


@pytest.mark.parametrize("value, expected", [(800, "none"), (801, "suspected")])
def test_elevated_is_strictly_above_twice_uln(value, expected):
    # no CRS: timing holds from day 15; 800 is >= 2 x nadir 300 but not > 2 x ULN 400
    assert status([(at(1), 300), (at(10), 350), (at(17), value)], grades=(0,)) == expected


@pytest.mark.parametrize("hours_after, expected", [(48, "none"), (48.5, "suspected")])
def test_ferritin_window_includes_resolution_plus_lag(hours_after, expected):
    # resolution at the end of day 4 (00:00 day 5); a higher value at + 48 h is still the peak,
    # later it is a new high after the window closed (and improvement + 48 h has passed)
    resolved = CAL.start(5)
    rising = [(at(-1), 300), (at(2), 1200), (at(3), 2000), (at(4), 2600), (at(5), 3000), (at(6), 3400)]
    late = [(int(resolved + hours_after * 3600), 3500)]
    assert status(rising + late) == expected


def test_signal_during_crs_is_a_watch_and_fibrinogen_makes_criteria_met():
    crs_rise = [(at(-1), 300), (at(1), 900), (at(2), 3500)]          # 108 ng/mL/h during CRS
    assert status(crs_rise) == "watch"
    re_rise = crs_rise + [(at(8), 1200), (at(9), 2600)]              # >= 2 x nadir after improvement + 48 h
    assert status(re_rise) == "suspected"
    assert status(re_rise, fibrinogen=[(at(10, 5), 140)]) == "criteria_met"
    assert status(re_rise, fibrinogen=[(at(11, 7), 140)]) == "suspected"   # > 48 h after


def test_no_crs_before_day_15_is_only_a_watch():
    assert status([(at(1), 300), (at(10), 900)], grades=(0,)) == "watch"


def test_readings_differ_on_a_re_rise_inside_the_window():
    from transforms.rules import load_rules
    rules = load_rules()
    # improvement day 4 + 48 h = day 6 00:00, window closes day 7 00:00: a re-rise on day 6
    ep = episode([(at(-1), 300), (at(2), 3000), (at(3), 4000), (at(4, 3), 2000), (at(6), 4200)])
    inclusive = verdict(ep, rules, Reading(peak_includes_current=True))
    exclusive = verdict(ep, rules, Reading(peak_includes_current=False))
    assert (inclusive.status, exclusive.status) == ("none", "suspected")
