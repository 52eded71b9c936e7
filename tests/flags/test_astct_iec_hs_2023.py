"""ASTCT 2023 IEC-HS flags: manifestations, statuses at evaluation points, onset windows (contract.md §5
`export windows` columns and evidence JSON) and the daily status (clinical-rules.md §3)."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from engine_helpers import Scenario

START = "2026-05-01"
WINDOW_COLUMNS = ["patient_id", "infusion_id", "criteria_set", "status", "onset_at", "onset_day", "end_at", "end_day",
                  "crs_onset_day", "crs_peak_day", "crs_resolved_day", "late_onset", "evidence", "rules_version"]


def on(day: int, hhmm: str = "08:00") -> str:
    return f"{date.fromisoformat(START) + timedelta(days=day)} {hhmm}"


def no_crs_signal(s: Scenario, pid: str, day: int, nadir_day: int | None = None) -> None:
    """A patient without CRS whose ferritin doubles from its nadir on `day` (08:00)."""
    s.lab(pid, "ferritin", on(nadir_day if nadir_day is not None else day - 2), 500)
    s.lab(pid, "ferritin", on(day), 1200)


@pytest.fixture(scope="module")
def flagged():
    s = Scenario()
    for pid in ("IECHS", "WATCH", "LATE28", "LATE29", "M48", "M48_1", "MBEFORE", "TWICE"):
        s.infusion(pid, on(0, "10:00"))
    # CRS days 1-2 resolving on day 3; ferritin peaks in the CRS phase, falls, rises again on day 8
    for day, temp in ((1, 38.5), (2, 38.8), (3, 37.0), (4, 37.0)):
        s.vital("IECHS", "temperature", on(day), temp)
    s.vital("IECHS", "sbp", on(2), 85)
    for day, value in ((1, 2000), (2, 6000), (4, 3000), (6, 1500), (8, 3200), (10, 1000), (11, 700), (15, 600)):
        s.lab("IECHS", "ferritin", on(day, "08:30" if day in (1, 2) else "08:00"), value)
    s.lab("IECHS", "fibrinogen", on(9), 120)
    s.lab("IECHS", "ldh", on(8, "09:00"), 500)
    # CRS-phase ferritin surge that settles: a watch window, not IEC-HS
    s.vital("WATCH", "temperature", on(1), 38.9)
    s.vital("WATCH", "temperature", on(2), 37.0)
    for day, value in ((1, 300), (2, 3000), (3, 600)):
        s.lab("WATCH", "ferritin", on(day, "06:00"), value)
    no_crs_signal(s, "LATE28", 28)
    no_crs_signal(s, "LATE29", 29)
    for pid in ("M48", "M48_1", "MBEFORE"):
        no_crs_signal(s, pid, 22)
    s.lab("M48", "fibrinogen", on(24, "08:00"), 100)             # exactly 48 h after: criteria met
    s.lab("M48_1", "fibrinogen", on(24, "08:01"), 100)           # 48 h and a minute: not
    s.lab("MBEFORE", "fibrinogen", on(20, "08:00"), 100)         # exactly 48 h before: criteria met
    # two windows: the first closes 72 h after ferritin falls back, the second is still open
    no_crs_signal(s, "TWICE", 17, nadir_day=16)
    s.lab("TWICE", "ferritin", on(18), 600)
    s.lab("TWICE", "ferritin", on(26), 1300)
    s.build(on(30, "12:00"))
    return s


def test_windows_have_the_contract_columns(flagged):
    cols = [r["column_name"] for r in flagged.rows(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'flags' "
        "AND table_name = 'windows_astct_iec_hs_2023' ORDER BY ordinal_position")]
    assert cols == WINDOW_COLUMNS


def test_crs_resolves_then_ferritin_rises_suspected_then_criteria_met(flagged):
    [w] = flagged.windows("IECHS")
    assert (w["criteria_set"], w["status"]) == ("astct_iec_hs_2023", "criteria_met")
    assert (w["onset_day"], w["end_day"]) == (8, 14)
    assert w["onset_at"] == flagged.t(on(8)) and w["end_at"] == flagged.t(on(14))   # ferritin < 800 on day 11 + 72 h
    assert (w["crs_onset_day"], w["crs_peak_day"], w["crs_resolved_day"], w["late_onset"]) == (1, 2, 3, False)
    points = flagged.rows("SELECT day, point_kind, rule, status, manifestations FROM flags.astct_iec_hs_2023_points "
                          "WHERE patient_id = 'IECHS' AND status IS NOT NULL ORDER BY observed_at")
    assert [(p["day"], p["point_kind"], p["rule"], p["status"]) for p in points] == [
        (2, "ferritin", "rapid_rise", "watch"),                  # CRS phase: CRS-associated
        (8, "ferritin", "re_rise", "suspected"),                 # resolved CRS, ferritin doubles from its nadir
        (8, "manifestation", "ldh", "suspected"),                # other manifestation: evidence only
        (9, "manifestation", "fibrinogen", "criteria_met")]      # a most-common one within 48 h
    assert points[-1]["manifestations"] == ["fibrinogen"]
    daily = flagged.rows("SELECT day, status FROM flags.astct_iec_hs_2023_daily WHERE patient_id = 'IECHS' "
                         "ORDER BY day")
    assert [(d["day"], d["status"]) for d in daily] == [(2, "watch"), (8, "suspected")] + [
        (d, "criteria_met") for d in range(9, 15)]


def test_evidence_is_a_json_list_of_results_with_the_contract_keys(flagged):
    [w] = flagged.windows("IECHS")
    evidence = w["evidence"]
    assert isinstance(evidence, list) and evidence
    assert all({"rule", "analyte", "value", "unit", "at", "source"} <= set(item) for item in evidence)
    by_rule = {item["rule"]: item for item in evidence}
    assert set(by_rule) == {"re_rise", "fibrinogen", "ldh"}
    assert by_rule["re_rise"] | {"detail": None} == {
        "rule": "re_rise", "analyte": "ferritin", "value": 3200.0, "comparator": None, "unit": "ng/mL", "at": "2026-05-09T12:00:00+00:00",
        "source": by_rule["re_rise"]["source"], "status": "suspected", "detail": None}
    assert by_rule["re_rise"]["source"].startswith("test.csv:")
    assert (by_rule["fibrinogen"]["value"], by_rule["fibrinogen"]["unit"]) == (120.0, "mg/dL")


def test_crs_phase_surge_is_a_watch_row_not_an_iec_hs_window(flagged):
    [w] = flagged.windows("WATCH")
    assert (w["status"], w["onset_day"], w["end_day"], w["crs_onset_day"]) == ("watch", 2, 6, 1)
    assert [item["rule"] for item in w["evidence"]] == ["rapid_rise"]
    assert "CRS-associated" in w["evidence"][0]["detail"]


@pytest.mark.parametrize("pid, onset_day, late", [("LATE28", 28, False), ("LATE29", 29, True)])
def test_onset_after_day_28_is_late_and_still_flagged(flagged, pid, onset_day, late):
    [w] = flagged.windows(pid)
    assert (w["status"], w["onset_day"], w["late_onset"], w["crs_onset_day"]) == ("suspected", onset_day, late, None)
    assert w["end_at"] is None and w["end_day"] is None                    # ferritin still elevated: open


@pytest.mark.parametrize("pid, status", [("M48", "criteria_met"), ("M48_1", "suspected"), ("MBEFORE", "criteria_met")])
def test_manifestation_within_48_hours_either_side_inclusive(flagged, pid, status):
    [w] = flagged.windows(pid)
    assert w["status"] == status
    # in every case the fibrinogen is part of the window's evidence (near a suspected result, or
    # collected while the window was open); only within 48 h does it make criteria met
    assert "fibrinogen" in [item["rule"] for item in w["evidence"]]
    met = flagged.rows("SELECT point_kind FROM flags.astct_iec_hs_2023_points WHERE patient_id = ? "
                       "AND status = 'criteria_met'", [pid])
    assert [m["point_kind"] for m in met] == {"M48": ["manifestation"], "M48_1": [], "MBEFORE": ["ferritin"]}[pid]


def test_a_second_window_after_the_first_closed(flagged):
    first, second = flagged.windows("TWICE")
    assert (first["onset_day"], first["end_day"], first["end_at"]) == (17, 21, flagged.t(on(21)))
    assert (second["onset_day"], second["end_day"], second["status"]) == (26, None, "suspected")
    daily = flagged.rows("SELECT day FROM flags.astct_iec_hs_2023_daily WHERE patient_id = 'TWICE' ORDER BY day")
    assert [d["day"] for d in daily] == [17, 18, 19, 20, 21, 26]   # open window: to the last day with data


def test_reinfusion_window_belongs_to_its_infusion():
    s = Scenario()
    s.infusion("P1", on(0, "10:00"), "I1")
    s.infusion("P1", on(40, "10:00"), "I2")
    s.lab("P1", "ferritin", on(56), 500)
    s.lab("P1", "ferritin", on(57), 1200)                                 # I2 day 17
    s.build(on(70))
    [w] = s.windows("P1")
    assert (w["infusion_id"], w["onset_day"], w["status"]) == ("I2", 17, "suspected")


def test_manifestation_thresholds():
    s = Scenario()
    for pid in ("N", "A", "F", "C"):
        s.infusion(pid, on(0, "10:00"))
    s.lab("N", "alt", on(-1), 30)                                         # baseline normal (ULN 55)
    s.lab("N", "alt", on(5), 275)                                         # exactly 5 x ULN: no
    s.lab("N", "alt", on(6), 276)
    s.lab("A", "alt", on(-1), 100)                                        # baseline abnormal
    s.lab("A", "alt", on(5), 500)                                         # exactly 5 x baseline: no
    s.lab("A", "alt", on(6), 501)
    s.lab("F", "fibrinogen", on(5), 190)                                  # above 150, below the LLN 200
    s.lab("F", "fibrinogen", on(6), 160, ref_low=100, ref_high=400)       # LLN 100: the 150 cut-off rules
    s.lab("F", "fibrinogen", on(7), 149, ref_low=100, ref_high=400)
    s.lab("C", "platelets", on(-1), 200)
    s.lab("C", "platelets", on(5), 90)                                    # new (baseline normal)
    s.lab("C", "anc", on(5), 0.8)                                         # no baseline, no earlier: unknown
    s.lab("C", "anc", on(6), 0.9)
    s.lab("C", "anc", on(7), 0.45)                                        # a 50 % fall from the best: worsening
    s.lab("C", "hemoglobin", on(-1), 8.5)                                 # low before: not new
    s.lab("C", "hemoglobin", on(5), 8.0)
    s.event("C", "splenomegaly", on(-3), True)                            # known before: not new
    s.event("C", "splenomegaly", on(5), True)
    s.event("C", "hemophagocytosis", on(6), True)
    s.build(on(20))
    found = {(r["patient_id"], r["rule"], r["analyte"], r["value"], r["detail"]) for r in s.rows(
        "SELECT * FROM flags.astct_iec_hs_2023_manifestations")}
    assert found == {
        ("N", "transaminases", "alt", 276, "above x ULN"),
        ("A", "transaminases", "alt", 501, "above x baseline (baseline abnormal)"),
        ("F", "fibrinogen", "fibrinogen", 190, "below max(fixed cut-off, LLN)"),
        ("F", "fibrinogen", "fibrinogen", 149, "below max(fixed cut-off, LLN)"),
        ("C", "cytopenia", "platelets", 90, "new"),
        ("C", "cytopenia", "anc", 0.45, "worsening"),
        ("C", "hemophagocytosis", "hemophagocytosis", 1, "documented"),
    }


@pytest.mark.parametrize("first, second", [("o2_device", "o2_flow"), ("o2_flow", "o2_device")])
def test_readings_charted_at_the_same_moment_give_the_one_sent_first_as_evidence(first, second):
    """Regression: a flow and a device charted at one moment both show supplemental oxygen; the
    evidence was whichever the engine met first, so re-ordering a load changed the export."""
    s = Scenario()
    s.infusion("P1", "2026-03-01 10:00")
    readings = {"o2_device": "nasal_cannula", "o2_flow": 4}
    for kind in (first, second):
        s.vital("P1", kind, "2026-03-05 08:00", readings[kind])
    s.build("2026-03-20 00:00")
    assert s.rows("SELECT analyte FROM flags.astct_iec_hs_2023_manifestations WHERE rule = 'pulmonary'") == [{"analyte": first}]
