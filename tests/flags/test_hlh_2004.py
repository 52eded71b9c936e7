"""HLH-2004 (5 of 8, CR 4): derived.hlh_criteria_daily and flags.windows_hlh_2004.

Met = at least 5 criteria met; evaluable = enough criteria known to decide. NK-cell activity is in
no feed, so it is always unknown. Every case is one day (day 8) of the day's worst values.
"""

from __future__ import annotations

import pytest

from criteria_helpers import Case

STEPS = ("derived/hlh_criteria_daily.py", "flags/windows_hlh_2004.sql")
D = 8


def labs(case, patient, **values):
    for analyte, value in values.items():
        if analyte == "temperature":
            case.vital(patient, "temperature", case.at(D, "06:00"), value)
        else:
            case.lab(patient, analyte, case.at(D, "06:00"), value)


@pytest.fixture(scope="module")
def case():
    case = Case()
    for p in ("FIVE_AT_BOUNDS", "UNDECIDED", "DECIDED_NOT_MET", "WORST_OF_DAY", "EVENTS"):
        case.infusion(p)
    # every threshold exactly at its bound: fever >= 38.5, ferritin >= 500, Hb < 9 and platelets
    # < 100 (8.99, 99.9), fibrinogen <= 150, sCD25 >= 2400
    labs(case, "FIVE_AT_BOUNDS", temperature=38.5, ferritin=500, hemoglobin=8.99, platelets=99.9,
         fibrinogen=150, scd25=2400)
    # 2 met (cytopenias, triglycerides >= 265), 3 known not met, 3 unknown: 5 still reachable
    labs(case, "UNDECIDED", temperature=38.49, ferritin=499.9, hemoglobin=8, anc=0.5,
         triglycerides=265, scd25=2399)
    # nothing met, 6 known: 5 out of reach. Hb 9, platelets 100, ANC 1.0 are not below their cut-offs
    labs(case, "DECIDED_NOT_MET", temperature=38.4, ferritin=499, hemoglobin=9, platelets=100, anc=1.0,
         triglycerides=264, fibrinogen=151, scd25=2399)
    case.event("DECIDED_NOT_MET", "splenomegaly", case.at(D, "09:00"), 0.0)
    # the day's worst: ferritin 400 then 800, temperature 37 then 39; one lineage low, 2 unknown
    case.lab("WORST_OF_DAY", "ferritin", case.at(D, "06:00"), 400)
    case.lab("WORST_OF_DAY", "ferritin", case.at(D, "18:00"), 800)
    case.vital("WORST_OF_DAY", "temperature", case.at(D, "07:00"), 37.0)
    case.vital("WORST_OF_DAY", "temperature", case.at(D, "16:00"), 39.0)
    case.lab("WORST_OF_DAY", "platelets", case.at(D, "06:00"), 20)
    # findings documented earlier in the episode count by the end of the day
    labs(case, "EVENTS", temperature=39.0, ferritin=3000, triglycerides=400)
    case.event("EVENTS", "splenomegaly", case.at(2, "10:00"))
    case.event("EVENTS", "hemophagocytosis", case.at(D, "20:00"))
    return case.build(*STEPS)


def day_row(case, patient):
    return case.one("SELECT * FROM derived.hlh_criteria_daily WHERE patient_id = ? AND day = ?", [patient, D])


@pytest.mark.parametrize("patient, met, known, is_met, evaluable", [
    ("FIVE_AT_BOUNDS", 5, 5, True, True),
    ("UNDECIDED", 2, 5, False, False),
    ("DECIDED_NOT_MET", 0, 6, False, True),
    ("WORST_OF_DAY", 2, 2, False, False),   # one low lineage of three: cytopenias still unknown
    ("EVENTS", 5, 5, True, True),
])
def test_met_and_evaluable(case, patient, met, known, is_met, evaluable):
    row = day_row(case, patient)
    assert (row["hlh_2004_met_count"], row["hlh_2004_evaluable_count"]) == (met, known)
    assert (row["hlh_2004_met"], row["hlh_2004_evaluable"]) == (is_met, evaluable)


def test_day_worst_values(case):
    row = day_row(case, "WORST_OF_DAY")
    assert (row["ferritin_max"], row["temperature_max"], row["platelets_min"]) == (800, 39.0, 20)


def test_met_at_is_when_the_fifth_criterion_began(case):
    assert day_row(case, "FIVE_AT_BOUNDS")["hlh_2004_met_at"] == case.at(D, "06:00")
    # splenomegaly from day 2 holds from the day's start; hemophagocytosis at 20:00 is the fifth
    assert day_row(case, "EVENTS")["hlh_2004_met_at"] == case.at(D, "20:00")


def test_windows_report_met_and_evaluable_counts(case):
    windows = case.windows("hlh_2004")
    assert [w["patient_id"] for w in windows] == ["EVENTS", "FIVE_AT_BOUNDS"]
    events = windows[0]
    assert (events["onset_at"], events["onset_day"], events["end_day"]) == (case.at(D, "20:00"), D, D)
    assert events["end_at"] == case.at(D + 1, "00:00")
    counts = {e["analyte"]: e["value"] for e in events["evidence"] if e["rule"] == "hlh_2004.criteria_required"}
    assert counts == {"criteria_met": 5, "criteria_evaluable": 5}
    items = [e["rule"] for e in events["evidence"] if e["rule"] != "hlh_2004.criteria_required"]
    assert items == ["hlh_2004.fever_c", "hlh_2004.splenomegaly", "hlh_2004.triglycerides_ge_mg_dl",
                     "hlh_2004.hemophagocytosis", "hlh_2004.ferritin_ge"]


def test_each_item_state_is_stored_for_the_explanation(case):
    # UNDECIDED: fever 38.49 and ferritin 499.9 below their cut-offs, sCD25 2399 too; splenomegaly,
    # hemophagocytosis and NK activity have no data; Hb 8 and ANC 0.5 make two low lineages
    assert day_row(case, "UNDECIDED")["hlh_2004_items"] == {
        "fever": "not_met", "splenomegaly": "unknown", "cytopenias": "met", "triglycerides_or_fibrinogen": "met",
        "hemophagocytosis": "unknown", "nk_activity": "unknown", "ferritin": "not_met", "scd25": "not_met"}
    # one low lineage of three with two unknown: the cytopenia item itself cannot be decided
    worst = day_row(case, "WORST_OF_DAY")
    assert worst["hlh_2004_items"]["cytopenias"] == "unknown"
    assert worst["hlh_94_items"] == {"fever": "met", "splenomegaly": "unknown", "cytopenias": "unknown",
                                     "triglycerides_or_fibrinogen": "unknown", "hemophagocytosis": "unknown"}
