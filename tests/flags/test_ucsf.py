"""flags.windows_ucsf_masl_2020: UCSF MAS-L (Kennedy 2020, CR 4): ferritin rise >= 100 ng/mL/h
within 24 h, with fibrinogen < 150 mg/dL or LDH > 2 x ULN within ucsf.companion_window_hours."""

from __future__ import annotations

from datetime import timedelta

import pytest

from criteria_helpers import Case

STEP = "flags/windows_ucsf_masl_2020.sql"


@pytest.fixture(scope="module")
def case():
    case = Case()

    def rise(patient, later_value, hours=24, start_day=6):
        case.infusion(patient)
        case.lab(patient, "ferritin", case.at(start_day, "08:00"), 1000)
        later = case.at(start_day, "08:00") + timedelta(hours=hours)
        case.lab(patient, "ferritin", later, later_value)
        return later

    later = rise("EXACT_100", 3400)                                  # 2400 / 24 h = 100 ng/mL/h
    case.lab("EXACT_100", "fibrinogen", later, 149)
    later = rise("BELOW_100", 3399)                                  # 99.96 ng/mL/h
    case.lab("BELOW_100", "fibrinogen", later, 100)
    later = rise("GAP_25H", 9000, hours=25)                          # gap > 24 h: no rate
    case.lab("GAP_25H", "fibrinogen", later, 100)
    later = rise("FIB_150", 9000)                                    # fibrinogen exactly 150: not < 150
    case.lab("FIB_150", "fibrinogen", later, 150)
    later = rise("LDH_2X", 9000)                                     # LDH exactly 2 x 222: not > 2 x ULN
    case.lab("LDH_2X", "ldh", later, 444)
    later = rise("LDH_ABOVE", 9000)
    case.lab("LDH_ABOVE", "ldh", later - timedelta(hours=24), 444.5)  # 24 h before
    later = rise("COMPANION_FAR", 9000)
    case.lab("COMPANION_FAR", "fibrinogen", later + timedelta(hours=24, minutes=1), 90)
    # two consecutive met days then a gap: two windows
    later = rise("TWO_WINDOWS", 5000, hours=12, start_day=8)         # day 8, 20:00
    case.lab("TWO_WINDOWS", "fibrinogen", case.at(9, "07:00"), 120)  # within 24 h: met on day 9
    case.lab("TWO_WINDOWS", "ferritin", case.at(9, "18:00"), 6000)
    case.lab("TWO_WINDOWS", "ferritin", case.at(10, "07:00"), 9000)  # 3000 / 13 h; fibrinogen 24 h before
    case.lab("TWO_WINDOWS", "ferritin", case.at(20, "07:00"), 9000)
    case.lab("TWO_WINDOWS", "ferritin", case.at(20, "19:00"), 12000)
    case.lab("TWO_WINDOWS", "ldh", case.at(20, "19:00"), 900)
    return case.build(STEP)


def windows(case, patient):
    return [w for w in case.windows("ucsf_masl_2020") if w["patient_id"] == patient]


@pytest.mark.parametrize("patient, met", [
    ("EXACT_100", True), ("BELOW_100", False), ("GAP_25H", False), ("FIB_150", False),
    ("LDH_2X", False), ("LDH_ABOVE", True), ("COMPANION_FAR", False)])
def test_boundaries(case, patient, met):
    assert bool(windows(case, patient)) is met


def test_rate_exactly_100_and_its_evidence(case):
    (w,) = windows(case, "EXACT_100")
    assert (w["onset_at"], w["onset_day"], w["end_day"]) == (case.at(7, "08:00"), 7, 7)
    assert w["end_at"] == case.at(8, "00:00")
    assert [(e["rule"], e["value"]) for e in w["evidence"]] == [
        ("ucsf.rise_ng_ml_per_hour", 1000.0), ("ucsf.rise_ng_ml_per_hour", 3400.0),
        ("ucsf.fibrinogen_lt_mg_dl", 149.0)]


def test_the_criteria_hold_from_the_later_result_and_consecutive_days_form_one_window(case):
    first, second = windows(case, "TWO_WINDOWS")
    assert first["onset_at"] == case.at(9, "07:00")          # the companion came after the rise
    assert (first["onset_day"], first["end_day"]) == (9, 10)
    assert (second["onset_day"], second["end_day"]) == (20, 20)


def test_window_still_open_has_no_end():
    case = Case()
    case.infusion("P1")
    case.lab("P1", "ferritin", case.at(5, "06:00"), 500)
    case.lab("P1", "ferritin", case.at(5, "10:00"), 1000)
    case.lab("P1", "fibrinogen", case.at(5, "10:00"), 90)
    case.build(STEP, as_of=case.at(5, "12:00"))
    (w,) = case.windows("ucsf_masl_2020")
    assert (w["end_day"], w["end_at"]) == (5, None)
