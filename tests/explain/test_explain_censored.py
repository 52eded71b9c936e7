"""A censored result (`>100000`) is shown with its comparator, never as the bare bound."""

from __future__ import annotations

from cartwatch.explain import explain
from engine_helpers import Scenario


def test_a_censored_ferritin_is_shown_with_its_comparator():
    s = Scenario()
    s.infusion("P1", "2026-03-01 10:00", infusion_id="I1")
    s.daily_vitals("P1", "2026-03-01", 4)
    s.lab("P1", "ferritin", "2026-03-02 06:00", 900)
    s.lab("P1", "ferritin", "2026-03-03 06:00", 100000)
    s.con.execute("UPDATE stg.lab_results SET comparator = '>' WHERE value = 100000")
    s.build("2026-03-05 00:00")
    doc = explain(s.con, s.rules, "P1", None, s.t("2026-03-05 00:00"))
    sets = {c["criteria_set"]: c for c in doc["criteria_sets"]}
    astct = sets["astct_iec_hs_2023"]
    assert [f["comparator"] for f in astct["ferritin"]] == [None, ">"]
    ferritin = next(sec["lines"] for sec in astct["sections"] if sec["title"] == "Ferritin")
    assert ferritin[2].startswith("d+2 2026-03-03 06:00 EST >100,000 ng/mL: elevated")
    shah = next(sec["lines"] for sec in sets["shah_2020"]["sections"] if sec["title"] == "Items")
    # `>100000` proves a value above Shah's cut-off of 100,000: the build's own item macro says met
    assert shah[0] == ("ferritin peak: met (from 2026-03-03 06:00 EST: ferritin >100,000 ng/mL; highest >100,000 "
                       "ng/mL d+2; needs > 100,000 ng/mL (shah.ferritin_peak_gt))")
