"""flags.windows_shah_2020: Shah et al. 2020 (CD22 CAR-T) HLH-like toxicity (CR 4)."""

from __future__ import annotations

import pytest

from criteria_helpers import Case

STEPS = ("derived/organ_toxicity_daily.sql", "flags/windows_shah_2020.sql")


@pytest.fixture(scope="module")
def case():
    case = Case()
    for patient, ferritin in (("EXACT", 100000), ("ABOVE", 100000.5)):
        case.infusion(patient)                       # no CRS: Shah does not need a CRS phase
        case.lab(patient, "ferritin", case.at(12, "06:00"), ferritin)
        case.lab(patient, "bilirubin_total", case.at(13, "07:00"), 3.7)    # > 3 x 1.2: grade 3
        case.event(patient, "hemophagocytosis", case.at(14, "11:00"))
    # one item only (creatinine grade 3 on baseline)
    case.infusion("ONE_ITEM")
    case.lab("ONE_ITEM", "ferritin", case.at(12), 150000)
    case.lab("ONE_ITEM", "creatinine", case.at(-1), 0.4)
    case.lab("ONE_ITEM", "creatinine", case.at(12), 1.3)
    # pulmonary edema proxied by CRS hypoxia grade 4 (positive pressure), items before the ferritin
    case.infusion("LATE")
    case.crs_day("LATE", 3, grade=4, hypoxia_grade=4)
    case.lab("LATE", "alt", case.at(3), 1200)                           # > 20 x 55: grade 4
    case.lab("LATE", "ferritin", case.at(30, "09:00"), 120000)
    return case.build(*STEPS)


def test_ferritin_exactly_100000_is_not_met(case):
    assert [w["patient_id"] for w in case.windows("shah_2020")] == ["ABOVE", "LATE"]


def test_onset_and_evidence(case):
    above, late = case.windows("shah_2020")
    assert above["onset_at"] == case.at(14, "11:00") and above["onset_day"] == 14
    assert [e["analyte"] for e in above["evidence"]] == ["ferritin", "bilirubin_total", "hemophagocytosis"]
    assert above["crs_onset_day"] is None and above["criteria_set"] == "shah_2020"
    # onset day 30 >= iec_hs.late_onset_day (29): late
    assert (late["onset_day"], late["late_onset"]) == (30, True)
    # the hypoxia item holds from the start of its day, before the ALT drawn that morning
    assert [e["analyte"] for e in late["evidence"]] == ["ferritin", "hypoxia_grade", "alt"]
