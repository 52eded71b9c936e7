"""flags.windows_cartox_2017: CARTOX / carHLH (Neelapu 2018, CR 4).

Every patient has CRS from day 1 (onset 00:00) resolving at the end of day 4, so the CRS phase
for ferritin runs to 00:00 of day 5 + 48 h (iec_hs.ferritin_lag_hours) = 00:00 of day 7.
"""

from __future__ import annotations

import pytest

from criteria_helpers import Case

STEPS = ("derived/organ_toxicity_daily.sql", "flags/windows_cartox_2017.sql")


def grade3_ast(case, patient, day, hhmm="08:00"):
    case.lab(patient, "ast", case.at(day, hhmm), 201)          # > 5 x 40


def grade4_creatinine(case, patient, day, hhmm="09:00"):
    case.lab(patient, "creatinine", case.at(day, hhmm), 7.3)   # > 6 x 1.2


@pytest.fixture(scope="module")
def case():
    case = Case()
    scenarios = {
        # ferritin exactly at the cut-off: "> 10,000" is strict
        "EXACT": lambda p: (case.lab(p, "ferritin", case.at(3), 10000),
                            grade3_ast(case, p, 3), grade4_creatinine(case, p, 3)),
        "MET": lambda p: (case.lab(p, "ferritin", case.at(3, "06:00"), 10000.5),
                          grade3_ast(case, p, 4, "07:00"), grade4_creatinine(case, p, 5, "10:00")),
        # above the cut-off only after the CRS phase closed (00:00 day 7)
        "LATE_FERRITIN": lambda p: (case.lab(p, "ferritin", case.at(7, "06:00"), 25000),
                                    grade3_ast(case, p, 3), grade4_creatinine(case, p, 3)),
        # one item only
        "ONE_ITEM": lambda p: (case.lab(p, "ferritin", case.at(3), 30000), grade3_ast(case, p, 3)),
        # lung (hypoxia grade 3 in crs_daily) and hemophagocytosis
        "LUNG_HLH": lambda p: (case.lab(p, "ferritin", case.at(2, "06:00"), 12000),
                               case.crs_day(p, 2, grade=3, hypoxia_grade=3),
                               case.event(p, "hemophagocytosis", case.at(9, "15:00"))),
        # hypoxia grade 2 (low-flow) is not grade >= 3 lung toxicity
        "LOW_FLOW": lambda p: (case.lab(p, "ferritin", case.at(2), 12000),
                               case.crs_day(p, 2, grade=2, hypoxia_grade=2), grade3_ast(case, p, 3)),
        # an organ item before CRS onset does not count ("subsequently")
        "BEFORE_CRS": lambda p: (case.lab(p, "ferritin", case.at(2), 12000),
                                 grade3_ast(case, p, 0, "20:00"), grade4_creatinine(case, p, 3)),
    }
    for patient, make in scenarios.items():
        case.infusion(patient)
        case.crs(patient, onset_day=1, peak_day=2, resolved_day=4)
        make(patient)
    # no CRS at all: no CRS phase, never met
    case.infusion("NO_CRS")
    case.lab("NO_CRS", "ferritin", case.at(3), 50000)
    grade3_ast(case, "NO_CRS", 3)
    grade4_creatinine(case, "NO_CRS", 3)
    return case.build(*STEPS)


def met_patients(case):
    return [w["patient_id"] for w in case.windows("cartox_2017")]


def test_who_meets_cartox(case):
    assert met_patients(case) == ["LUNG_HLH", "MET"]


def test_ferritin_exactly_10000_is_not_met(case):
    assert "EXACT" not in met_patients(case)


def test_onset_is_the_moment_the_second_item_began(case):
    row = next(w for w in case.windows("cartox_2017") if w["patient_id"] == "MET")
    assert row["onset_at"] == case.at(5, "10:00") and row["onset_day"] == 5
    assert (row["status"], row["end_at"], row["end_day"], row["late_onset"]) == ("met", None, None, False)
    assert (row["crs_onset_day"], row["crs_peak_day"], row["crs_resolved_day"]) == (1, 2, 4)
    assert [(e["rule"], e["analyte"], e["value"]) for e in row["evidence"]] == [
        ("cartox.ferritin_peak_gt", "ferritin", 10000.5),
        ("cartox.organ_grade_min", "ast", 201.0),
        ("cartox.organ_grade_min", "creatinine", 7.3),
    ]
    first = row["evidence"][0]
    assert (first["unit"], first["at"]) == ("ng/mL", "2026-03-05T11:00:00+00:00")   # 06:00 New York
    assert first["source"].startswith("case.csv:")


def test_lung_item_is_hypoxia_grade_3_and_hemophagocytosis_counts(case):
    row = next(w for w in case.windows("cartox_2017") if w["patient_id"] == "LUNG_HLH")
    assert row["onset_at"] == case.at(9, "15:00")
    assert [e["analyte"] for e in row["evidence"]] == ["ferritin", "hypoxia_grade", "hemophagocytosis"]


def test_windows_have_exactly_the_contract_columns(case):
    cols = [r[0] for r in case.con.execute("SELECT * FROM flags.windows_cartox_2017 LIMIT 0").description]
    assert cols == ["patient_id", "infusion_id", "criteria_set", "status", "onset_at", "onset_day",
                    "end_at", "end_day", "crs_onset_day", "crs_peak_day", "crs_resolved_day",
                    "late_onset", "evidence", "rules_version"]


def test_open_crs_phase_counts_ferritin_until_resolution_is_known():
    case = Case()
    case.infusion("P1")
    case.crs("P1", onset_day=1, peak_day=2, resolved_day=None)   # not resolved yet
    case.lab("P1", "ferritin", case.at(12), 15000)
    grade3_ast(case, "P1", 12)
    grade4_creatinine(case, "P1", 12)
    case.build(*STEPS)
    assert met_patients(case) == ["P1"]
