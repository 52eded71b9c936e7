"""`cartwatch explain` on the sample cohort: its verdicts and windows are the exports', and the
chain says why, with the rules file's numbers."""

from __future__ import annotations

import csv
import json
import re
import shutil
from datetime import datetime

import duckdb
import pytest

from cartwatch.digest.ids import mask
from flows.cli import main
from sample_paths import SAMPLE

RANK = {"none": 0, "watch": 1, "suspected": 2, "criteria_met": 3}
DAILY = {"astct_iec_hs_2023": "astct_iec_hs_2023", "cartox_2017": "cartox_2017", "shah_2020": "shah_2020",
         "ucsf_masl_2020": "ucsf_masl_2020", "hlh_94": "hlh_94", "hlh_2004": "hlh_2004_met"}


def episodes() -> list[tuple[str, str]]:
    with open(SAMPLE / "ground_truth.csv", newline="", encoding="utf-8") as handle:
        return [(r["patient_id"], r["infusion_id"]) for r in csv.DictReader(handle)]


def when(text: str | None) -> datetime | None:
    if text is None:
        return None
    text = text.replace(" ", "T")
    return datetime.fromisoformat(text + (":00" if text[-3] in "+-" else ""))


def run_json(args: list[str], out) -> dict | list:
    assert main([*args, "--out", str(out)]) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def explanation(db, tmp_path, patient, *more: str) -> dict:
    return run_json(["explain", patient, "--db", str(db), "--format", "json", *more], tmp_path / "e.json")


def test_on_every_sample_patient_the_verdicts_and_windows_are_the_exports(sample_db, tmp_path, rules):
    windows = run_json(["export", "windows", "--db", str(sample_db)], tmp_path / "w.json")
    flags = run_json(["export", "flags", "--db", str(sample_db)], tmp_path / "f.json")
    for patient, infusion in episodes():
        doc = explanation(sample_db, tmp_path, patient, "--infusion", infusion)
        assert (doc["patient_id"], doc["infusion_id"], doc["rules_version"]) == (patient, infusion, "2026.12.0")
        days = [f for f in flags if f["infusion_id"] == infusion]
        assert len(doc["criteria_sets"]) == 7
        for s in doc["criteria_sets"]:
            name = s["criteria_set"]
            exported = [x for x in windows if x["infusion_id"] == infusion and x["criteria_set"] == name]
            assert [(x["status"], when(x["onset_at"]), x["onset_day"], when(x["end_at"]), x["end_day"])
                    for x in exported] == [(x["status"], when(x["onset_at"]), x["onset_day"], when(x["end_at"]),
                                            x["end_day"]) for x in s["windows"]], (patient, name)
            if name == "astct_iec_hs_2023":
                expected = max((x["status"] for x in exported), key=RANK.get, default="none")
            else:
                expected = "met" if exported else "not_met"
            assert s["verdict"] == expected, (patient, name)
            assert items_agree(s, rules), (patient, name)
            if name in DAILY:       # the daily flags say the same: met on some day iff a window
                flagged = [d[DAILY[name]] for d in days if d[DAILY[name]]]
                top = max((RANK.get(v, 1) for v in flagged), default=0)
                wanted = RANK[expected] if name == "astct_iec_hs_2023" else int(expected == "met")
                assert top == wanted, (patient, name)
                latest = days[-1][DAILY[name]]
                assert s["latest_day"] == {"day": days[-1]["day"],
                                           "status": ("met" if latest else None) if name == "hlh_2004" else latest}


def items_agree(s: dict, rules) -> bool:
    """The items shown add up to the stored verdict: CARTOX and Shah, the ferritin item and enough
    organ items exactly when the set is met; HLH-94 and HLH-2004, the met items are the day's count;
    UCSF MAS-L, every item."""
    if not s.get("items") or s["criteria_set"] == "hscore":
        return True
    met = [i["state"] == "met" for i in s["items"]]
    if s["criteria_set"] == "ucsf_masl_2020":      # a rise, a companion, and the two close enough
        return all(met) == (s["verdict"] == "met")
    if s["criteria_set"].startswith("hlh"):
        needed = rules.value("hlh_2004.criteria_required") if s["criteria_set"] == "hlh_2004" else len(met)
        return (sum(met) >= needed) == (s["verdict"] == "met")
    prefix = {"cartox_2017": "cartox", "shah_2020": "shah"}[s["criteria_set"]]
    return (met[0] and sum(met[1:]) >= rules.value(f"{prefix}.items_required")) == (s["verdict"] == "met")


@pytest.fixture(scope="module")
def sample_docs(sample_db, tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    return {p: {s["criteria_set"]: s for s in explanation(sample_db, out, p)["criteria_sets"]}
            for p in ("CW-0001", "CW-0004", "CW-0006")}


def lines(s: dict, title: str) -> list[str]:
    return next(sec["lines"] for sec in s["sections"] if sec["title"] == title)


def test_a_patient_flagged_by_astct_shows_the_chain_that_flagged_it(sample_docs):
    astct = sample_docs["CW-0001"]["astct_iec_hs_2023"]
    assert astct["verdict"] == "criteria_met"
    assert astct["summary"] == ["window criteria met: onset d+11 (2026-07-08 06:29 EDT), open"]
    assert lines(astct, "CRS course") == [
        "onset d+3 (2026-06-30 00:00 EDT); peak grade 2 d+4",
        "improved d+8 (2026-07-05 00:00 EDT); + 48 h (iec_hs.timing_after_improvement_hours): 2026-07-07 00:00 EDT",
        "re-escalated never", "resolved at the end of d+8 (2026-07-06 00:00 EDT)"]
    ferritin = lines(astct, "Ferritin")
    d11 = ferritin.index("d+11 2026-07-08 06:29 EDT 8,528 ng/mL: elevated (ULN 400, baseline 327: > 2 x ULN)")
    assert ferritin[d11 + 1] == ("    signal re-rise (>= 2 x post-peak nadir 3,413); timing holds: after CRS "
                                 "improvement + 48 h (from 2026-07-07 00:00 EDT) -> criteria met")
    # the day before: the nadir itself, timing already held, but no worsening rule fired
    assert ferritin[d11 - 1] == ("    no worsening rule fired: re-rise: < 2 x nadir 4,774 = 9,548; rapid rise: no "
                                 "earlier result within 24 h; new high: not above CRS-phase peak 9,876; timing "
                                 "holds: after CRS improvement + 48 h (from 2026-07-07 00:00 EDT) -> no status")
    # with the stored threshold it was judged against (here the LLN, 200, above the fixed 150)
    assert lines(astct, "Manifestations")[:3] == [
        "transaminases: found within 48 h of a suspected ferritin: ast 234 U/L (above x ULN; threshold 200 U/L)",
        "fibrinogen: found within 48 h of a suspected ferritin: fibrinogen 81 mg/dL (below max(fixed cut-off, "
        "LLN); threshold 200 mg/dL)",
        "cytopenia: found within 48 h of a suspected ferritin: anc 0.07 x10^9/L (worsening; threshold 1 x10^9/L)"]


def test_crs_with_high_ferritin_that_never_re_rose_says_why_not(sample_docs):
    astct = sample_docs["CW-0006"]["astct_iec_hs_2023"]
    assert (astct["verdict"], astct["windows"]) == ("none", [])
    assert astct["summary"] == ["not flagged: ferritin was elevated but no worsening rule fired at any result "
                                "(re-rise, rapid rise, new high: see each result)",
                                "closest to a re-rise once the timing held: d+9 2,295 ng/mL against 2 x nadir "
                                "2,595 = 5,190 (iec_hs.re_rise_factor)"]
    assert lines(astct, "Manifestations")[0] == "(no suspected ferritin result: manifestations cannot make " \
                                                "criteria met)"


def test_a_watch_says_the_timing_did_not_hold_and_why(sample_docs):
    astct = sample_docs["CW-0004"]["astct_iec_hs_2023"]
    assert astct["verdict"] == "watch"
    assert astct["summary"][1] == ("watch only: every ferritin signal came while the timing did not hold "
                                   "(CRS-associated hyperferritinemia, not an IEC-HS window)")
    ferritin = lines(astct, "Ferritin")
    d4 = ferritin.index("d+4 2026-09-02 06:17 EDT 5,637 ng/mL: elevated (ULN 400, baseline 289: > 2 x ULN)")
    assert ferritin[d4 + 1] == ("    signal rapid-rise (193 ng/mL/h >= 100); timing does not hold: CRS has not "
                                "improved yet -> watch")
    timing = [f["timing_reason"] for f in astct["ferritin"] if f["signal"]]
    assert set(timing) <= {"crs_not_improved", "within_improvement_hours"}
    # UCSF MAS-L: the same fast rise, but no companion result
    ucsf = sample_docs["CW-0004"]["ucsf_masl_2020"]
    assert ucsf["summary"] == ["not met: ferritin rise met; companion not met; rise with companion not evaluable "
                               "(needs both)"]
    assert lines(ucsf, "Items")[1] == ("companion: not met (lowest fibrinogen 317 mg/dL, highest LDH 1.56 x ULN; "
                                       "needs fibrinogen < 150 mg/dL (ucsf.fibrinogen_lt_mg_dl) or LDH > 2 x ULN "
                                       "(ucsf.ldh_x_uln))")


def test_hlh_2004_items_without_data_are_not_evaluable(sample_docs):
    hlh = sample_docs["CW-0001"]["hlh_2004"]
    assert (hlh["verdict"], hlh["day"]) == ("not_met", 19)
    assert hlh["summary"] == ["not met; closest d+19: 3 of 8 met, 4 evaluable; needs 5 (hlh_2004.criteria_required)"]
    states = {i["item"]: i["state"] for i in hlh["items"]}
    assert states == {"fever": "not_met", "splenomegaly": "unknown", "cytopenias": "met",
                      "triglycerides_or_fibrinogen": "met", "hemophagocytosis": "unknown", "nk_activity": "unknown",
                      "ferritin": "met", "scd25": "unknown"}
    assert "scd25: not evaluable (no data) (needs >= 2,400 U/mL (hlh_2004.scd25_ge_u_ml))" in lines(
        hlh, "Items on d+19")


def test_text_fits_a_terminal_and_masking_hides_ids_and_sources(sample_db, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CARTWATCH_MASK_KEY", "test-key")
    assert main(["explain", "CW-0001", "--db", str(sample_db)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("CW-0001, infusion CW-0001-I1 (axi-cel, infused 2026-06-27 11:15 EDT)\n")
    assert max(len(line) for line in text.splitlines()) <= 100
    for fmt in ("text", "json", "html"):
        assert main(["explain", "CW-0001", "--db", str(sample_db), "--format", fmt, "--mask-ids"]) == 0
        shown = capsys.readouterr().out
        assert "CW-0001" not in shown and "labs.csv" not in shown and "pt-" in shown, fmt
    # written to a file, masked output says so, as export, report and digest do
    for command in (["explain", "CW-0001", "--format", "html"], ["digest", "--format", "html"]):
        assert main([*command, "--db", str(sample_db), "--mask-ids", "--out", str(tmp_path / "m.html")]) == 0
        assert capsys.readouterr().out.endswith(f" -> {tmp_path / 'm.html'} (ids masked)\n"), command
    assert main(["explain", "CW-0001", "--db", str(sample_db), "--format", "html"]) == 0
    html = capsys.readouterr().out
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html and "&gt;= 2 x post-peak nadir" in html


def test_html_escapes_what_the_data_says(sample_docs):
    from cartwatch.explain import render

    doc = {"patient_id": "<b>P</b>", "infusion_id": "I&1", "product": "<script>x</script>", "site_tz": "UTC",
           "infused_at": "2026-03-01T10:00:00+00:00", "as_of": "2026-03-05T00:00:00+00:00",
           "rules_version": "2026.12.0", "rules_released": True, "other_infusions": [],
           "criteria_sets": [sample_docs["CW-0004"]["astct_iec_hs_2023"]]}
    html = render(doc, "html")
    assert "<script" not in html and "&lt;script&gt;x&lt;/script&gt;" in html and "&lt;b&gt;P&lt;/b&gt;" in html
    assert "<li>d+4 2026-09-02 06:17 EDT 5,637 ng/mL: elevated (ULN 400, baseline 289: &gt; 2 x ULN)<br>signal " \
           "rapid-rise (193 ng/mL/h &gt;= 100); timing does not hold: CRS has not improved yet -&gt; watch</li>" in html


def test_bad_patient_infusion_or_as_of_is_one_line_and_status_2(sample_db, capsys, monkeypatch):
    for args, said in ((["NOBODY"], "cartwatch: patient 'NOBODY': no infusion of this patient in the stored "
                                     "evaluation as of 2026-11-22T00:00:00+00:00\n"),
                       (["cw-0001 "], "cartwatch: patient 'cw-0001 ': no infusion of this patient in the stored "
                                      "evaluation as of 2026-11-22T00:00:00+00:00 (did you mean 'CW-0001'?)\n"),
                       (["CW-0001", "--infusion", "CW-0002-I1"], "cartwatch: --infusion 'CW-0002-I1': not an "
                                                                  "infusion of patient 'CW-0001' (its infusions: "
                                                                  "CW-0001-I1)\n"),
                       (["CW-0001", "--as-of", "yesterday"], None)):
        assert main(["explain", *args, "--db", str(sample_db)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and (said is None or err == said)
    monkeypatch.setenv("CARTWATCH_MASK_KEY", "test-key")
    assert main(["explain", "CW-0001", "--infusion", "CW-0002-I1", "--db", str(sample_db), "--mask-ids"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cartwatch: --infusion 'inf-") and "CW-0" not in err
    # an id that is a letter of the line masks that id only, not every "e" of the line
    assert main(["explain", "e", "--db", str(sample_db), "--mask-ids"]) == 2
    assert capsys.readouterr().err == (f"cartwatch: patient '{mask('e')}': no infusion of this patient in the "
                                       "stored evaluation as of 2026-11-22T00:00:00+00:00\n")


def test_as_of_explains_what_the_nightly_said_then(sample_db, tmp_path):
    db = tmp_path / "copy.duckdb"
    shutil.copy(sample_db, db)
    built = lambda: duckdb.connect(str(db), read_only=True).execute(    # noqa: E731
        "SELECT built_at FROM meta.build_state").fetchall()
    before = built()
    # the moment the store already holds: read, not evaluated again
    assert explanation(db, tmp_path, "CW-0001", "--as-of", "2026-11-22T00:00:00Z")["as_of"] == \
        "2026-11-22T00:00:00+00:00"
    assert built() == before
    # day +10 of CW-0001, before ferritin re-rose: CRS-associated watch only
    doc = explanation(db, tmp_path, "CW-0001", "--as-of", "2026-07-07T12:00:00-04:00")
    astct = doc["criteria_sets"][0]
    assert doc["as_of"] == "2026-07-07T16:00:00+00:00"
    assert astct["verdict"] == "watch" and astct["windows"][0]["onset_day"] == 5
    assert astct["ferritin"][-1]["day"] == 10
    assert built() == before      # evaluated in a scratch database: the store keeps the nightly's


def test_the_stored_reasons_agree_with_the_stored_decisions_on_every_sample_row(sample_db):
    con = duckdb.connect(str(sample_db), read_only=True)
    try:
        # each day's item states add up to its met and evaluable counts (NK activity never known)
        for name, items in (("hlh_2004", 8), ("hlh_94", 5)):
            days = con.execute(f"SELECT {name}_met_count, {name}_evaluable_count, {name}_items "
                               "FROM derived.hlh_criteria_daily").fetchall()
            assert days and all(
                (sum(v == "met" for v in states.values()), sum(v != "unknown" for v in states.values()),
                 len(states)) == (met, known, items) for met, known, states in days), name
        # the timing reason names a holding reason exactly when the timing holds
        reasons = con.execute("""
            SELECT timing_holds, list(DISTINCT timing_reason ORDER BY timing_reason)
            FROM derived.ferritin_trajectory WHERE timing_reason IS NOT NULL GROUP BY ALL ORDER BY 1""").fetchall()
    finally:
        con.close()
    assert reasons == [(False, ["crs_not_improved", "no_crs_yet", "within_improvement_hours"]),
                       (True, ["after_improvement", "no_crs_by_day", "re_escalated"])]


def test_the_sample_in_docs_explain_md_is_what_explain_prints(sample_db, capsys):
    from sample_paths import REPO

    shown = re.findall(r"```\n(CW-0004.*?)```", (REPO / "docs" / "explain.md").read_text(encoding="utf-8"), re.S)[0]
    assert main(["explain", "CW-0004", "--db", str(sample_db)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line for line in shown.splitlines() if line.strip() != "..." and line not in printed] == []
