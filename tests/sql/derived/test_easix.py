"""derived.easix_daily: EASIX and m-EASIX per day from the day's worst values (Luft 2017, CR 4)."""

from __future__ import annotations

import pytest

from criteria_helpers import Case
from transforms.easix_units import easix_unit_params

STEP = "derived/easix_daily.sql"


def test_formula_units_come_from_the_units_module(rules):
    factors = easix_unit_params(rules)
    # canonical units are already the formula's, except CRP (mg/L -> mg/dL)
    assert factors == {"easix_unit__ldh": 1.0, "easix_unit__creatinine": 1.0,
                       "easix_unit__platelets": 1.0, "easix_unit__crp": pytest.approx(0.1)}


@pytest.fixture(scope="module")
def case():
    case = Case()
    case.infusion("P1")
    # day 3: one draw
    case.lab("P1", "ldh", case.at(3), 300)
    case.lab("P1", "creatinine", case.at(3), 1.2)
    case.lab("P1", "platelets", case.at(3), 90)
    case.lab("P1", "crp", case.at(3), 45)                # mg/L: 4.5 mg/dL
    # day 4: two draws, the worst of each is used (highest LDH/creatinine/CRP, lowest platelets)
    case.lab("P1", "ldh", case.at(4, "06:00"), 400)
    case.lab("P1", "ldh", case.at(4, "18:00"), 500)
    case.lab("P1", "creatinine", case.at(4, "06:00"), 2.0)
    case.lab("P1", "creatinine", case.at(4, "18:00"), 1.5)
    case.lab("P1", "platelets", case.at(4, "06:00"), 50)
    case.lab("P1", "platelets", case.at(4, "18:00"), 40)
    case.lab("P1", "crp", case.at(4, "06:00"), 100)
    # day 5: no creatinine (no EASIX), CRP known (m-EASIX)
    case.lab("P1", "ldh", case.at(5), 250)
    case.lab("P1", "platelets", case.at(5), 25)
    case.lab("P1", "crp", case.at(5), 20)
    # day 6: platelets 0 (no score rather than a division by zero)
    case.lab("P1", "ldh", case.at(6), 250)
    case.lab("P1", "creatinine", case.at(6), 1.0)
    case.lab("P1", "platelets", case.at(6), 0)
    return case.build(STEP)


def day(case, d):
    return case.one("SELECT * FROM derived.easix_daily WHERE day = ?", [d])


def test_one_draw(case):
    row = day(case, 3)
    assert row["easix"] == pytest.approx(300 * 1.2 / 90)
    assert row["crp_mg_dl"] == pytest.approx(4.5)
    assert row["m_easix"] == pytest.approx(300 * 4.5 / 90)


def test_worst_of_the_day(case):
    row = day(case, 4)
    assert (row["ldh_u_l"], row["creatinine_mg_dl"], row["platelets_10e9_l"]) == (500, 2.0, 40)
    assert row["easix"] == pytest.approx(500 * 2.0 / 40)
    assert row["m_easix"] == pytest.approx(500 * 10.0 / 40)
    assert row["platelets_at"] == case.at(4, "18:00") and row["creatinine_at"] == case.at(4, "06:00")


def test_missing_value_and_zero_platelets_give_no_score(case):
    assert day(case, 5)["easix"] is None
    assert day(case, 5)["m_easix"] == pytest.approx(250 * 2.0 / 25)
    assert day(case, 6)["easix"] is None


def test_days_without_any_component_have_no_row(case):
    assert [r["day"] for r in case.rows("SELECT day FROM derived.easix_daily ORDER BY day")] == [3, 4, 5, 6]
