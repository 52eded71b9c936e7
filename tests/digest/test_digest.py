"""The digest: what is new, escalated, still open or resolved; rendering; masking; data quality."""

from __future__ import annotations

import json
import re
from datetime import date

from cartwatch.digest import make_digest, pager_lines, render
from cartwatch.digest.ids import mask
from cartwatch.digest.state import classify
from cartwatch.incremental import evaluate
from cartwatch.store import open_store
from opsdata import at, utc

NY = "America/New_York"


def window(status, end_at=None, onset="2026-03-13T10:00:00Z", cset="astct_iec_hs_2023"):
    return {"patient_id": "P1", "infusion_id": "I1", "criteria_set": cset, "status": status, "onset_at": onset,
            "end_at": end_at, "evidence": []}


def test_a_window_is_reported_once_then_only_when_it_escalates_or_resolves():
    n1, n2, n3, n4, n5 = (utc(2026, 3, d, 6) for d in (14, 15, 16, 17, 18))
    s1, state = classify([window("suspected")], {}, n1)
    assert [len(s1[k]) for k in ("new", "escalated", "still_open", "resolved")] == [1, 0, 0, 0]
    s2, state = classify([window("suspected")], state, n2)
    assert [len(s2[k]) for k in ("new", "escalated", "still_open", "resolved")] == [0, 0, 1, 0]
    s3, state = classify([window("criteria_met")], state, n3)
    assert s3["escalated"][0]["previous_status"] == "suspected"
    s4, state = classify([window("criteria_met", end_at="2026-03-16T12:00:00Z")], state, n4)
    assert len(s4["resolved"]) == 1
    s5, state = classify([window("criteria_met", end_at="2026-03-16T12:00:00Z")], state, n5)
    assert all(not s5[k] for k in s5)                                   # not repeated


def test_withdrawn_and_short_lived_windows():
    _, state = classify([window("suspected")], {}, utc(2026, 3, 14))
    sections, state = classify([], state, utc(2026, 3, 15))
    assert sections["resolved"][0]["withdrawn"] is True
    # opened and closed between two digests: reported once, as new, and not later as resolved
    short = window("met", end_at="2026-03-15T01:00:00Z", onset="2026-03-14T20:00:00Z", cset="hscore")
    sections, state = classify([short], state, utc(2026, 3, 15, 6))
    assert sections["new"][0]["open"] is False
    sections, _ = classify([short], state, utc(2026, 3, 16, 6))
    assert not any(sections.values())


def digest_doc(cohort_db, rules, night=date(2026, 3, 15)):
    con = open_store(cohort_db)
    for d in (date(2026, 3, 14), night):
        as_of = at(d, 2)
        evaluate(con, rules, as_of=as_of, as_loaded=False, site_tz=NY)
        doc = make_digest(con, rules, as_of=as_of, as_loaded=False, stream="nightly", site_tz=NY)
    return con, doc


def test_rendered_digest_shows_evidence_trend_plot_and_pager(cohort_db, rules, engine):
    con, doc = digest_doc(cohort_db, rules)
    assert doc["counts"]["escalated"] == 1                               # suspected -> criteria met
    md = render(doc, "md")
    for title in ("## Pager", "## New since the last digest", "## Escalated", "## Still open", "## Resolved",
                  "## Data quality"):
        assert title in md
    assert "re-rise" not in md or "x nadir" in md
    assert not doc["data_quality"]["quarantined"] and md.index("## Resolved") < md.index("## Data quality")
    # one row per manifestation: the worst value, its time, the threshold and how many more results
    assert re.search(r"\| re-rise \(ferritin\) \| [\d,]+ ng/mL \| 2026-03-1\d \d\d:\d\d EDT \| "
                     r"2 x nadir, iec_hs\.re_rise_factor \| timeline \| 1 \|", md)      # no nadir note: no number
    assert "Ferritin trend:" in md and "x nadir" in md and "x baseline" in md
    lines = pager_lines(doc)
    assert lines and all(len(line) < 140 for line in lines)
    html = render(doc, "html")
    assert "<th>manifestation<th>worst" in html and "<details><summary>All 2 results behind these windows</summary>" in html
    plots = re.findall(r'<svg class="pl".*?</svg>', html, re.S)
    assert len(plots) == 1 and "<img" not in html
    body = json.loads(render(doc, "json"))
    assert body["pager"] == lines and body["sections"]["escalated"][0]["status"] == "criteria_met"


def test_masked_outputs_carry_no_patient_identifier(cohort_db, rules, engine):
    _, doc = digest_doc(cohort_db, rules)
    ids = {p["patient_id"] for p in doc["patients"]}
    assert ids
    for fmt in ("md", "html", "json"):
        text = render(doc, fmt, mask_ids=True)
        assert not any(re.search(rf"\b{i}\b", text) for i in ids), fmt
        assert mask(sorted(ids)[0]) in text
    # each place an id shows: the cards, the plots' titles, the pager, the JSON's cards and patients
    pid = mask(sorted(ids)[0])
    html = render(doc, "html", mask_ids=True)
    assert f'data-patient="{pid}"' in html and f"<h3>{pid} (" in html
    assert f'<text x="44" y="12">{pid}: results by day post-infusion</text>' in html
    assert re.search(rf'<ul class="pager"><li>{pid} axi-cel d\+\d+: IEC-HS', html)
    body = json.loads(render(doc, "json", mask_ids=True))
    assert body["masked"] is True and body["pager"][0].startswith(f"{pid} axi-cel")
    assert {c["patient_id"] for c in body["cards"]} == {p["patient_id"] for p in body["patients"]} == {pid}
    assert all(c["infusion_id"].startswith("inf-") for c in body["cards"])


def test_data_quality_counts_quarantine_reasons_and_silent_feeds(cohort_db, rules, engine):
    con = open_store(cohort_db)
    con.execute("INSERT INTO quarantine.rows VALUES ('/in/labs.csv', 3, 'labs', 'unit ''mg/L'' not convertible (row 3)', "
                "'x', TIMESTAMPTZ '2026-04-20 01:00:00-04', 's'), ('/in/labs.csv', 4, 'labs', "
                "'unit ''g'' not convertible (row 4)', 'y', TIMESTAMPTZ '2026-04-20 01:00:00-04', 's')")
    as_of = at(date(2026, 4, 20), 2)          # the cohort's last data are days old by then
    evaluate(con, rules, as_of=as_of, as_loaded=False, site_tz=NY)
    doc = make_digest(con, rules, as_of=as_of, as_loaded=False, stream="nightly", site_tz=NY)
    dq = doc["data_quality"]
    assert dq["quarantined"] == [{"feed": "labs", "reason": "unit … not convertible …", "rows": 2}]
    assert {s["feed"] for s in dq["silent_feeds"]} >= {"labs", "vitals"}
    md = render(doc, "md")
    assert "Feeds silent longer than 36 h" in md and "unit … not convertible" in md
    # rows were quarantined: the section comes before the cards, right after the pager
    assert md.index("## Data quality") < md.index("## Patients") < md.index("## New since the last digest")
    html = render(doc, "html")
    assert html.index('id="data-quality"') < html.index('id="patients"')


def test_digest_command_writes_json_against_the_nightly_state(cohort_db, tmp_path, engine):
    from flows.cli import main

    out = tmp_path / "d.json"
    assert main(["digest", "--db", str(cohort_db), "--as-of", "2026-03-15T02:00:00-04:00", "--format", "json",
                 "--out", str(out), "--mask-ids"]) == 0
    body = json.loads(out.read_text())
    assert body["masked"] is True and body["counts"]["new"] >= 1


def test_plots_are_drawn_for_the_most_severe_cards_only(cohort_db, rules, engine, monkeypatch):
    """A first digest over a long history can hold hundreds of alerts: plots are drawn for the
    PLOTS_DRAWN most severe patient cards, the other cards say why theirs is missing."""
    import importlib

    from cartwatch.digest.state import rank

    # the module: the package exports a function of the same name
    render_html = importlib.import_module("cartwatch.digest.render_html")

    con = open_store(cohort_db)
    as_of = at(date(2026, 4, 10), 2)          # every window of the cohort is new in this first digest
    evaluate(con, rules, as_of=as_of, as_loaded=False, site_tz=NY)
    monkeypatch.setattr(importlib.import_module("cartwatch.digest.document"), "PLOTS_DRAWN", 1)
    doc = make_digest(con, rules, as_of=as_of, as_loaded=False, stream="nightly", site_tz=NY)
    # the stored document keeps plot data for the plotted card only
    assert [p["patient_id"] for p in doc["patients"] if "plot" in p] == [doc["cards"][0]["patient_id"]]
    cards = {(w["patient_id"], w["infusion_id"]): w["status"] for s in ("new", "escalated")
             for w in doc["sections"][s] if rank(w["status"]) >= 2}
    assert len(cards) >= 2 and len(set(cards.values())) >= 1
    monkeypatch.setattr(render_html, "PLOTS_DRAWN", 1)
    html = render(doc, "html")
    assert html.count('<svg class="pl"') == 1
    assert html.count("Plot not drawn") == len(cards) - 1
    plotted = re.search(r'data-patient="([^"]+)"((?!data-patient=).)*<svg class="pl"', html, re.S).group(1)
    assert rank(cards[next(k for k in cards if k[0] == plotted)]) == max(rank(s) for s in cards.values())


def test_one_card_per_patient_with_course_verdicts_and_pager_line(cohort_db, rules, engine):
    """The escalated sample patient: one card, one pager line (exact), CRS labelled as CRS, the
    IEC-HS onset day and date, and every criteria set's verdict side by side."""
    _, doc = digest_doc(cohort_db, rules)
    assert [(c["patient_id"], c["urgency"], c["paged"]) for c in doc["cards"]] == [("P001", "escalated", True)]
    card = doc["cards"][0]
    assert card["iec_hs"]["onset_day"] == 12 and card["iec_hs"]["onset_date"] == "2026-03-13"
    assert card["changes"] == ["IEC-HS: suspected -> criteria met"]
    assert pager_lines(doc) == ["P001 axi-cel d+14: IEC-HS criteria met onset d+12 (was suspected) | "
                                "ferritin 2,841 ng/mL d+13 | CRS G1 d+2 (d+2..d+5) | no other set met"]
    md = render(doc, "md")
    assert "1 patient in this digest, 1 paged (one pager line each)" in md
    assert "### P001 (axi-cel, infused 2026-03-01, day +14): escalated" in md
    assert "- CRS course: CRS onset d+2, peak G1 d+2, resolved d+5" in md
    assert ("- Criteria sets (day +13): IEC-HS criteria met; CARTOX not met (ferritin peak 3,886 ≤ 10,000); "
            "Shah 2020 not met (ferritin peak 3,886 ≤ 100,000); UCSF MAS-L not met; HLH-94 not evaluable (no data); "
            "HLH-2004 not evaluable (no data); HScore not evaluable (no data)\n") in md
    masked_line = pager_lines(mask_doc(doc))[0]
    assert masked_line.startswith(mask("P001") + " axi-cel d+14:") and "P001" not in masked_line


def mask_doc(doc):
    from cartwatch.digest.ids import masked

    return masked(doc, True)


def test_cards_are_ordered_by_urgency_and_pager_lines_are_bounded():
    from cartwatch.digest.document import cards, pager_lines as lines

    def w(pid, status, **kw):
        return dict(window(status, **kw), patient_id=pid, infusion_id=pid + "-1")

    long_product = "x" * 60
    doc = {"sections": {"new": [w("W", "watch"), w("S", "suspected"), w("M", "criteria_met")],
                        "escalated": [dict(w("E", "suspected"), previous_status="watch")],
                        "still_open": [dict(w("O", "suspected"), previous_status="suspected")],
                        "resolved": [dict(w("R", "suspected"), previous_status="suspected")]},
           "patients": [{"patient_id": "S", "infusion_id": "S-1", "product": long_product, "day_now": 123,
                         "crs": {"episode": {"onset_day": 1, "peak_grade": 4, "peak_day": 3, "resolved_day": 19}},
                         "ferritin": {"unit": "ng/mL", "latest": {"value": 123456.0, "day": 120}}}]}
    doc["cards"] = cards(doc)
    assert [(c["patient_id"], c["urgency"]) for c in doc["cards"]] == [
        ("M", "new criteria met"), ("E", "escalated"), ("S", "new suspected"), ("O", "still open"),
        ("W", "watch"), ("R", "resolved")]
    out = lines(doc)
    assert [line.split()[0] for line in out] == ["M", "E", "S"]             # paged: new/escalated >= suspected
    assert all(len(line) < 140 for line in out)
    assert "CRS" not in out[2] and out[2].endswith("no other set met")      # the CRS course goes first


def test_feed_text_on_cards_and_pager_is_escaped(cohort_db, rules, engine):
    _, doc = digest_doc(cohort_db, rules)
    doc["patients"][0]["product"] = "<b>axi|cel</b>"
    doc["cards"][0]["product"] = "<b>axi|cel</b>"
    md = render(doc, "md")
    assert "<b>" not in md and "\\<b\\>axi|cel\\</b\\>" in md
    html = render(doc, "html")
    assert "<b>axi" not in html and "&lt;b&gt;axi|cel&lt;/b&gt;" in html


def test_evidence_summary_worst_value_threshold_in_the_results_unit_and_labels():
    from cartwatch.digest.render_md import summary_threshold, summary_value
    from cartwatch.digest.select import summarize_evidence

    def item(analyte, value, unit, at, threshold, **kw):
        return dict(rule=kw.pop("rule", "coagulation"), analyte=analyte, value=value, unit=unit, at=at,
                    source=f"labs.csv:{at}", threshold=threshold, **kw)

    x_uln = {"rule": "iec_hs.coagulation_x_uln", "value": 1, "unit": "x ULN"}
    items = [item("inr", 1.3, "{ratio}", "1", x_uln, uln=1.2), item("inr", 1.55, "{ratio}", "2", x_uln, uln=1.2),
             item("inr", 1.4, "{ratio}", "3", x_uln, uln=1.2),
             item("platelets", 30.0, "10*9/L", "1", {"rule": "iec_hs.platelets_lt", "value": 50, "unit": "10*9/L"},
                  rule="cytopenia"),
             item("platelets", 7.0, "10*9/L", "2", {"rule": "iec_hs.platelets_lt", "value": 50, "unit": "10*9/L"},
                  rule="cytopenia"),
             item("ferritin", 11322.0, "ng/mL", "4", {"rule": "iec_hs.re_rise_factor", "value": 2, "unit": "x nadir"},
                  rule="re_rise", detail="post-peak nadir 3413.0"),
             item("temperature", 39.2, "Cel", "5", None, rule="hscore.temperature"),
             item("hemophagocytosis", 1.0, None, "6", None, rule="hlh_2004.hemophagocytosis")]
    found = {s["analyte"]: s for s in summarize_evidence(items)}
    inr, plt, fer = found["inr"], found["platelets"], found["ferritin"]
    assert (inr["value"], inr["at"], inr["more"], inr["threshold_value"]) == (1.55, "2", 2, 1.2)
    assert (plt["value"], plt["more"], plt["threshold_value"]) == (7.0, 1, 50)          # lowest is worst
    assert fer["threshold_value"] == 6826.0
    assert summary_value(inr) == "INR 1.55" and summary_threshold(inr) == "1.2 (1 x ULN, iec_hs.coagulation_x_uln)"
    assert summary_value(plt) == "7 x10^9/L" and summary_threshold(plt) == "50 x10^9/L (iec_hs.platelets_lt)"
    assert summary_threshold(fer) == "6,826 ng/mL (2 x nadir, iec_hs.re_rise_factor)"
    assert summary_value(found["temperature"]) == "39.2 °C"
    assert summary_value(found["hemophagocytosis"]) == "hemophagocytosis: documented"


def test_a_still_open_window_without_data_beyond_the_rules_limit_is_no_recent_data(rules):
    """operations.no_recent_data_hours (72 h): a result exactly that old is recent, a second more is not."""
    from datetime import datetime, timedelta, timezone

    from cartwatch.digest.document import cards, no_recent_data
    from cartwatch.digest.render_md import render_md

    limit = rules.value("operations.no_recent_data_hours")
    assert limit == 72
    as_of = datetime(2026, 3, 20, 6, tzinfo=timezone.utc)

    def doc_with(last):
        doc = {"as_of": "2026-03-20T06:00:00Z", "no_recent_data_hours": limit, "rules_version": "r",
               "monitored_episodes": 1, "since": "2026-03-19T06:00:00Z",
               "counts": {"new": 0, "escalated": 0, "still_open": 1, "resolved": 0},
               "sections": {"new": [], "escalated": [], "resolved": [],
                            "still_open": [dict(window("suspected"), previous_status="suspected", open=True)]},
               "patients": [{"patient_id": "P1", "infusion_id": "I1", "product": "axi-cel", "day_now": 19,
                             "site_tz": "UTC", "last_result_at": last}],
               "data_quality": {"files": [], "quarantined": [], "silent_feeds": [], "silence_limit_hours": 36}}
        doc["cards"] = cards(doc)
        return doc

    at_limit = (as_of - timedelta(hours=limit)).isoformat().replace("+00:00", "Z")
    past_limit = (as_of - timedelta(hours=limit, seconds=1)).isoformat().replace("+00:00", "Z")
    assert not no_recent_data(at_limit, "2026-03-20T06:00:00Z", limit)
    assert no_recent_data(past_limit, "2026-03-20T06:00:00Z", limit) and no_recent_data(None, "2026-03-20T06:00:00Z", 72)
    recent, stale = doc_with(at_limit), doc_with(past_limit)
    assert recent["cards"][0]["urgency"] == "still open" and not recent["cards"][0]["no_recent_data"]
    assert stale["cards"][0]["urgency"] == "no recent data"
    md = render_md(stale)
    assert "- Last result: 2026-03-17 05:59 UTC (no recent data: none for more than 72 h" in md
    assert "## Still open\n\nNone.\n\nNo recent data (1): open windows of episodes without a lab result for more than 72 h" in md
    assert "No recent data" not in render_md(recent)


def test_monitoring_gaps_at_risk_episodes_and_the_gap_boundary(rules):
    """operations.monitoring_gap_hours (24 h): measured exactly 24 h ago is not a gap, a second more is."""
    from datetime import datetime, timedelta, timezone

    from cartwatch.digest.render_md import gap_line
    from cartwatch.digest.select import at_risk, gaps_of

    limit, late = rules.value("operations.monitoring_gap_hours"), rules.value("iec_hs.late_onset_day")
    assert limit == 24 and late == 29
    as_of = datetime(2026, 3, 20, 6, tzinfo=timezone.utc)

    def ago(hours, seconds=0):
        return (as_of - timedelta(hours=hours, seconds=seconds)).isoformat().replace("+00:00", "Z")

    last = {"ferritin": ago(24), "fibrinogen": ago(24, 1), "ast": ago(30), "alt": ago(2)}
    assert gaps_of(last, as_of, limit) == [{"test": "fibrinogen", "last_at": ago(24, 1), "hours": 24.0}]
    assert [g["test"] for g in gaps_of({}, as_of, limit)] == ["ferritin", "fibrinogen", "transaminases"]
    assert at_risk(40, None, late, "watch") == "IEC-HS watch"
    assert at_risk(10, 6, late, None) == "after CRS improvement (day +6)"
    assert at_risk(29, 6, late, None) is None and at_risk(5, 6, late, None) is None and at_risk(10, None, late, None) is None
    gap = {"patient_id": "P1", "product": "axi-cel", "day_now": 10, "site_tz": "UTC", "reason": "IEC-HS watch",
           "overdue": gaps_of({"ferritin": ago(30)}, as_of, limit)}
    assert gap_line(gap) == ("P1 (axi-cel, day +10; IEC-HS watch): ferritin last 2026-03-19 00:00 UTC (30 h ago); "
                             "fibrinogen never measured; transaminases never measured")


def test_one_card_and_one_pager_line_per_patient_whatever_its_windows():
    """Three windows of one patient (IEC-HS new criteria met, HScore new met, an IEC-HS watch that
    resolved) and one of another: two cards, each patient once in the pager, the other sets that
    agree named on the patient's one line."""
    from cartwatch.digest.document import cards, pager_lines as lines

    def w(pid, cset, status, onset, **kw):
        return dict(window(status, cset=cset, onset=onset, **kw), patient_id=pid, infusion_id=pid + "-1",
                    onset_day=int(onset[8:10]) - 1)

    statuses = {"day": 14, "hscore_min": 190.0, "hscore_max": 210.0, "hscore_cutoff": 169.0,
                "results": {"ferritin": 3, "fibrinogen": 2}, "ferritin_peak": 5000.0,
                "cartox_ferritin_gt": 10000.0, "shah_ferritin_gt": 100000.0}
    doc = {"sections": {"new": [w("A", "astct_iec_hs_2023", "criteria_met", "2026-03-13T10:00:00Z"),
                                w("A", "hscore", "met", "2026-03-13T11:00:00Z"),
                                w("B", "astct_iec_hs_2023", "suspected", "2026-03-12T10:00:00Z")],
                        "escalated": [], "still_open": [],
                        "resolved": [dict(w("A", "astct_iec_hs_2023", "watch", "2026-03-05T10:00:00Z"),
                                          previous_status="watch")]},
           "patients": [{"patient_id": "A", "infusion_id": "A-1", "product": "axi-cel", "day_now": 14,
                         "statuses": statuses, "crs": {"episode": {"onset_day": 2}, "days_with_crs": [2]}},
                        {"patient_id": "B", "infusion_id": "B-1", "product": "liso-cel", "day_now": 20}]}
    doc["cards"] = cards(doc)
    assert [(c["patient_id"], c["urgency"], c["paged"]) for c in doc["cards"]] == [
        ("A", "new criteria met", True), ("B", "new suspected", True)]
    assert doc["cards"][0]["changes"] == ["IEC-HS criteria met: new", "HScore met: new", "IEC-HS watch: resolved"]
    assert lines(doc) == ["A axi-cel d+14: IEC-HS criteria met onset d+12 | CRS (d+2..) | also met: HScore",
                          "B liso-cel d+20: IEC-HS suspected onset d+11 | CRS not evaluated | no other set met"]


def test_verdicts_tell_not_met_from_not_evaluable_at_the_cut_offs():
    """CARTOX and Shah: a ferritin peak exactly at the cut-off is not met; above it, not evaluable
    until hemophagocytosis was assessed; no ferritin: not evaluable; CARTOX without CRS: not met.
    UCSF MAS-L needs two ferritin results and a fibrinogen or LDH to be judged."""
    from cartwatch.digest.document import verdicts

    def judged(peak=None, ferritin=2, hemophagocytosis=False, crs=True, fibrinogen=1, phase_peak="peak", **st):
        statuses = dict(st, results={"ferritin": ferritin, "fibrinogen": fibrinogen}, ferritin_peak=peak,
                        cartox_ferritin_gt=10000.0, shah_ferritin_gt=100000.0,
                        hemophagocytosis_assessed=hemophagocytosis)
        p = {"statuses": statuses, "ferritin": {"crs_phase_peak": peak if phase_peak == "peak" else phase_peak},
             "crs": {"episode": {"onset_day": 2}, "days_with_crs": [2]} if crs else {"episode": {}, "days_with_crs": []}}
        return {v["set"]: (v["verdict"], v["text"]) for v in verdicts(p, None)}

    at_cut = judged(peak=10000.0)
    assert at_cut["cartox_2017"] == ("not met", "CARTOX not met (ferritin peak 10,000 ≤ 10,000)")
    above = judged(peak=10001.0)
    assert above["cartox_2017"] == ("not evaluable", "CARTOX not evaluable (ferritin peak 10,001; "
                                                     "no hemophagocytosis assessment)")
    assert judged(peak=10001.0, hemophagocytosis=True)["cartox_2017"][0] == "not met"
    # no ferritin in the CRS phase: the episode's peak decides 'not met' only at or below the cut-off
    assert judged(peak=9000.0, phase_peak=None)["cartox_2017"][0] == "not met"
    assert judged(peak=20000.0, phase_peak=None)["cartox_2017"] == ("not evaluable",
                                                                    "CARTOX not evaluable (no ferritin to judge)")
    assert judged(peak=100001.0)["shah_2020"][0] == "not evaluable"
    assert judged(peak=100000.0)["shah_2020"][0] == "not met"
    assert judged(peak=20000.0, crs=False)["cartox_2017"] == ("not met", "CARTOX not met (no CRS)")
    none = judged(ferritin=0)
    assert none["shah_2020"] == ("not evaluable", "Shah 2020 not evaluable (no ferritin to judge)")
    assert none["astct_iec_hs_2023"] == ("not evaluable", "IEC-HS not evaluable (no ferritin)")
    assert judged(peak=500.0, ferritin=1)["ucsf_masl_2020"] == ("not evaluable",
                                                                "UCSF MAS-L not evaluable (no two ferritin results)")
    assert judged(peak=500.0, fibrinogen=0)["ucsf_masl_2020"][1] == "UCSF MAS-L not evaluable (no fibrinogen or LDH)"
    assert judged(peak=500.0)["ucsf_masl_2020"] == ("not met", "UCSF MAS-L not met")
    assert judged(peak=500.0, ucsf_masl_2020="met")["ucsf_masl_2020"] == ("met", "UCSF MAS-L met")


def test_a_censored_result_keeps_its_comparator():
    from cartwatch.digest.render_html import _value
    from cartwatch.digest.render_md import summary_value

    assert summary_value({"analyte": "ferritin", "value": 100000.0, "comparator": ">", "unit": "ng/mL"}) == \
        ">100,000 ng/mL"
    assert summary_value({"analyte": "inr", "value": 1.55, "comparator": None, "unit": "{ratio}"}) == "INR 1.55"
    assert _value({"analyte": "ferritin", "value": 100000.0, "comparator": ">", "unit": "ng/mL"}) == ">100,000"
    assert _value({"analyte": "hemophagocytosis", "value": 1.0}) == "documented"


def test_manifestation_labels_and_thresholds_read_as_a_clinician_writes_them():
    from cartwatch.digest.render_md import manifestation_label
    from cartwatch.digest.select import threshold_text
    assert [manifestation_label(r) for r in ("iec_hs.re_rise_factor", "cartox.fever_c", "hlh_2004.anc_lt",
                                             "ucsf_masl.rise_ng_ml_per_hour", "iec_hs.rapid_rise_ng_ml_per_hour")] \
        == ["re-rise", "fever", "anc", "rise rate", "rapid rise"]
    assert threshold_text({"value": 0.5, "unit": "fraction"}) == "50%"
    assert threshold_text({"value": 5, "unit": "count"}) == "5"
    assert threshold_text({"value": 38.5, "unit": "Cel"}) == "38.5 Cel"
    assert threshold_text({"value": None, "unit": "Cel"}) is None


def test_markdown_card_lists_a_scores_inputs_on_one_line_as_the_html_does():
    """From the trial of `make demo`: the Markdown card put HScore's inputs in the evidence table
    (source 'unknown', 'cutoff (HScore (highest))', 'ast', a blank organomegaly row) while the HTML
    card listed them on one line; and a new high's threshold read 'CRS-phase peak 6964.0'."""
    from cartwatch.digest.render_html import _summary
    from cartwatch.digest.render_md import summary_table
    from cartwatch.digest.select import summarize_evidence

    cutoff = {"rule": "hscore.cutoff", "value": 169, "unit": "points"}
    items = [dict(rule="hscore.cutoff", analyte="hscore_max", value=268.0, unit="points", at="2026-07-08T10:29:00Z",
                  source="derived.hscore_daily", threshold=cutoff),
             dict(rule="hscore.ast", analyte="ast", value=234.0, unit="U/L", at="2026-07-08T10:29:00Z",
                  source="labs.csv:205", threshold=None),
             dict(rule="hscore.hemophagocytosis", analyte="hemophagocytosis", value=None, unit=None, at=None,
                  source="unknown", threshold=None),
             dict(rule="iec_hs.new_high", analyte="ferritin", value=23336.0, unit="ng/mL",
                  at="2026-09-29T04:26:00Z", source="labs.csv:7065", threshold=None, detail="CRS-phase peak 6964.0"),
             dict(rule="iec_hs.new_high", analyte="ferritin", value=20000.0, unit="ng/mL",
                  at="2026-09-30T04:26:00Z", source="labs.csv:7080", threshold=None, detail="CRS-phase peak 6964.0")]
    w = {"evidence_summary": summarize_evidence(items), "evidence": items}
    assert summary_table(w, NY) == [
        "| manifestation | worst | at | threshold | source | more |", "|---|---:|---|---|---|---:|",
        "| HScore (highest) | 268 points | 2026-07-08 06:29 EDT | 169 points (hscore.cutoff) | derived.hscore\\_daily | 0 |",
        "| new high (ferritin) | 23,336 ng/mL | 2026-09-29 00:26 EDT | CRS-phase peak 6,964 ng/mL | labs.csv:7065 | 1 |",
        "",
        "Inputs: AST 234 U/L (2026-07-08 06:29 EDT, labs.csv:205); hemophagocytosis no data",
        "", "5 results in all (the HTML and JSON digests list each)."]
    html = _summary(w, {"infused_at": "2026-06-27T15:15:00Z", "site_tz": NY})
    assert "<td>HScore (highest)<td class=num>268 points" in html
    assert "<td>CRS-phase peak 6,964 ng/mL<td>labs.csv:7065" in html
    assert html.endswith("<p class=f>Inputs: AST 234 U/L (d+11 06:29, labs.csv:205); hemophagocytosis no data</p>")


def test_a_finding_nobody_documented_is_no_data_not_documented():
    """From the trial: CW-0001's HScore inputs read 'hemophagocytosis documented; immunosuppression
    documented' while the sample documents neither: the engine writes an input without data as an
    item with no value, time or source ('unknown'), counted low and high."""
    from cartwatch.digest.render_md import summary_value
    from cartwatch.digest.select import summarize_evidence

    unknown = dict(rule="hscore.hemophagocytosis", analyte="hemophagocytosis", value=None, unit=None, at=None,
                   source="unknown")
    documented = dict(unknown, value=1.0, at="2026-10-01T12:00:00+00:00", source="events.csv:91")
    absent = dict(documented, value=0.0)
    organs = dict(rule="hscore.organomegaly", analyte="organomegaly", value=None, unit=None, at=None, source="unknown")
    assert [summary_value(s) for s in summarize_evidence([unknown]) + summarize_evidence([documented])
            + summarize_evidence([absent]) + summarize_evidence([organs])] == [
        "hemophagocytosis: no data", "hemophagocytosis: documented", "hemophagocytosis: documented absent",
        "organomegaly: no data"]


def test_fibrinogen_judged_against_its_lln_shows_the_lln():
    """From the trial: the sample's fibrinogen LLN is 200 mg/dL, above the fixed 150; the engine judged
    'below max(fixed cut-off, LLN)' = 200 (as explain says) while the digest showed 150."""
    from cartwatch.digest.render_md import summary_threshold
    from cartwatch.digest.select import summarize_evidence

    cut_off = {"rule": "iec_hs.fibrinogen_lt_mg_dl", "value": 150, "unit": "mg/dL"}
    item = dict(rule="fibrinogen", analyte="fibrinogen", value=44.0, unit="mg/dL", at="2026-07-14T10:16:00Z",
                source="labs.csv:318", threshold=cut_off, detail="below max(fixed cut-off, LLN)")
    at_lln, lln_below, no_lln = (summarize_evidence([dict(item, lln=lln)])[0] for lln in (200.0, 120.0, None))
    assert summary_threshold(at_lln) == "200 mg/dL (LLN; cut-off 150 mg/dL, iec_hs.fibrinogen_lt_mg_dl)"
    assert summary_threshold(lln_below) == summary_threshold(no_lln) == "150 mg/dL (iec_hs.fibrinogen_lt_mg_dl)"
    ucsf = dict(item, threshold={"rule": "ucsf.fibrinogen_lt_mg_dl", "value": 150, "unit": "mg/dL"}, detail=None,
                lln=200.0)
    assert summary_threshold(summarize_evidence([ucsf])[0]) == "150 mg/dL (ucsf.fibrinogen_lt_mg_dl)"


def test_the_pager_says_also_met_only_beside_an_iec_hs_alert():
    def card(pid, status):
        return {"patient_id": pid, "infusion_id": f"{pid}-1", "product": "axi-cel", "day_now": 30, "paged": True,
                "iec_hs": {"status": status, "onset_day": 12 if status else None}, "crs": None,
                "verdicts": [{"set": "ucsf_masl_2020", "verdict": "met"}]}
    doc = {"cards": [card("A", "criteria_met"), card("B", None), card("C", "watch")],
           "sections": {"escalated": []}, "patients": []}
    assert [line.rsplit(" | ", 1)[1] for line in pager_lines(doc)] == [
        "also met: UCSF MAS-L", "met: UCSF MAS-L", "met: UCSF MAS-L"]
