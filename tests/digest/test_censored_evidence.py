"""The digest shows a censored result as it was proved (`>100,000`), never as the bare bound."""

from __future__ import annotations

from cartwatch.digest.render_html import _all_results
from cartwatch.digest.render_md import summary_table, summary_value
from cartwatch.digest.select import summarize_evidence

ITEMS = [{"rule": "shah.ferritin_peak_gt", "analyte": "ferritin", "value": 100000.0, "comparator": ">",
          "unit": "ng/mL", "at": "2026-03-14T10:00:00+00:00", "source": "labs.csv:7"},
         {"rule": "shah.organ_grade_min", "analyte": "bilirubin_total", "value": 3.7, "unit": "mg/dL",
          "at": "2026-03-15T11:00:00+00:00", "source": "labs.csv:9"}]


def test_markdown_and_html_evidence_keep_the_comparator():
    window = {"evidence": ITEMS, "evidence_summary": summarize_evidence(ITEMS)}
    rows = summary_table(window, "America/New_York")
    # items without a threshold are listed on one line, in Markdown as in HTML (">" escaped for Markdown)
    assert rows[0].startswith("Evidence: ferritin peak \\>100,000 ng/mL (2026-03-14 06:00 EDT, labs.csv:7); ")
    assert "3.7 mg/dL (2026-03-15 07:00 EDT, labs.csv:9)" in rows[0]
    html = _all_results([window], {"infused_at": "2026-03-01T15:00:00+00:00", "site_tz": "America/New_York"})
    assert "<td>&gt;100,000 d+13</tr>" in html and "<td>3.7 d+14</tr>" in html


def test_the_evidence_summary_keeps_the_comparator():
    ferritin, bilirubin = summarize_evidence(ITEMS)
    assert (ferritin["comparator"], summary_value(ferritin)) == (">", ">100,000 ng/mL")
    assert (bilirubin["comparator"], summary_value(bilirubin)) == (None, "3.7 mg/dL")
