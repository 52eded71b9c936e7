"""Every archetype is there, each verdict is the archetype's intent, and the hard cases hit their boundaries."""

from __future__ import annotations

from datetime import datetime

import pytest

from cartwatch.synth import ARCHETYPES
from tests.synth.sample_files import read_rows


def _episode(truth, archetype, n=0):
    return [e for e in truth.episodes if e.archetype == archetype][n]


def test_every_archetype_is_in_the_sample(sample):
    truth, _ = sample
    assert {e.archetype for e in truth.episodes} == set(ARCHETYPES)
    assert 20 <= len({e.patient_id for e in truth.episodes}) <= 40


def test_no_verdict_depends_on_an_open_reading(cohort):
    assert [(s.patient.patient_id, a) for s in cohort for a in s.ambiguous if a] == []


@pytest.mark.parametrize("archetype, allowed", [
    ("classic_post_crs_iec_hs", {"criteria_met"}), ("crs_only_high_ferritin", {"none", "watch"}),
    ("no_crs", {"none"}), ("late_onset", {"criteria_met"}), ("hard_ferritin_lag_boundary", {"none"}),
    ("hard_ferritin_exactly_2x_uln", {"none"}), ("hard_rapid_rise_exactly_100", {"suspected"}),
    ("hard_crs_re_escalation", {"criteria_met"}), ("hard_sparse_labs", {"criteria_met"}),
    ("hard_no_vitals", {"none", "watch"}), ("malformed_rows", {"none"}),
])
def test_verdicts_match_the_archetype(sample, archetype, allowed):
    truth, _ = sample
    assert {e.iec_hs_status for e in truth.episodes if e.archetype == archetype} <= allowed


def test_crs_only_never_reaches_suspected_and_no_crs_has_no_crs(sample):
    truth, _ = sample
    assert any(e.iec_hs_status == "watch" for e in truth.episodes if e.archetype == "crs_only_high_ferritin")
    assert all(e.crs_peak_grade is None for e in truth.episodes if e.archetype == "no_crs")


def test_late_onset_is_flagged_late(sample, rules):
    e = _episode(sample[0], "late_onset")
    assert e.late_onset and e.iec_hs_onset_day >= rules.value("iec_hs.late_onset_day")
    assert not any(x.late_onset for x in sample[0].episodes if x.archetype != "late_onset")


def test_pre_infusion_hyperferritinemia_is_judged_against_baseline(sample):
    truth, _ = sample
    episodes = [e for e in truth.episodes if e.archetype == "pre_infusion_hyperferritinemia"]
    assert {e.iec_hs_status for e in episodes} == {"none", "criteria_met"}
    assert all(e.detail["judged_against_baseline"] for e in episodes)


def test_reinfusion_has_its_own_episode(sample):
    first, second = sample[0].by_patient(_episode(sample[0], "hard_reinfusion").patient_id)
    assert (first.infusion_id[-2:], second.infusion_id[-2:]) == ("I1", "I2")
    gap = datetime.fromisoformat(second.infused_at) - datetime.fromisoformat(first.infused_at)
    assert gap.days >= 60 and first.iec_hs_status in ("none", "watch") and second.iec_hs_status == "criteria_met"
    assert second.iec_hs_onset_day < 20   # counted from the second infusion


def test_re_escalation_flags_within_48_h_of_improvement(sample):
    e = _episode(sample[0], "hard_crs_re_escalation")
    crs = e.detail["crs"]
    assert (crs["improvement_day"], crs["re_escalation_day"], e.iec_hs_onset_day) == (4, 5, 5)
    assert e.detail["ferritin_signals"][-1]["timing"].startswith("CRS re-escalated")


def _ferritin(folder, patient_id):
    return [(datetime.fromisoformat(r["collected_at"]), r["value"]) for r in read_rows(folder / "labs.csv")
            if r["patient_id"] == patient_id and r["loinc"] == "2276-4"]


def test_rapid_rise_is_exactly_the_rule_rate(sample, rules):
    truth, folder = sample
    e = _episode(truth, "hard_rapid_rise_exactly_100")
    results = _ferritin(folder, e.patient_id)
    (t0, v0), (t1, v1) = [(t, v) for t, v in results if v in ("1500", "2700")]
    rate = (float(v1) - float(v0)) / ((t1 - t0).total_seconds() / 3600)
    assert rate == rules.value("iec_hs.rapid_rise_ng_ml_per_hour")
    assert e.iec_hs_status == "suspected" and e.detail["ferritin_signals"][0]["rules"] == ["rapid_rise"]


def test_lag_boundary_peak_is_exactly_resolution_plus_lag(sample, rules):
    truth, folder = sample
    e = _episode(truth, "hard_ferritin_lag_boundary")
    resolved = datetime.fromisoformat(e.detail["crs"]["resolved_at"])
    results = _ferritin(folder, e.patient_id)
    peak_at, _ = max(results, key=lambda r: float(r[1]))
    assert (peak_at - resolved).total_seconds() == rules.value("iec_hs.ferritin_lag_hours") * 3600
    assert e.iec_hs_status == "none"


def test_exactly_twice_uln_is_present_and_not_elevated(sample, rules):
    truth, folder = sample
    e = _episode(truth, "hard_ferritin_exactly_2x_uln")
    labs = [r for r in read_rows(folder / "labs.csv") if r["patient_id"] == e.patient_id and r["loinc"] == "2276-4"]
    limit = rules.value("iec_hs.ferritin_elevated_x_uln")
    assert any(float(r["value"]) == limit * float(r["ref_high"]) for r in labs)
    assert e.iec_hs_status == "none"
