"""The patient plot (inline SVG small multiples) on a hand-made patient: panels on one day axis,
markers where the course puts them, thresholds only within the data, today on or beyond the axis."""

from __future__ import annotations

import re

from cartwatch.digest.plot import LEFT, RIGHT, patient_svg


def patient(day_now: int = 20, ferritin_threshold: float = 800.0) -> dict:
    """Results on days 0..20: the x axis spans exactly 0..20, so day d sits at LEFT + d * 25.8 px."""
    days = range(0, 21, 2)
    return {
        "patient_id": "P-77", "day_now": day_now,
        "crs": {"days_with_crs": [2, 3, 4]},
        "ferritin": {"unit": "ng/mL", "thresholds": [
            {"label": "2 x ULN", "value": ferritin_threshold, "rule": "iec_hs.ferritin_elevated_x_uln"},
            {"label": "re-rise 2 x nadir", "value": 90_000.0, "rule": "iec_hs.re_rise_factor"}],
            "series": [{"x": d, "value": 300.0 * (1.4 ** d), "signal": "re_rise" if d == 12 else None} for d in days]},
        "plot": {
            "labs": {"fibrinogen": {"unit": "mg/dL", "points": [[d, 300.0 - 12 * d] for d in days],
                                    "thresholds": [{"label": "< 150", "value": 150.0, "rule": "iec_hs.fibrinogen_lt_mg_dl"}]},
                     "ast": {"unit": "U/L", "points": [[d, 30.0 + d] for d in days],
                             "thresholds": [{"label": "5 x ULN", "value": 200.0, "rule": "iec_hs.transaminase_x_uln"}]}},
            "iec_windows": [{"status": "criteria_met", "onset_x": 10.0, "met_x": 12.0, "end_x": None}],
            "crs": {"improved_x": 5.0, "risk_from_x": 7.0, "lag_hours": 48.0}},
    }


def px(day: float) -> int:
    return round(LEFT + day / 20 * (RIGHT - LEFT))


def test_panels_markers_and_thresholds_on_one_day_axis():
    svg = patient_svg(patient(day_now=16))
    assert svg.startswith('<svg class="pl"') and "<img" not in svg
    assert "P-77: results by day post-infusion" in svg                       # the title names the patient
    # four panels, the two without data say so
    assert svg.count('<rect class="ax"') == 4
    assert "platelets/ANC: no results" in svg and ">ferritin</tspan> (ng/mL), log" in svg
    # CRS days 2-4 shaded as one band [2, 5); the IEC-HS window from its onset to today's end
    assert f'<rect class="crs" x="{px(2)}" y="30" width="{px(5) - px(2)}"' in svg
    assert f'<rect class="iec" x="{px(10)}" y="30" width="{px(17) - px(10)}"' in svg
    # onset, criteria met, CRS improvement + 48 h, today (mid-day 16) as lines across every panel
    for cls, day in (("on", 10), ("met", 12), ("risk", 7), ("now", 16.5)):
        assert re.search(rf'<path class="{cls}" d="M{px(day)} 30V\d+"/>', svg), cls
    legend = re.findall(r"<text x=\"\d+\" y=\"\d+\">([^<]+)</text>", svg)
    for label in ("IEC-HS onset d+10", "criteria met d+12", "CRS improved + 48 h", "today d+16", "IEC-HS window",
                  "CRS (grade &gt;= 1)", "ferritin worsening signal", "ferritin 2 x ULN = 800", "fibrinogen &lt; 150"):
        assert label in legend, label
    # thresholds only where they lie within the data: ferritin 300..~2.4M holds 800 and 90,000;
    # AST 30..50 does not hold 200
    assert svg.count('class="th k-ferritin"') == 2 + 2            # two lines, a legend key each
    assert "ferritin re-rise 2 x nadir = 90,000" in legend
    assert 'class="th k-ast"' not in svg and "AST 5 x ULN" not in svg
    # the legend sits right of the panels: every legend text starts past RIGHT
    assert all(int(x) > RIGHT for x in re.findall(r'<text x="(\d+)" y="\d+">(?:IEC-HS|today|criteria)', svg))


def test_today_far_past_the_data_is_named_not_drawn_and_a_threshold_out_of_range_is_left_out():
    svg = patient_svg(patient(day_now=147, ferritin_threshold=10_000_000.0))
    assert "today d+147: beyond the axis" in svg and 'class="now"' not in svg
    assert "2 x ULN" not in svg and svg.count('class="th k-ferritin"') == 2      # the re-rise line and its key
    assert f'<rect class="iec" x="{px(10)}" y="30" width="{px(20) - px(10)}"' in svg   # open: to the axis end


def test_no_results_no_plot():
    assert patient_svg({"patient_id": "P", "ferritin": None, "plot": {"labs": {}}}) is None


def test_the_fibrinogen_line_is_the_threshold_the_engine_judges_by():
    # ASTCT 2023: fibrinogen < 150 mg/dL or < LLN, i.e. below the higher of the two
    from cartwatch.digest.plot_data import _thresholds
    from transforms.rules import load_rules
    rules = load_rules()
    cut = rules.value("iec_hs.fibrinogen_lt_mg_dl")
    assert _thresholds(rules, "fibrinogen", "mg/dL", None, cut + 50) == [
        {"label": f"< LLN {cut + 50:g}", "value": cut + 50, "rule": "iec_hs.fibrinogen_lt_mg_dl"}]
    assert _thresholds(rules, "fibrinogen", "mg/dL", None, cut) == [
        {"label": f"< {cut:g}", "value": cut, "rule": "iec_hs.fibrinogen_lt_mg_dl"}]
    assert _thresholds(rules, "fibrinogen", "mg/dL", None, None)[0]["value"] == cut
    assert _thresholds(rules, "fibrinogen", "g/L", None, 2.0) == []     # not stated in another unit
