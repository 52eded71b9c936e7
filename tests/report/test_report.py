"""`cartwatch report` on a 200-patient synthetic cohort (500 in the slow run) matches the ground
truth; the HTML is self-contained and escaped; --mask-ids masks the disagreement lists; the cohort
filters are backfill's."""

from __future__ import annotations

import json
import re

import pytest

from cartwatch.cli import main
from tests.report.truth_check import build_cohort, check_against_truth

COHORT_PATIENTS, COHORT_SEED = 200, 11


@pytest.fixture(scope="session")
def cohort_200(tmp_path_factory):
    return build_cohort(tmp_path_factory.mktemp("report-200"), COHORT_PATIENTS, COHORT_SEED)


def test_report_matches_the_ground_truth(cohort_200):
    check_against_truth(cohort_200)


@pytest.mark.slow
def test_report_on_500_patients_matches_the_ground_truth(tmp_path):
    check_against_truth(build_cohort(tmp_path, 500, 5))


def test_html_is_self_contained_with_both_plots(cohort_200):
    html = cohort_200["html"]
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html
    assert len(re.findall(r'<img class="plot" alt="[^"]+" src="data:image/png;base64,', html)) == 2
    assert not re.search(r'(src|href)="(http|//)', html)
    for title in ("Infusions flagged", "Highest status reached", "Onset", "Cumulative incidence by day post-infusion",
                  "Agreement between criteria sets"):
        assert f"<h2>{title}</h2>" in html


def test_mask_ids_masks_the_disagreement_lists(cohort_200, tmp_path):
    out = tmp_path / "masked.json"
    assert main(["report", "--db", str(cohort_200["db"]), "--mask-ids", "--out", str(out)]) == 0
    text = out.read_text()
    assert "CW-" not in text
    doc = json.loads(text)
    listed = [d for pair in doc["agreement"] for d in pair["disagreements"]]
    assert listed and all(d["patient_id"].startswith("pt-") and d["infusion_id"].startswith("inf-") for d in listed)


def test_product_filter_selects_like_backfill(cohort_200, tmp_path):
    out = tmp_path / "tisa.json"
    assert main(["report", "--db", str(cohort_200["db"]), "--product", "TISA-CEL", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    tisa = [e for e in cohort_200["truth"] if e["car_t_product"] == "tisa-cel"]
    assert doc["cohort"]["infusions"] == len(tisa) and doc["cohort"]["filters"]["product"] == "TISA-CEL"
    groups = {(r["by"], r["group"]) for r in doc["flagged"]}
    assert ("product", "tisa-cel") in groups and ("product", "axi-cel") not in groups


def test_an_empty_cohort_is_bad_input(cohort_200, tmp_path, capsys):
    out = tmp_path / "none.html"
    assert main(["report", "--db", str(cohort_200["db"]), "--product", "no-such-cel", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == "cartwatch: report: no infusion matches the cohort filters"
    assert main(["report", "--db", str(cohort_200["db"]), "--out", str(tmp_path / "r.txt")]) == 2


def test_an_antigen_the_feed_left_empty_comes_from_the_product(rules):
    from cartwatch.report import make_report
    from tests.engine_helpers import Scenario

    s = Scenario(rules=rules)
    s.infusion("P1", "2026-03-01 10:00", infusion_id="P1-I1", product="cilta-cel")
    s.infusion("P2", "2026-03-02 10:00", infusion_id="P2-I1", product="in-house CAR-T")
    s.lab("P1", "ferritin", "2026-03-03 06:00", 900)
    s.build("2026-03-10 00:00")
    doc = make_report(s.con, rules, [("P1", "P1-I1"), ("P2", "P2-I1")], as_of=s.t("2026-03-10 00:00"),
                      cohort_filters={})
    groups = {(r["by"], r["group"]) for r in doc["flagged"] if r["criteria_set"] == "astct_iec_hs_2023"}
    assert groups == {("overall", "all"), ("product", "cilta-cel"), ("product", "in-house CAR-T"),
                      ("target_antigen", "BCMA"), ("target_antigen", "not given"), ("indication", "not given")}


def test_highest_statuses_run_from_none_to_the_most_severe():
    """From the trial: the table read criteria_met, none, suspected, watch (alphabetical)."""
    import polars as pl

    from cartwatch.report.render_html import _statuses
    from cartwatch.report.stats import highest_status_counts

    frame = pl.DataFrame({"criteria_set": ["astct_iec_hs_2023"] * 6 + ["hscore"] * 3,
                          "highest_status": ["watch", "criteria_met", "none", "suspected", "none", "criteria_met",
                                             "met", "none", "none"]})
    counts = highest_status_counts(frame)
    assert [(r["criteria_set"], r["highest_status"], r["infusions"]) for r in counts] == [
        ("astct_iec_hs_2023", "none", 2), ("astct_iec_hs_2023", "watch", 1), ("astct_iec_hs_2023", "suspected", 1),
        ("astct_iec_hs_2023", "criteria_met", 2), ("hscore", "none", 2), ("hscore", "met", 1)]
    html = _statuses({"highest_status": counts})
    assert re.findall(r"<td>IEC-HS</td><td>([a-z ]+)</td>", html) == ["none", "watch", "suspected", "criteria met"]
