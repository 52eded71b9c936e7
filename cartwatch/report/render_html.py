"""The report as one self-contained HTML page: no script, no external resource, plots as PNG data
URIs, every value from the document escaped."""

from __future__ import annotations

import base64
from html import escape

from cartwatch.digest.document import set_label, status_label
from cartwatch.report.plot import incidence_png, proportions_png

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#111827;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;border-bottom:2px solid #e5e7eb;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}td,th{border:1px solid #e5e7eb;padding:3px 8px;text-align:left}
th{background:#f9fafb}td.num{text-align:right}img.plot{display:block;max-width:100%;margin:8px 0;border:1px solid #e5e7eb}
.note{color:#4b5563}.ids{font-family:ui-monospace,monospace;font-size:12px}
"""


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def _n(x) -> str:
    if x is None:
        return ""
    return f"{x:g}" if isinstance(x, float) else str(x)


def _table(head: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(
        f"<td class=num>{escape(c)}</td>" if k >= numeric_from else f"<td>{escape(c)}</td>"
        for k, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _img(png: bytes, alt: str) -> str:
    return f'<img class="plot" alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _flagged(doc: dict) -> str:
    """One row per grouping (overall, each product, antigen, indication), one column per criteria set:
    flagged / infusions, proportion and interval."""
    sets = doc["criteria_sets"]
    cells: dict[tuple, dict] = {}
    for r in doc["flagged"]:
        cells.setdefault((r["by"], str(r["group"])), {})[r["criteria_set"]] = (
            f"{r['flagged']}/{r['n']} {_pct(r['proportion'])} ({_pct(r['ci_low'])} to {_pct(r['ci_high'])})")
    rows = [[by.replace("_", " "), group, *[row.get(s, "") for s in sets]] for (by, group), row in cells.items()]
    return (_img(proportions_png(doc["flagged"]), "proportion flagged per criteria set")
            + _table(["by", "group", *[set_label(s) for s in sets]], rows, 2))


def _statuses(doc: dict) -> str:
    rows = [[set_label(r["criteria_set"]), status_label(r["highest_status"]), _n(r["infusions"])]
            for r in doc["highest_status"]]
    return _table(["criteria set", "highest status", "infusions"], rows, 2)


def _onset(doc: dict) -> str:
    rows = [[set_label(r["criteria_set"]), r["measure"].replace("_", " "), _n(r["n"]), _n(r["median"]),
             f"{_n(r['q1'])} to {_n(r['q3'])}", f"{_n(r['min'])} to {_n(r['max'])}"] for r in doc["onset"]]
    late = [[set_label(r["criteria_set"]), _n(r["flagged"]), _n(r["late"])] for r in doc["late_onset"]]
    return (_table(["criteria set", "measure", "n", "median", "IQR", "range"], rows, 2)
            + f"<p class=note>Late onset: {escape(doc['method']['late_onset'])}.</p>"
            + _table(["criteria set", "flagged", "late onset"], late))


def _incidence(doc: dict) -> str:
    ci = doc["cumulative_incidence"]
    method = ("Aalen-Johansen, death a competing event" if ci["method"] == "aalen_johansen"
              else "Kaplan-Meier (1 - S), censored at the last day with data")
    marks = [d for d in (7, 14, 21, 28, 60, 90) if ci["curves"] and d <= ci["curves"][0]["days"][-1]]
    rows = [[set_label(c["criteria_set"]), *[f"{_pct(c['incidence'][d])} ({c['at_risk'][d]} at risk)" for d in marks]]
            for c in ci["curves"]]
    return (f"<p class=note>{escape(method)}.</p>" + _img(incidence_png(ci), "cumulative incidence by day")
            + _table(["criteria set", *[f"day {d}" for d in marks]], rows))


def _agreement(doc: dict) -> str:
    rows = [[set_label(r["a"]), set_label(r["b"]), _n(r["both"]), _n(r["only_a"]), _n(r["only_b"]), _n(r["neither"]),
             "undefined" if r["kappa"] is None else f"{r['kappa']:.3f}"] for r in doc["agreement"]]
    out = [_table(["set A", "set B", "both", "only A", "only B", "neither", "kappa"], rows, 2)]
    for r in doc["agreement"]:
        if r["disagreements"]:
            ids = ", ".join(f"{d['patient_id']} ({set_label(d['flagged_by'])})" for d in r["disagreements"])
            out.append(f"<details><summary>{escape(set_label(r['a']))} vs {escape(set_label(r['b']))}: "
                       f"{len(r['disagreements'])} infusions</summary><p class=ids>{escape(ids)}</p></details>")
    return "".join(out)


def render_html(doc: dict) -> str:
    cohort = doc["cohort"]
    filters = ", ".join(f"{k} {v}" for k, v in cohort["filters"].items() if v is not None) or "none"
    stored = doc.get("stored_night")
    night = f" (night {escape(stored['night'])} of stream {escape(stored['stream'])})" if stored else ""
    head = (f"<h1>Cohort report</h1><p>As of {escape(doc['as_of'])}{night}; rules {escape(doc['rules_version'])}; "
            f"{cohort['infusions']} infusions of {cohort['patients']} patients; filters: {escape(filters)}"
            f"{'; ids masked' if doc.get('masked') else ''}.</p>"
            f"<p class=note>Flagged: {escape(doc['method']['flagged'])}. Intervals: "
            f"{escape(doc['method']['confidence_interval'])}.</p>")
    sections = [("Infusions flagged", _flagged(doc)), ("Highest status reached", _statuses(doc)),
                ("Onset", _onset(doc)), ("Cumulative incidence by day post-infusion", _incidence(doc)),
                ("Agreement between criteria sets", _agreement(doc))]
    body = head + "".join(f"<h2>{escape(title)}</h2>{html}" for title, html in sections)
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>cartwatch cohort report</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>\n")
