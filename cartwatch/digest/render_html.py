"""The digest as one self-contained HTML page: no script, no external resource; plots are inline
SVG (shared styles and markers once per page), so the page opens the same from a file, a mail or an
archive, and stays small (the sample's digest: under 150 KB).

Read at a glance: a compact header, the pager, what went wrong with the data (when anything did)
and the monitoring gaps come first, so the first patient card shows without scrolling on a
1280 x 800 screen; each card has its facts, a summary row per manifestation, the full results
behind one collapsible section, and its plot."""

from __future__ import annotations

from datetime import date, datetime
from html import escape
from zoneinfo import ZoneInfo

from cartwatch.digest.document import PLOTS_DRAWN, cards, pager_lines, patient_index, set_label, status_label
from cartwatch.digest.ids import masked
from cartwatch.digest.plot import PLOT_DEFS, PLOT_STYLE, patient_svg
from cartwatch.digest.select import FILES_LISTED
from cartwatch.digest.render_md import (SECTION_TITLES, analyte_label, card_facts, card_title, card_windows, day,
                                        data_quality_problems, evidence_label, gap_line, header_counts,
                                        is_judged, manifestation_label, rules_note, split_stale,
                                        summary_threshold, summary_value)


STYLE = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:12px 20px;color:#111827;max-width:1180px}
h1{font-size:19px;margin:0 0 2px}h2{font-size:16px;border-bottom:2px solid #e5e7eb;padding-bottom:2px;margin:14px 0 6px}
.summary{color:#374151;margin:0}.patient{border:1px solid #d1d5db;border-radius:8px;padding:8px 14px;margin:10px 0}
.patient h3{margin:0 0 4px;font-size:15px}.window{margin:8px 0 2px;font-weight:600}.f{margin:0}
.urg{font-size:12px;padding:1px 6px;border-radius:9px;background:#fee2e2;color:#991b1b;margin-left:6px}
.status-criteria_met,.status-met,.vm{color:#b91c1c}.status-suspected{color:#c2410c}.status-watch{color:#a16207}
.ve{color:#6b7280;font-style:italic}
table{border-collapse:collapse;margin:4px 0 6px;font-size:13px}td,th{border:1px solid #e5e7eb;padding:2px 6px;text-align:left}
th{background:#f9fafb}td.num{text-align:right}ul{margin:2px 0;padding-left:20px}
.pager li{font-family:ui-monospace,monospace;font-size:12px}.none{color:#6b7280}.dq li,.gaps li{font-size:13px}
details{margin:4px 0}summary{cursor:pointer;color:#1f2937}.all td:last-child{font-size:12px}
""" + PLOT_STYLE
def _status(status: str | None) -> str:
    return f'<span class="status-{escape(status or "")}">{escape(status_label(status))}</span>'


def _window_head(w: dict, crs: bool = True) -> str:
    """'IEC-HS: criteria met, onset day +11; measured against CRS ...' (`crs`: with that tail; the
    reference lists leave it to the card)."""
    head = f"{escape(set_label(w['criteria_set']))}: {_status(w['status'])}"
    if w.get("previous_status") and w["previous_status"] != w["status"]:
        head += f" (was {escape(status_label(w['previous_status']))})"
    if w.get("onset_day") is not None:
        head += f", onset day {day(w['onset_day'])}"
    if w.get("late_onset"):
        head += " (late onset)"
    if w.get("end_day") is not None:
        head += f", closed day {day(w['end_day'])}"
    if w.get("withdrawn"):
        head += " (results withdrawn)"
    found = [f"{k} {day(w.get(f'crs_{k}_day'))}" for k in ("onset", "peak", "resolved")
             if w.get(f"crs_{k}_day") is not None]
    return head + (f"; measured against CRS {escape(', '.join(found))}" if found and crs else "")


def _source(source: object) -> str:
    """'labs.csv:339': the file name and line, without the inbox folder."""
    return str(source or "").replace("\\", "/").rsplit("/", 1)[-1]


def _summary(w: dict, p: dict) -> str:
    """One row per manifestation: worst value, its day post-infusion and local time, threshold in
    the result's unit, source, how many more results support it. Items without a threshold and
    without further results (a score's inputs: HScore) follow on one line after the table."""
    found = w.get("evidence_summary") or []
    when = [day_time(s.get("at"), p.get("infused_at"), p.get("site_tz")) for s in found]
    judged = [(s, t) for s, t in zip(found, when) if is_judged(s)]
    inputs = [(s, t) for s, t in zip(found, when) if not is_judged(s)]
    out = ""
    if judged:
        rows = "".join(f"<tr><td>{escape(evidence_label(s))}<td class=num>{escape(summary_value(s))}<td>{escape(t)}"
                       f"<td>{escape(summary_threshold(s, rule=False))}<td>{escape(_source(s.get('source')))}"
                       f"<td class=num>{s['more']}</tr>" for s, t in judged)
        out = f"<table><tr><th>manifestation<th>worst<th>at<th>threshold<th>source<th>more</tr>{rows}</table>"
    if inputs:
        items = "; ".join(f"{escape(evidence_label(s))} {escape(summary_value(s).split(': ')[-1])}".rstrip()
                          + (f" ({', '.join(escape(x) for x in (t, _source(s.get('source'))) if x and x != 'unknown')})"
                             if t or s.get("source") not in (None, "unknown") else "")
                          for s, t in inputs)
        out += f"<p class=f>{'Inputs' if judged else 'Evidence'}: {items}</p>"
    return out


def day_time(at: str | None, infused_at: str | None, tz: str | None) -> str:
    """'d+11 10:29': the day post-infusion and local time of a result (site calendar); the last six
    characters are always ' HH:MM' (or the string is empty)."""
    if not at:
        return ""
    zone = ZoneInfo(tz) if tz else None
    moment = datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(zone)
    if not infused_at:
        return moment.strftime("%Y-%m-%d %H:%M")
    start: date = datetime.fromisoformat(infused_at.replace("Z", "+00:00")).astimezone(zone).date()
    return f"d{(moment.date() - start).days:+d} {moment:%H:%M}"


def _all_results(windows: list[dict], p: dict) -> str:
    """Every result behind the card's windows, once each, grouped by analyte: a compact table in a
    collapsible section (the JSON digest lists each item with its source and threshold)."""
    by_analyte: dict[str, dict] = {}
    for w in windows:
        for e in w.get("evidence") or []:
            group = by_analyte.setdefault(str(e.get("analyte") or e.get("rule") or ""),
                                          {"unit": e.get("unit"), "rules": [], "results": {}})
            label = manifestation_label(str(e.get("rule") or ""))
            if label not in group["rules"]:
                group["rules"].append(label)
            group["results"].setdefault(str(e.get("at") or ""), e)
    if not by_analyte:
        return ""
    rows, total = [], 0
    for analyte, g in sorted(by_analyte.items()):
        found = [g["results"][k] for k in sorted(g["results"])]
        total += len(found)
        unit = summary_value({"value": None, "unit": g["unit"]})
        values = ", ".join(f"{_value(e)} {day_time(e.get('at'), p.get('infused_at'), p.get('site_tz'))[:-6]}".strip()
                           for e in found)
        rows.append(f"<tr><td>{escape(analyte_label(analyte))}{f' ({escape(unit)})' if unit else ''}"
                    f"<td>{escape(', '.join(g['rules']))}<td class=num>{len(found)}<td>{escape(values)}</tr>")
    return (f"<details><summary>All {total} results behind these windows</summary><table class=all>"
            f"<tr><th>analyte<th>manifestations<th>n<th>values in time order, day post-infusion</tr>{''.join(rows)}"
            "</table></details>")


def _value(e: dict) -> str:
    """A result's value without its unit: '1.55', '>100,000', 'documented' for a finding."""
    text = summary_value(dict(e, unit=None))
    return text.split(": ", 1)[1] if ": " in text else text.removeprefix("INR ")


def _plot(p: dict, drawn: bool, alert_cards: int) -> str:
    if not drawn:
        return (f'<p class="none">Plot not drawn: {alert_cards} patients alert in this digest, '
                f"plots are drawn for the {PLOTS_DRAWN} most severe (the trend above gives the values).</p>")
    return patient_svg(p) or '<p class="none">No results to plot.</p>'


VERDICT_CLASS = {"met": "vm", "not evaluable": "ve"}          # not met: plain text


def _verdict(v: dict) -> str:
    css = VERDICT_CLASS.get(v["verdict"])
    return f"<span class={css}>{escape(v['text'])}</span>" if css else escape(v["text"])


def _facts(doc: dict, card: dict) -> str:
    """The card's facts, one line each; the criteria sets' verdicts side by side, coloured by verdict
    (met red, not evaluable grey italic)."""
    out = []
    for label, text in card_facts(doc, card):
        shown = " · ".join(map(_verdict, card["verdicts"])) if label.startswith("Criteria sets") else escape(text)
        out.append(f"<b>{escape(label)}:</b> {shown}")
    return f"<p class=f>{'<br>'.join(out)}</p>"


def _cards(doc: dict) -> str:
    """One card per patient episode, most urgent first: its facts, its plot (the PLOTS_DRAWN first
    paged cards), the evidence of its alerting windows and, collapsed, every result behind them.

    A first digest over years of history can hold hundreds of alerts; a page that long is not read
    past its first cards, and unbounded plotting would make it heavy, so plots stop after PLOTS_DRAWN."""
    index = patient_index(doc)
    found = doc.get("cards") or cards(doc)
    paged = sum(c["paged"] for c in found)
    html, drawn = [], 0
    for card in found:
        p = index.get((card["patient_id"], card["infusion_id"]), {"patient_id": card["patient_id"]})
        shown = card_windows(doc, card)
        windows = "".join(f'<div class="window">{_window_head(w)}</div>{_summary(w, p)}' for w in shown)
        plot = ""
        if card["paged"]:
            plot = _plot(p, drawn < PLOTS_DRAWN, paged)
            drawn += 1
        title, _, urgency = card_title(card).rpartition(": ")
        html.append(f'<div class="patient" data-patient="{escape(card["patient_id"])}" '
                    f'data-urgency="{escape(card["urgency"])}"><h3>{escape(title)}<span class=urg>{escape(urgency)}'
                    f"</span></h3>{_facts(doc, card)}{plot}{windows}{_all_results(shown, p)}</div>")
    return "".join(html) or '<p class="none">None.</p>'


def _brief(doc: dict, section: str, windows: list[dict] | None = None) -> str:
    index = patient_index(doc)
    items = []
    for w in doc["sections"][section] if windows is None else windows:
        p = index.get((w["patient_id"], w["infusion_id"]), {})
        d = f" day {day(p['day_now'])}" if p.get("day_now") is not None else ""
        items.append(f"<li>{escape(w['patient_id'])} ({escape(p.get('product') or '?')}{d}): {_window_head(w, crs=False)}</li>")
    return f"<ul>{''.join(items)}</ul>"


def _files_loaded(dq: dict) -> str:
    since = f" since {escape(dq['since'])}" if dq.get("since") else ""
    if len(dq["files"]) > FILES_LISTED:
        rows = "".join(f"<tr><td>{escape(f['feed'])}" + "".join(
            f"<td class=num>{f[k]}" for k in ("files", "rows_read", "accepted", "duplicate", "quarantined"))
            + "</tr>" for f in dq["file_totals"])
        return (f"<p>{len(dq['files'])} files loaded{since}:</p><table><tr><th>feed<th>files<th>read"
                f"<th>accepted<th>duplicate<th>quarantined</tr>{rows}</table>")
    if dq["files"]:
        rows = "".join(f"<tr><td>{escape(f['source_file'])}<td>{escape(f['format'])}<td>{escape(f['feed'] or '')}"
                       + "".join(f"<td class=num>{f[k]}" for k in ("rows_read", "accepted", "duplicate", "quarantined"))
                       + "</tr>" for f in dq["files"])
        return (f"<p>Files loaded{since}:</p><table><tr><th>file<th>format<th>feed<th>read<th>accepted"
                f"<th>duplicate<th>quarantined</tr>{rows}</table>")
    return f'<p class="none">No files loaded{since}.</p>'


def _data_issues(dq: dict) -> str:
    """What went wrong, one line each: files not loaded, rows quarantined by reason and by file,
    silent feeds (compact: it comes before the patient cards)."""
    since = f" since {escape(dq['since'])}" if dq.get("since") else ""
    items = [_pipeline_runs(dq)] if "pipeline_runs" in dq else []
    if dq.get("not_loaded"):
        files = "; ".join(f"{escape(f['source_file'])}: {escape(f['problem'])} ({escape(f['reason'])})"
                          for f in dq["not_loaded"])
        items.append(f"<li id=not-loaded><b>Files not loaded{since} ({len(dq['not_loaded'])}):</b> {files}</li>")
    if dq["quarantined"]:
        total = sum(q["rows"] for q in dq["quarantined"])
        reasons = "; ".join(f"{escape(q['feed'])} {escape(q['reason'])}: {q['rows']}" for q in dq["quarantined"])
        items.append(f"<li id=quarantined><b>Rows quarantined ({total}), by reason:</b> {reasons}</li>")
        by_file = [f for f in dq["files"] if f["quarantined"]]
        if by_file:
            items.append("<li><b>By file:</b> " + ", ".join(f"{escape(f['source_file'])} {f['quarantined']}"
                                                            for f in by_file) + " (files loaded: at the end)</li>")
    else:
        items.append('<li class="none">No rows quarantined.</li>')
    limit = f"{dq['silence_limit_hours']:g} h"
    if dq["silent_feeds"]:
        feeds = "; ".join(f"{escape(s['feed'])}: " + (f"newest result {escape(s['newest'])} ({s['hours']:g} h ago)"
                                                       if s["newest"] else "nothing received") for s in dq["silent_feeds"])
        items.append(f"<li id=silent-feeds><b>Feeds silent longer than {limit}:</b> {feeds}</li>")
    else:
        items.append(f'<li class="none">No feed silent longer than {limit}.</li>')
    return f"<ul class=dq>{''.join(items)}</ul>"


def _pipeline_runs(dq: dict) -> str:
    """Runs killed or failed since the previous digest, first: the digest may be missing alerts."""
    runs = dq["pipeline_runs"]
    if not runs:
        return '<li class="none">No pipeline run killed or failed.</li>'
    return (f"<li id=pipeline-runs><b>Pipeline runs killed or failed ({len(runs)}):</b> "
            + "; ".join(escape(run["text"]) for run in runs) + "</li>")


def _header(doc: dict) -> str:
    c = doc["counts"]
    since = f" since {escape(doc['since'])}" if doc.get("since") else ""
    return (f"<h1>cartwatch digest as of {escape(doc['as_of'])}</h1>"
            f'<p class="summary"><b>{escape(header_counts(doc))}</b>; {doc["monitored_episodes"]} infusion episodes '
            f"monitored; windows: new {c['new']}, escalated {c['escalated']}, still open {c['still_open']}, "
            f"resolved {c['resolved']}{since}; rules "
            f"{escape(doc['rules_version'] + rules_note(doc['rules_version']))}.</p>")


def _gaps(doc: dict) -> str:
    gaps = doc.get("monitoring_gaps") or []
    items = "".join(f"<li>{escape(gap_line(g))}</li>" for g in gaps) or '<li class="none">None.</li>'
    return (f'<section id="monitoring-gaps"><h2>Monitoring gaps ({len(gaps)})</h2><p class=f>At-risk episodes '
            f"whose ferritin, fibrinogen or transaminases were not measured in the last "
            f"{doc['monitoring_gap_hours']:g} h:</p><ul class=gaps>{items}</ul></section>")


def _windows_by_section(doc: dict) -> list[str]:
    parts = []
    for section in ("new", "escalated", "still_open", "resolved"):
        if section == "still_open":
            recent, stale = split_stale(doc)
            body = _brief(doc, section, recent) if recent else '<p class="none">None.</p>'
            if stale:
                body += (f'<p id="no-recent-data">No recent data ({len(stale)}): open windows of episodes without a lab '
                         f'result for more than {doc["no_recent_data_hours"]:g} h</p>{_brief(doc, section, stale)}')
        elif not doc["sections"][section]:
            body = '<p class="none">None.</p>'
        else:
            body = _brief(doc, section)
        parts.append(f'<section id="{section}"><h2>{SECTION_TITLES[section]}</h2>{body}</section>')
    return parts


def render_html(doc: dict, *, mask_ids: bool = False) -> str:
    doc = masked(doc, mask_ids)
    dq = doc["data_quality"]
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>cartwatch digest {escape(doc['as_of'])}"
             f"</title><style>{STYLE}</style></head><body>{PLOT_DEFS}", _header(doc)]
    pager = pager_lines(doc)
    if pager:
        parts.append('<section id="pager"><h2>Pager</h2><ul class="pager">'
                     + "".join(f"<li>{escape(p)}</li>" for p in pager) + "</ul></section>")
    problems = data_quality_problems(dq)
    if problems:                              # what went wrong first; the files loaded at the end
        parts.append(f'<section id="data-quality"><h2>Data quality</h2>{_data_issues(dq)}</section>')
    if doc.get("monitoring_gap_hours") is not None:
        parts.append(_gaps(doc))
    parts.append(f'<section id="patients"><h2>Patients</h2>{_cards(doc)}</section>')
    parts += _windows_by_section(doc)
    if problems:
        parts.append(f'<section id="files-loaded"><h2>Files loaded</h2>{_files_loaded(dq)}</section>')
    else:
        parts.append(f'<section id="data-quality"><h2>Data quality</h2>{_files_loaded(dq)}{_data_issues(dq)}</section>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
