"""HLH-94 (all five, CR 4): fever, splenomegaly, cytopenias in >= 2 lineages, hypertriglyceridemia
and/or hypofibrinogenemia, hemophagocytosis; thresholds other than fever as HLH-2004."""

from __future__ import annotations

import pytest

from criteria_helpers import Case

STEPS = ("derived/hlh_criteria_daily.py", "flags/windows_hlh_94.sql")


@pytest.fixture(scope="module")
def case():
    case = Case()
    for patient, hemophagocytosis in (("ALL_FIVE", 1.0), ("NO_MARROW", None), ("MARROW_NEGATIVE", 0.0)):
        case.infusion(patient)
        for day in (10, 11):
            case.vital(patient, "temperature", case.at(day, "06:00"), 38.5)
            case.lab(patient, "hemoglobin", case.at(day, "06:00"), 7.5)
            case.lab(patient, "anc", case.at(day, "06:00"), 0.4)
            case.lab(patient, "fibrinogen", case.at(day, "06:00"), 140)
        case.event(patient, "splenomegaly", case.at(9, "10:00"))
        if hemophagocytosis is not None:
            case.event(patient, "hemophagocytosis", case.at(10, "14:00"), hemophagocytosis)
    return case.build(*STEPS)


def test_all_five_required(case):
    windows = case.windows("hlh_94")
    assert [w["patient_id"] for w in windows] == ["ALL_FIVE"]
    (w,) = windows
    assert (w["onset_at"], w["onset_day"], w["end_day"], w["criteria_set"]) == (case.at(10, "14:00"), 10, 11, "hlh_94")
    assert len([e for e in w["evidence"] if e["rule"] != "hlh_94.all_required"]) == 6  # Hb and ANC both shown


def test_a_missing_item_is_unknown_not_absent(case):
    rows = {r["patient_id"]: r for r in case.rows(
        "SELECT patient_id, hlh_94_met, hlh_94_evaluable, hlh_94_met_count FROM derived.hlh_criteria_daily "
        "WHERE day = 10")}
    assert (rows["NO_MARROW"]["hlh_94_met"], rows["NO_MARROW"]["hlh_94_evaluable"]) == (False, False)
    assert (rows["MARROW_NEGATIVE"]["hlh_94_met"], rows["MARROW_NEGATIVE"]["hlh_94_evaluable"]) == (False, True)
    assert rows["NO_MARROW"]["hlh_94_met_count"] == 4
