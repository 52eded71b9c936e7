"""derived.organ_toxicity_daily: CTCAE v5 grades of AST/ALT, bilirubin and creatinine (CR 4).

One case with a patient per boundary; ULNs are the rules-file defaults (AST 40, ALT 55,
bilirubin 1.2, creatinine 1.2) unless the result carries its own range.
"""

from __future__ import annotations

import pytest

from criteria_helpers import Case

STEP = "derived/organ_toxicity_daily.sql"

# patient -> (analyte, value, extra lab kwargs, expected grade); every bound is strict (">")
BOUNDARIES = {
    "AST_5X": ("ast", 200, {}, 0),              # exactly 5 x 40: not grade 3
    "AST_ABOVE_5X": ("ast", 200.01, {}, 3),
    "AST_20X": ("ast", 800, {}, 3),             # exactly 20 x: still grade 3
    "AST_ABOVE_20X": ("ast", 800.01, {}, 4),
    "ALT_5X": ("alt", 275, {}, 0),              # 5 x 55
    "ALT_ABOVE_5X": ("alt", 275.5, {}, 3),
    "BILI_3X": ("bilirubin_total", 3.6, {}, 0),  # 3 x 1.2; 3.6 / 1.2 is 3.0000000000000004 in floats
    "BILI_ABOVE_3X": ("bilirubin_total", 3.61, {}, 3),
    "BILI_10X": ("bilirubin_total", 12.0, {}, 3),
    "BILI_ABOVE_10X": ("bilirubin_total", 12.01, {}, 4),
    "CREA_3X": ("creatinine", 3.6, {}, 0),
    "CREA_ABOVE_3X": ("creatinine", 3.61, {}, 3),
    "CREA_6X": ("creatinine", 7.2, {}, 3),
    "CREA_ABOVE_6X": ("creatinine", 7.21, {}, 4),
    "OWN_RANGE": ("ast", 200.01, {"ref_low": 10, "ref_high": 50}, 0),  # the result's own ULN wins
}


@pytest.fixture(scope="module")
def boundaries():
    case = Case()
    for patient, (analyte, value, extra, _) in BOUNDARIES.items():
        case.infusion(patient)
        case.lab(patient, analyte, case.at(3), value, **extra)
    return case.build(STEP)


@pytest.mark.parametrize("patient", BOUNDARIES)
def test_ctcae_boundaries(boundaries, patient):
    analyte, value, _, grade = BOUNDARIES[patient]
    row = boundaries.one("SELECT * FROM derived.organ_toxicity_daily WHERE patient_id = ?", [patient])
    assert (row["analyte"], row["value"], row["grade"], row["day"]) == (analyte, value, grade, 3)
    assert row["organ"] == ("kidney" if analyte == "creatinine" else "liver")


def test_creatinine_grade_3_on_baseline_even_when_within_3_x_uln():
    case = Case()
    case.infusion("P1")
    case.lab("P1", "creatinine", case.at(-2), 0.5)      # baseline
    case.lab("P1", "creatinine", case.at(4), 1.5)       # 3 x baseline exactly: not yet
    case.lab("P1", "creatinine", case.at(5), 1.51)      # > 3 x baseline, 1.26 x ULN
    case.lab("P2", "creatinine", case.at(5), 1.51)      # same value, no baseline: ULN only
    case.infusion("P2")
    case.build(STEP)
    grades = case.rows("SELECT patient_id, day, grade, baseline FROM derived.organ_toxicity_daily "
                       "WHERE day >= 0 ORDER BY patient_id, day")
    assert grades == [
        {"patient_id": "P1", "day": 4, "grade": 0, "baseline": 0.5},
        {"patient_id": "P1", "day": 5, "grade": 3, "baseline": 0.5},
        {"patient_id": "P2", "day": 5, "grade": 0, "baseline": None},
    ]


def test_day_grade_is_the_worst_result_and_grade_at_is_when_it_began():
    case = Case()
    case.infusion("P1")
    case.lab("P1", "ast", case.at(6, "06:00"), 100)
    case.lab("P1", "ast", case.at(6, "12:00"), 900)     # grade 4
    case.lab("P1", "ast", case.at(6, "18:00"), 850)     # grade 4 again, lower
    case.lab("P1", "alt", case.at(6, "06:00"), 60)
    case.build(STEP)
    rows = case.rows("SELECT analyte, grade, value, observed_at, grade_at, results "
                     "FROM derived.organ_toxicity_daily ORDER BY analyte")
    assert rows[0]["analyte"] == "alt" and rows[0]["grade"] == 0
    ast = rows[1]
    assert (ast["grade"], ast["value"], ast["results"]) == (4, 900.0, 3)
    assert ast["observed_at"] == case.at(6, "12:00") == ast["grade_at"]
