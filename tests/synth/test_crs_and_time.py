"""The vitals and documented grades reproduce the designed CRS course; some courses cross a DST change."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime


from cartwatch.synth.units import O2_DEVICES, VITAL_KINDS
from tests.synth.sample_files import read_rows

KIND = {k: i for i, k in enumerate(VITAL_KINDS)}


def derived_grades(ep, events, rules) -> dict[int, int]:
    """ASTCT 2019 from the vitals alone, day by day: fever opens an episode; hypotension and
    oxygen support grade it until a day without any of them."""
    v, days = ep.vitals, ep.cal.day_of(ep.vitals["t"])
    pressors = defaultdict(int)
    for at, kind, value in events:
        if kind == "vasopressor":
            pressors[int(ep.cal.day_of(at))] = max(pressors[int(ep.cal.day_of(at))], int(value))
    grades, open_episode = {}, False
    for day in range(0, ep.course.last_day + 1):
        on_day = days == day
        values = {k: v["value"][on_day & (v["kind"] == i)] for k, i in KIND.items()}
        fever = bool((values["temperature"] >= rules.value("crs.fever_c")).any())
        low_bp = bool((values["sbp"] < rules.value("crs.hypotension_sbp_lt_mmhg")).any()
                      or (values["map"] < rules.value("crs.hypotension_map_lt_mmhg")).any())
        pressure = (4 if pressors[day] >= rules.value("crs.grade4_min_vasopressors") else 3 if pressors[day]
                    else 2 if low_bp else 0)
        devices = [rules.o2_devices[O2_DEVICES[int(d)]] for d in values["o2_device"]]
        if (values["o2_flow"] > rules.value("crs.low_flow_max_l_min")).any():
            devices.append(3)
        support = max([pressure, *devices])
        open_episode = (open_episode or fever) and (fever or support > 0)
        grades[day] = max(1 if fever else 0, support) if open_episode else 0
    return grades


def test_vitals_reproduce_the_designed_grades(cohort, rules):
    checked = 0
    for sim in cohort:
        for ep in sim.episodes:
            if not ep.course.vitals:
                continue
            derived = derived_grades(ep, [e for e in sim.events if ep.cal.day_of(e[0]) >= 0], rules)
            designed = {d: ep.course.grade(d) for d in derived}
            assert derived == designed, ep.infusion_id
            checked += 1
    assert checked >= 25


def test_temperatures_keep_clear_of_the_fever_threshold(cohort, rules):
    fever = rules.value("crs.fever_c")
    for sim in cohort:
        temps = sim.vitals["value"][sim.vitals["kind"] == KIND["temperature"]]
        assert not ((temps > fever - 0.25) & (temps < fever + 0.15)).any(), sim.patient.patient_id


def test_documented_grades_are_the_designed_ones(cohort):
    documented = [s for s in cohort if any(ep.course.documented for ep in s.episodes)]
    assert any(not ep.course.vitals for s in documented for ep in s.episodes)
    for sim in documented:
        ep = sim.episodes[0]
        grades = {int(ep.cal.day_of(at)): int(v) for at, kind, v in sim.events if kind == "crs_grade"}
        assert grades and all(ep.course.grade(d) == g for d, g in grades.items())
        assert grades[max(grades)] == 0   # the last assessment closes the course


def _offsets(rows, column):
    by_patient = defaultdict(set)
    for r in rows:
        at = datetime.fromisoformat(r[column]) if r[column][:4].isdigit() else None
        if at is not None and at.tzinfo is not None:
            by_patient[r["patient_id"]].add(at.utcoffset())
    return by_patient


def test_some_courses_cross_a_clock_change(sample):
    truth, folder = sample
    offsets = _offsets(read_rows(folder / "vitals.csv"), "measured_at")
    crossing = {p for p, seen in offsets.items() if len(seen) > 1}
    zones = {e.site_timezone for e in truth.episodes if e.patient_id in crossing}
    assert len(zones) >= 2, crossing


def test_schedules_keep_local_clock_times_across_the_change(sample):
    """Rounds and visits stay at their local clock hours after the clocks go back (their UTC hour
    moves), and never fall in 01:00-02:59, the hour a naive time could not name."""
    _, folder = sample
    rows = read_rows(folder / "vitals.csv")
    crossing = {p for p, seen in _offsets(rows, "measured_at").items() if len(seen) > 1}
    rounds_and_visits = {0, 4, 6, 8, 9, 10, 11, 12, 16, 18, 20}
    assert crossing
    for patient in crossing:
        hours = {datetime.fromisoformat(r["measured_at"]).hour for r in rows if r["patient_id"] == patient}
        assert hours <= rounds_and_visits, (patient, hours - rounds_and_visits)
