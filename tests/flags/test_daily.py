"""flags.daily (contract.md §5 `export flags`) and flags.windows (the union `export windows` reads)."""

from __future__ import annotations

import json

import pytest

from cartwatch.export import EXPORT_COLUMNS
from criteria_helpers import Case


@pytest.fixture(scope="module")
def case():
    case = Case()
    case.infusion("P1")
    case.lab("P1", "ferritin", case.at(-3), 300)                    # baseline: not a monitored day
    case.crs("P1", onset_day=1, peak_day=2, resolved_day=4)
    case.crs_day("P1", 1, grade=1)
    case.crs_day("P1", 2, grade=3, hypoxia_grade=3, source="documented")
    case.vital("P1", "temperature", case.at(1, "20:00"), 38.6)
    case.vital("P1", "temperature", case.at(2, "20:00"), 39.0)
    # day 3: ferritin above 10,000 in the CRS phase, grade 3 AST: CARTOX met (lung + liver)
    case.lab("P1", "ferritin", case.at(3, "06:00"), 12000)
    case.lab("P1", "ferritin", case.at(3, "18:00"), 15000)
    case.lab("P1", "ast", case.at(3, "06:00"), 250)
    case.lab("P1", "ldh", case.at(3, "06:00"), 600)
    case.lab("P1", "creatinine", case.at(3, "06:00"), 1.5)
    case.lab("P1", "platelets", case.at(3, "06:00"), 60)
    case.lab("P1", "crp", case.at(3, "06:00"), 80)
    # day 5: an event only; day 6: nothing; day 7: one lab
    case.event("P1", "splenomegaly", case.at(5, "10:00"))
    case.lab("P1", "ferritin", case.at(7, "06:00"), 9000)
    case.stand_in("derived.ferritin_trajectory", patient_id="P1", infusion_id="P1-I1",
                  observed_at=case.at(7, "06:00"), day=7, value=9000.0, signal="re_rise", re_rise=True,
                  rapid_rise=False, new_high=True, elevated=True)
    case.stand_in("derived.ferritin_trajectory", patient_id="P1", infusion_id="P1-I1",
                  observed_at=case.at(3, "06:00"), day=3, value=12000.0, signal=None, re_rise=False,
                  rapid_rise=False, new_high=False, elevated=True)
    case.stand_in("flags.astct_iec_hs_2023_daily", patient_id="P1", infusion_id="P1-I1", day=7,
                  status="watch")
    case.stand_in("flags.astct_iec_hs_2023_daily", patient_id="P1", infusion_id="P1-I1", day=7,
                  status="suspected")
    case.stand_in("flags.windows_astct_iec_hs_2023", patient_id="P1", infusion_id="P1-I1",
                  criteria_set="astct_iec_hs_2023", status="suspected", onset_at=case.at(7, "06:00"),
                  onset_day=7, late_onset=False, evidence=[], rules_version=case.rules.version)
    return case.build()


def daily(case):
    return {r["day"]: r for r in case.rows("SELECT * FROM flags.daily ORDER BY day")}


def test_exactly_the_contract_columns(case):
    cols = [d[0] for d in case.con.execute("SELECT * FROM flags.daily LIMIT 0").description]
    assert tuple(cols) == EXPORT_COLUMNS["flags"]
    cols = [d[0] for d in case.con.execute("SELECT * FROM flags.windows LIMIT 0").description]
    assert tuple(cols) == EXPORT_COLUMNS["windows"]


def test_one_row_per_post_infusion_day_with_data(case):
    assert list(daily(case)) == [1, 2, 3, 5, 7]


def test_crs_ferritin_and_scores(case):
    days = daily(case)
    assert (days[2]["crs_grade"], days[2]["crs_grade_source"]) == (3, "documented")
    assert (days[1]["crs_grade"], days[1]["crs_grade_source"]) == (1, "derived")
    assert days[5]["crs_grade"] is None
    assert days[3]["ferritin_max"] == 15000 and days[3]["ferritin_signal"] is None
    assert days[7]["ferritin_signal"] == "re_rise"
    assert days[3]["easix"] == pytest.approx(600 * 1.5 / 60)
    assert days[3]["m_easix"] == pytest.approx(600 * 8.0 / 60)
    assert days[3]["hscore_min"] <= days[3]["hscore_max"]
    assert (days[3]["hlh_2004_met"], days[3]["hlh_2004_evaluable"]) == (False, False)


def test_criteria_set_statuses_of_the_day(case):
    days = daily(case)
    assert [days[d]["cartox_2017"] for d in days] == [None, None, "met", "met", "met"]
    assert days[7]["astct_iec_hs_2023"] == "suspected"   # the strongest status of the day
    assert days[3]["astct_iec_hs_2023"] is None
    assert {days[d]["shah_2020"] for d in days} == {None}


def test_windows_is_the_union_of_every_set(case):
    rows = case.rows("SELECT criteria_set, status, onset_day, evidence FROM flags.windows")
    sets = [(r["criteria_set"], r["status"]) for r in rows]
    assert ("astct_iec_hs_2023", "suspected") in sets and ("cartox_2017", "met") in sets
    assert sets == sorted(sets, key=lambda s: s[0])                    # ordered by set per patient
    for r in rows:
        for item in json.loads(r["evidence"]):
            assert set(item) == {"rule", "analyte", "value", "unit", "at", "source"}


def test_the_real_engine_end_to_end():
    """The whole run order (CRS, ferritin and IEC-HS from the other half of the engine, no stand-ins)."""
    from cartwatch.build import build

    case = Case()
    case.infusion("P1")
    for d in range(0, 9):
        case.vital("P1", "temperature", case.at(d, "08:00"), 39.2 if 1 <= d <= 3 else 36.8)
        case.vital("P1", "sbp", case.at(d, "08:00"), 120)
        case.vital("P1", "spo2", case.at(d, "08:00"), 97)
    case.lab("P1", "ferritin", case.at(3, "06:00"), 14000)
    case.lab("P1", "ast", case.at(4, "06:00"), 300)                 # grade 3
    case.lab("P1", "creatinine", case.at(4, "06:00"), 7.5)          # grade 4
    build(case.con, case.rules, as_of=case.at(9), as_loaded=False, site_tz="America/New_York")
    episode = case.one("SELECT onset_day, ferritin_window_end_at FROM derived.crs_episodes")
    assert episode["onset_day"] == 1
    (window,) = case.windows("cartox_2017")
    assert (window["onset_day"], window["crs_onset_day"]) == (4, 1)
    days = daily(case)
    assert list(days) == list(range(0, 9))
    assert days[2]["crs_grade"] == 1 and days[2]["crs_grade_source"] == "derived"
    assert [days[d]["cartox_2017"] for d in (3, 4, 8)] == [None, "met", "met"]
