"""Censored results judged by what they prove (clinical-rules.md §1, Censored values): golden cases at
each threshold of each criteria set, CTCAE and EASIX, the threshold read from the rules file.

`>T` against "> T" is proven, `>=T` is not (it may be exactly T); `<T` against "< T" is proven,
`<T+50` is not. Unknown is "not proven": no window, no grade, an HScore range, an HLH-2004 item
that is not evaluable.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from criteria_helpers import CRITERIA_STEPS, Case
from transforms.rules import load_rules
from transforms.units import UnitConverter

RULES = load_rules()
SHAH = RULES.value("shah.ferritin_peak_gt")
CARTOX = RULES.value("cartox.ferritin_peak_gt")
UCSF_FIB = RULES.value("ucsf.fibrinogen_lt_mg_dl")
UCSF_RATE = RULES.value("ucsf.rise_ng_ml_per_hour")
UCSF_HOURS = RULES.value("ucsf.rise_window_hours")
UCSF_LDH = RULES.value("ucsf.ldh_x_uln") * RULES.analyte("ldh").default_high
HLH_FIB = RULES.value("hlh_2004.fibrinogen_le_mg_dl")
HLH_TG = RULES.value("hlh_2004.triglycerides_ge_mg_dl")
HLH_FERRITIN = RULES.value("hlh_2004.ferritin_ge")
IEC_FIB = RULES.value("iec_hs.fibrinogen_lt_mg_dl")
AST_ULN = RULES.analyte("ast").default_high
AST_G3 = RULES.value("ctcae.transaminase_g3_x_uln") * AST_ULN
AST_G4 = RULES.value("ctcae.transaminase_g4_x_uln") * AST_ULN
HS_FERRITIN = RULES.hscore["items"]["ferritin"]
HS_FIBRINOGEN = RULES.hscore["items"]["fibrinogen"]
HS_FIB_LE = UnitConverter(RULES).to_canonical("fibrinogen", HS_FIBRINOGEN["unit"]).apply(HS_FIBRINOGEN["le"])
CREATININE_G3_X_BASELINE = RULES.value("ctcae.creatinine_g3_x_baseline")
RENAL_X_BASELINE = RULES.value("iec_hs.creatinine_x_baseline")
IEC_AST_X = RULES.value("iec_hs.transaminase_x_baseline")
DAY = 5
MANIFESTATIONS = "flags/astct_iec_hs_2023_manifestations.sql"

# patient -> (comparator, value) of the ferritin that makes the set's peak
SHAH_CASES = {"SHAH_GT": (">", SHAH), "SHAH_GE": (">=", SHAH), "SHAH_EXACT": (None, SHAH)}
CARTOX_CASES = {"CARTOX_GT": (">", CARTOX), "CARTOX_GE": (">=", CARTOX)}
# patient -> (comparator, value) of an AST drawn with the default ULN, and the CTCAE grade proven
CTCAE_CASES = {"AST_GT_G3": (">", AST_G3, 3), "AST_GE_G3": (">=", AST_G3, 0), "AST_GT_G4": (">", AST_G4, 4),
               "AST_LT_G4": ("<", AST_G4 * 2, 0), "AST_EXACT_G3": (None, AST_G3, 0)}
# patient -> the companion fibrinogen (comparator, value) of a rise of exactly the UCSF rate
UCSF_FIB_CASES = {"UCSF_FIB_LT": ("<", UCSF_FIB, True), "UCSF_FIB_LT_50_ABOVE": ("<", UCSF_FIB + 50, False),
                  "UCSF_FIB_LE": ("<=", UCSF_FIB, False)}
# patient -> the companion LDH (comparator, value) against "above 2 x ULN" (default ULN)
UCSF_LDH_CASES = {"UCSF_LDH_GT": (">", UCSF_LDH, True), "UCSF_LDH_GE": (">=", UCSF_LDH, False)}
# patient -> the day's fibrinogen for HLH-2004's "and/or" item (triglycerides known below the cut-off)
HLH_FIB_CASES = {"HLH_FIB_LT": ("<", HLH_FIB + 0.5, None), "HLH_FIB_LE": ("<=", HLH_FIB, True),
                 "HLH_FIB_LT_EXACT": ("<", HLH_FIB, True), "HLH_FIB_GT": (">", HLH_FIB, False),
                 "HLH_FIB_EXACT_ABOVE": (None, HLH_FIB + 0.5, False)}
HLH_FERRITIN_CASES = {"HLH_FER_GE": (">=", HLH_FERRITIN, True), "HLH_FER_GT_BELOW": (">", HLH_FERRITIN - 1, None),
                      "HLH_FER_LT": ("<", HLH_FERRITIN, False)}
HSCORE_CASES = {"HS_GT_HIGH": (">", HS_FERRITIN["high_gt"]), "HS_GE_HIGH": (">=", HS_FERRITIN["high_gt"]),
                "HS_GT_LOW": (">", HS_FERRITIN["low_lt"]), "HS_LT_LOW": ("<", HS_FERRITIN["low_lt"]),
                "HS_EXACT_MID": (None, HS_FERRITIN["low_lt"]), "HS_EXACT_HIGH": (None, HS_FERRITIN["high_gt"] + 1)}
# patient -> the day's fibrinogen against HScore's "at most" cut-off, and the points it scores
HS_FIB_CASES = {"HS_FIB_LT": ("<", HS_FIB_LE, HS_FIBRINOGEN["points"]["yes"]),
                "HS_FIB_LT_50_ABOVE": ("<", HS_FIB_LE + 50, None),
                "HS_FIB_GT": (">", HS_FIB_LE, HS_FIBRINOGEN["points"]["no"])}
# patient -> (LDH, creatinine, platelets) as (comparator, value): exact 300 x 1.0 / 100 = 3.0
EASIX_CASES = {"EASIX_EXACT": ((None, 300), (None, 1.0), (None, 100)),
               "EASIX_LDH_GT": ((">", 300), (None, 1.0), (None, 100)),
               "EASIX_PLT_LT": ((None, 300), (None, 1.0), ("<", 100)),
               "EASIX_LDH_LT": (("<", 300), (None, 1.0), (None, 100)),
               "EASIX_BOTH_SIDES": ((">", 300), (None, 1.0), (">", 100))}


# patient -> the pre-infusion creatinine (comparator, value) and the CTCAE grade proven of a day-5
# creatinine of exactly 3 x that bound (its ULN alone gives no grade)
BASELINE_CTCAE_CASES = {"CREA_BASE_LT": ("<", 0.4, 3, ">"), "CREA_BASE_LE": ("<=", 0.4, 0, ">="),
                        "CREA_BASE_GT": (">", 0.4, 0, "<"), "CREA_BASE_EXACT": (None, 0.4, 0, None)}
# patient -> the pre-infusion AST (comparator, value), the day-5 AST, is it a manifestation
BASELINE_AST_CASES = {"IEC_BASE_LT_300": ("<", 100, 300, False),     # baseline may be 99: 5 x is 495
                      "IEC_BASE_LT_500": ("<", 100, IEC_AST_X * 100, True),
                      "IEC_BASE_GT": (">", 100, 5000, False)}       # abnormal and unbounded


def organ_items(case: Case, patient: str, day: int) -> None:
    """Two organ items for CARTOX and Shah: grade 3 bilirubin (> 3 x 1.2) and hemophagocytosis."""
    case.lab(patient, "bilirubin_total", case.at(day, "07:00"), 3.7)
    case.event(patient, "hemophagocytosis", case.at(day, "11:00"))


@pytest.fixture(scope="module")
def case():
    case = Case()
    for patient, (comparator, value) in SHAH_CASES.items():
        case.infusion(patient)
        case.lab(patient, "ferritin", case.at(12, "06:00"), value, comparator=comparator)
        organ_items(case, patient, 13)
    for patient, (comparator, value) in CARTOX_CASES.items():
        case.infusion(patient)
        case.crs(patient, onset_day=1, peak_day=2, resolved_day=4)
        case.lab(patient, "ferritin", case.at(3), value, comparator=comparator)
        organ_items(case, patient, 3)
    for patient, (comparator, value, _) in CTCAE_CASES.items():
        case.infusion(patient)
        case.lab(patient, "ast", case.at(DAY), value, comparator=comparator)
    for patient, (comparator, value, _) in UCSF_FIB_CASES.items():
        later = ucsf_rise(case, patient, (None, 1000), (None, 1000 + UCSF_RATE * UCSF_HOURS))
        case.lab(patient, "fibrinogen", later, value, comparator=comparator)
    for patient, (comparator, value, _) in UCSF_LDH_CASES.items():
        later = ucsf_rise(case, patient, (None, 1000), (None, 1000 + UCSF_RATE * UCSF_HOURS))
        case.lab(patient, "ldh", later, value, comparator=comparator)
    for patient, earlier, later_value in (
            ("UCSF_BOTH_ABOVE", (">", SHAH), (">", SHAH)),                          # proves no rise
            ("UCSF_RISE_AT_LEAST", (None, 5000), (">", 5000 + UCSF_RATE * UCSF_HOURS)),
            ("UCSF_EARLIER_BELOW", ("<", 1000), (None, 1000 + UCSF_RATE * UCSF_HOURS)),
            ("UCSF_EARLIER_ABOVE", (">", 1000), (None, 1000 + UCSF_RATE * UCSF_HOURS))):
        later = ucsf_rise(case, patient, earlier, later_value)
        case.lab(patient, "fibrinogen", later, UCSF_FIB - 50)
    for patient, (comparator, value, _) in HLH_FIB_CASES.items():
        case.infusion(patient)
        case.lab(patient, "triglycerides", case.at(DAY), HLH_TG - 100)
        case.lab(patient, "fibrinogen", case.at(DAY), value, comparator=comparator)
    for patient, (comparator, value, _) in HLH_FERRITIN_CASES.items():
        case.infusion(patient)
        case.lab(patient, "ferritin", case.at(DAY), value, comparator=comparator)
    for patient, (comparator, value) in HSCORE_CASES.items():
        case.infusion(patient)
        case.lab(patient, "ferritin", case.at(DAY), value, comparator=comparator)
    for patient, (comparator, value, _) in HS_FIB_CASES.items():
        case.infusion(patient)
        case.lab(patient, "fibrinogen", case.at(DAY), value, comparator=comparator)
    for patient, inputs in EASIX_CASES.items():
        case.infusion(patient)
        for analyte, (comparator, value) in zip(("ldh", "creatinine", "platelets"), inputs):
            case.lab(patient, analyte, case.at(DAY), value, comparator=comparator)
    # IEC-HS fibrinogen: the fixed cut-off is the higher bound when the lab's LLN is below it
    for patient, comparator, value in (("IEC_FIB_LT", "<", IEC_FIB), ("IEC_FIB_LT_50_ABOVE", "<", IEC_FIB + 50),
                                       ("IEC_AST_GT", ">", AST_G3), ("IEC_AST_GE", ">=", AST_G3)):
        case.infusion(patient)
        analyte = "fibrinogen" if patient.startswith("IEC_FIB") else "ast"
        case.lab(patient, analyte, case.at(DAY), value, comparator=comparator,
                 ref_low=IEC_FIB - 50 if analyte == "fibrinogen" else None)
    for patient, (comparator, value, _, _) in BASELINE_CTCAE_CASES.items():
        case.infusion(patient)
        case.lab(patient, "creatinine", case.at(-1), value, comparator=comparator)
        case.lab(patient, "creatinine", case.at(DAY), CREATININE_G3_X_BASELINE * value)
    for patient, (comparator, value, later, _) in BASELINE_AST_CASES.items():
        case.infusion(patient)
        case.lab(patient, "ast", case.at(-1), value, comparator=comparator)
        case.lab(patient, "ast", case.at(DAY), later)
    case.infusion("RENAL_BASE_LT")                 # 1.5 x a baseline below 0.8: reached for sure
    case.lab("RENAL_BASE_LT", "creatinine", case.at(-1), 0.8, comparator="<")
    case.lab("RENAL_BASE_LT", "creatinine", case.at(DAY), RENAL_X_BASELINE * 0.8)
    case.infusion("RENAL_BASE_GT")                 # any multiple of an unbounded baseline: not proven
    case.lab("RENAL_BASE_GT", "creatinine", case.at(-1), 0.8, comparator=">")
    case.lab("RENAL_BASE_GT", "creatinine", case.at(DAY), 40 * 0.8)
    return case.build(*CRITERIA_STEPS, MANIFESTATIONS)


def ucsf_rise(case: Case, patient: str, earlier: tuple, later: tuple):
    """Two ferritins the UCSF rise window apart on day 6; returns the later moment."""
    case.infusion(patient)
    first = case.at(6, "08:00")
    then = first + timedelta(hours=UCSF_HOURS)
    case.lab(patient, "ferritin", first, earlier[1], comparator=earlier[0])
    case.lab(patient, "ferritin", then, later[1], comparator=later[0])
    return then


def patients_with_windows(case: Case, criteria_set: str, prefix: str) -> list[str]:
    return [w["patient_id"] for w in case.windows(criteria_set) if w["patient_id"].startswith(prefix)]


def test_shah_ferritin_above_the_cut_off_only_when_proven(case):
    assert patients_with_windows(case, "shah_2020", "SHAH") == ["SHAH_GT"]


def test_cartox_ferritin_above_the_cut_off_only_when_proven(case):
    assert patients_with_windows(case, "cartox_2017", "CARTOX") == ["CARTOX_GT"]


def test_the_evidence_and_the_export_show_the_comparator(case):
    [window] = [w for w in case.windows("shah_2020") if w["patient_id"] == "SHAH_GT"]
    assert window["evidence"][0] | {"at": None, "source": None} == {
        "rule": "shah.ferritin_peak_gt", "analyte": "ferritin", "value": SHAH, "comparator": ">",
        "unit": "ng/mL", "at": None, "source": None}
    exported = case.one("SELECT evidence FROM flags.windows WHERE patient_id = 'SHAH_GT'")["evidence"]
    ferritin, bilirubin, _ = json.loads(exported)
    assert (ferritin["value"], ferritin["comparator"]) == (SHAH, ">")
    assert "comparator" not in bilirubin                       # an exact value reads as it always has


@pytest.mark.parametrize("patient", CTCAE_CASES)
def test_ctcae_grade_is_the_highest_one_proven(case, patient):
    comparator, _, grade = CTCAE_CASES[patient]
    row = case.one("SELECT grade, comparator FROM derived.organ_toxicity_daily WHERE patient_id = ?", [patient])
    assert (row["grade"], row["comparator"]) == (grade, comparator)


def test_ucsf_companion_fibrinogen_only_when_proven_below_the_cut_off(case):
    met = {p for p, (_, _, expected) in UCSF_FIB_CASES.items() if expected}
    assert set(patients_with_windows(case, "ucsf_masl_2020", "UCSF_FIB")) == met == {"UCSF_FIB_LT"}


def test_ucsf_companion_ldh_only_when_proven_above_twice_uln(case):
    assert patients_with_windows(case, "ucsf_masl_2020", "UCSF_LDH") == ["UCSF_LDH_GT"]


def test_ucsf_rise_counts_the_least_rate_the_results_allow(case):
    found = set(patients_with_windows(case, "ucsf_masl_2020", "UCSF_")) - set(UCSF_FIB_CASES) - set(UCSF_LDH_CASES)
    assert found == {"UCSF_RISE_AT_LEAST", "UCSF_EARLIER_BELOW"}
    [window] = [w for w in case.windows("ucsf_masl_2020") if w["patient_id"] == "UCSF_RISE_AT_LEAST"]
    assert [(e["value"], e["comparator"]) for e in window["evidence"][:2]] == [
        (5000, None), (5000 + UCSF_RATE * UCSF_HOURS, ">")]


def hlh(case: Case, patient: str) -> dict:
    return case.one("SELECT * FROM derived.hlh_criteria_daily WHERE patient_id = ? AND day = ?", [patient, DAY])


@pytest.mark.parametrize("patient", HLH_FIB_CASES)
def test_hlh_fibrinogen_item_met_refuted_or_not_evaluable(case, patient):
    """Triglycerides are known below their cut-off, so the "and/or" item is the fibrinogen's."""
    expected = HLH_FIB_CASES[patient][2]
    row = hlh(case, patient)
    for name in ("hlh_2004", "hlh_94"):
        assert (row[f"{name}_met_count"], row[f"{name}_evaluable_count"]) == (
            int(expected is True), int(expected is not None)), name


@pytest.mark.parametrize("patient", HLH_FERRITIN_CASES)
def test_hlh_2004_ferritin_item(case, patient):
    expected = HLH_FERRITIN_CASES[patient][2]
    row = hlh(case, patient)
    assert (row["hlh_2004_met_count"], row["hlh_2004_evaluable_count"]) == (
        int(expected is True), int(expected is not None))


def hscore(case: Case, patient: str) -> dict:
    return case.one("SELECT * FROM derived.hscore_daily WHERE patient_id = ? AND day = ?", [patient, DAY])


def test_hscore_ferritin_band_proven_or_a_range(case):
    points = HS_FERRITIN["points"]
    got = {p: hscore(case, p)["ferritin_points"] for p in HSCORE_CASES}
    assert got == {"HS_GT_HIGH": points["high"], "HS_GE_HIGH": None, "HS_GT_LOW": None,
                   "HS_LT_LOW": points["low"], "HS_EXACT_MID": points["mid"], "HS_EXACT_HIGH": points["high"]}
    mid, high = hscore(case, "HS_EXACT_MID"), hscore(case, "HS_EXACT_HIGH")
    # `>2000` is at least the middle band and at most the top one; `>=6000` the same two bands
    for patient in ("HS_GT_LOW", "HS_GE_HIGH"):
        row = hscore(case, patient)
        assert (row["hscore_min"], row["hscore_max"]) == (mid["hscore_min"], high["hscore_max"]), patient
        assert "ferritin" in row["unknown_items"]


@pytest.mark.parametrize("patient", HS_FIB_CASES)
def test_hscore_fibrinogen_at_most_the_cut_off(case, patient):
    row = hscore(case, patient)
    assert row["fibrinogen_points"] == HS_FIB_CASES[patient][2]
    assert ("fibrinogen" in row["unknown_items"]) is (HS_FIB_CASES[patient][2] is None)


@pytest.mark.parametrize("patient, easix, comparator, exported", [
    ("EASIX_EXACT", 3.0, None, 3.0),
    ("EASIX_LDH_GT", 3.0, ">", None),          # at least 3.0: a bound, not a value for the export
    ("EASIX_PLT_LT", 3.0, ">", None),          # fewer platelets: a higher score
    ("EASIX_LDH_LT", 3.0, "<", None),
    ("EASIX_BOTH_SIDES", None, None, None),    # bounded from both sides: unknown
])
def test_easix_with_a_censored_input_is_a_bound_or_unknown(case, patient, easix, comparator, exported):
    row = case.one("SELECT easix, easix_comparator FROM derived.easix_daily WHERE patient_id = ?", [patient])
    assert (row["easix"], row["easix_comparator"]) == (easix, comparator)
    assert case.one("SELECT easix FROM flags.daily WHERE patient_id = ? AND day = ?", [patient, DAY])["easix"] == exported


def test_iec_hs_manifestations_only_when_proven(case):
    rows = case.rows("SELECT patient_id, rule, value, comparator FROM flags.astct_iec_hs_2023_manifestations "
                     "WHERE patient_id IN ('IEC_FIB_LT', 'IEC_FIB_LT_50_ABOVE', 'IEC_AST_GT', 'IEC_AST_GE') "
                     "ORDER BY patient_id")
    assert rows == [
        {"patient_id": "IEC_AST_GT", "rule": "transaminases", "value": AST_G3, "comparator": ">"},
        {"patient_id": "IEC_FIB_LT", "rule": "fibrinogen", "value": IEC_FIB, "comparator": "<"},
    ]


@pytest.mark.parametrize("patient", BASELINE_CTCAE_CASES)
def test_ctcae_creatinine_against_a_censored_baseline(case, patient):
    comparator, value, grade, ratio_side = BASELINE_CTCAE_CASES[patient]
    timeline = case.one("SELECT baseline, baseline_comparator, x_baseline, x_baseline_comparator FROM derived.timeline "
                        "WHERE patient_id = ? AND day = ?", [patient, DAY])
    assert (timeline["baseline"], timeline["baseline_comparator"], timeline["x_baseline_comparator"]) == (
        value, comparator, ratio_side)
    assert timeline["x_baseline"] == pytest.approx(CREATININE_G3_X_BASELINE)
    assert case.one("SELECT grade FROM derived.organ_toxicity_daily WHERE patient_id = ? AND day = ?",
                    [patient, DAY])["grade"] == grade


def test_iec_hs_against_a_censored_baseline(case):
    found = {r["patient_id"]: r["rule"] for r in case.rows(
        "SELECT patient_id, rule FROM flags.astct_iec_hs_2023_manifestations "
        "WHERE patient_id LIKE 'IEC_BASE%' OR patient_id LIKE 'RENAL_BASE%'")}
    expected = {p: "transaminases" for p, (*_, shown) in BASELINE_AST_CASES.items() if shown}
    assert found == expected | {"RENAL_BASE_LT": "renal"}
