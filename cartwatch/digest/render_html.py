"""The digest as one self-contained HTML page: no script, no external resource; plots are PNGs
embedded as base64 data URIs, so the page opens the same from a file, a mail or an archive."""

from __future__ import annotations

import base64
from html import escape

from cartwatch.digest.document import cards, pager_lines, patient_index, set_label, status_label
from cartwatch.digest.ids import masked
from cartwatch.digest.state import ALERT_RANK, rank
from cartwatch.digest.plot import ferritin_png
from cartwatch.digest.select import FILES_LISTED
from cartwatch.digest.render_md import (SECTION_TITLES, analyte_label, card_facts, card_title, card_windows, day,
                                        data_quality_problems, fmt_result, fmt_threshold, gap_line, header_counts, local_time, manifestation_label,
                                        rules_note, split_stale, summary_threshold, summary_value)

PLOTS_DRAWN = 20                   # a display choice, not a clinical rule: see _cards

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#111827;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;border-bottom:2px solid #e5e7eb;padding-bottom:4px;margin-top:28px}
.summary{color:#374151}.patient{border:1px solid #d1d5db;border-radius:8px;padding:12px 16px;margin:12px 0}
.patient h3{margin:0 0 6px;font-size:16px}.window{margin:10px 0 4px;font-weight:600}
.status-criteria_met,.status-met{color:#b91c1c}.status-suspected{color:#c2410c}.status-watch{color:#a16207}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}td,th{border:1px solid #e5e7eb;padding:3px 8px;text-align:left}
th{background:#f9fafb}td.num{text-align:right}.pager li{font-family:ui-monospace,monospace;font-size:13px}
img.plot{display:block;max-width:100%;margin:8px 0;border:1px solid #e5e7eb}.none{color:#6b7280}
"""


def _status(status: str | None) -> str:
    return f'<span class="status-{escape(status or "")}">{escape(status_label(status))}</span>'


def _window_head(w: dict) -> str:
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
    crs = [f"{k} {day(w.get(f'crs_{k}_day'))}" for k in ("onset", "peak", "resolved")
           if w.get(f"crs_{k}_day") is not None]
    return head + (f"; measured against CRS {escape(', '.join(crs))}" if crs else "")


def _evidence(w: dict, tz: str | None) -> str:
    if not w.get("evidence"):
        return ""
    body = "".join(
        f"<tr><td>{escape(str(e.get('rule') or ''))}</td><td>{escape(str(e.get('analyte') or ''))}</td>"
        f"<td class=num>{escape(fmt_result(e))} {escape(str(e.get('unit') or ''))}</td>"
        f"<td>{escape(local_time(e.get('at'), tz))}</td><td>{escape(fmt_threshold(e))}</td>"
        f"<td>{escape(str(e.get('source') or ''))}</td></tr>" for e in w["evidence"])
    return ("<table class=evidence><tr><th>rule</th><th>analyte</th><th>value</th><th>at</th>"
            f"<th>threshold</th><th>source</th></tr>{body}</table>")


def _summary(w: dict, tz: str | None) -> str:
    """One row per manifestation (worst value, time, threshold, source, how many more), the full
    list of results behind a collapsible section."""
    rows = []
    for s in w.get("evidence_summary") or []:
        label = manifestation_label(s["rule"])
        if s.get("analyte") and analyte_label(s["analyte"]).lower() not in label:
            label += f" ({analyte_label(s['analyte'])})"
        rows.append(f"<tr><td>{escape(label)}</td><td class=num>{escape(summary_value(s))}</td>"
                    f"<td>{escape(local_time(s.get('at'), tz))}</td><td>{escape(summary_threshold(s))}</td>"
                    f"<td>{escape(str(s.get('source') or ''))}</td><td class=num>{s['more']}</td></tr>")
    if not rows:
        return _evidence(w, tz)
    table = ("<table class=summary><tr><th>manifestation</th><th>worst</th><th>at</th><th>threshold</th>"
             f"<th>source</th><th>more</th></tr>{''.join(rows)}</table>")
    full = "".join(
        f"<tr><td>{escape(manifestation_label(str(e.get('rule') or '')))}</td>"
        f"<td>{escape(analyte_label(e.get('analyte')))}</td><td class=num>{escape(summary_value(e))}</td>"
        f"<td>{escape(local_time(e.get('at'), tz))}</td><td>{escape(str(e.get('source') or ''))}</td></tr>"
        for e in w.get("evidence") or [])
    if not full:
        return table
    return (f"{table}<details><summary>All {len(w['evidence'])} results</summary><table class=evidence><tr>"
            f"<th>manifestation</th><th>analyte</th><th>value</th><th>at</th><th>source</th></tr>{full}</table>"
            "</details>")


def _plot(p: dict, drawn: bool, alert_cards: int, iec_onset_day: int | None = None) -> str:
    if not drawn:
        return (f'<p class="none">Ferritin plot not drawn: {alert_cards} patients alert in this digest, '
                f"plots are drawn for the {PLOTS_DRAWN} most severe (the trend above gives the values).</p>")
    png = ferritin_png(p, iec_onset_day)
    if png is None:
        return '<p class="none">No ferritin results to plot.</p>'
    data = base64.b64encode(png).decode("ascii")
    return (f'<img class="plot" alt="ferritin trajectory of {escape(p["patient_id"])}" '
            f'src="data:image/png;base64,{data}">')


def _cards(doc: dict) -> str:
    """One card per patient episode, most urgent first; plots for the PLOTS_DRAWN first paged cards.

    A first digest over years of history can hold hundreds of alerts; drawing each costs about a
    tenth of a second, so unbounded plotting would dominate the run, and a page that long is not
    read past its first cards anyway."""
    index = patient_index(doc)
    found = doc.get("cards") or cards(doc)
    paged = sum(c["paged"] for c in found)
    html, drawn = [], 0
    for card in found:
        p = index.get((card["patient_id"], card["infusion_id"]), {"patient_id": card["patient_id"]})
        tz = p.get("site_tz")
        facts = "".join(f"<div><b>{escape(k)}:</b> {escape(v)}</div>" for k, v in card_facts(doc, card))
        windows = "".join(f'<div class="window">{_window_head(w)}</div>{_summary(w, tz)}'
                          for w in card_windows(doc, card))
        plot = ""
        if card["paged"]:
            plot = _plot(p, drawn < PLOTS_DRAWN, paged, card["iec_hs"].get("onset_day"))
            drawn += 1
        html.append(f'<div class="patient" data-patient="{escape(card["patient_id"])}" '
                    f'data-urgency="{escape(card["urgency"])}"><h3>{escape(card_title(card))}</h3>'
                    f"{facts}{windows}{plot}</div>")
    return "".join(html) or '<p class="none">None.</p>'


def _brief(doc: dict, section: str, windows: list[dict] | None = None) -> str:
    index = patient_index(doc)
    items = []
    for w in doc["sections"][section] if windows is None else windows:
        p = index.get((w["patient_id"], w["infusion_id"]), {})
        d = f" day {day(p['day_now'])}" if p.get("day_now") is not None else ""
        items.append(f"<li>{escape(w['patient_id'])} ({escape(p.get('product') or '?')}{d}): {_window_head(w)}</li>")
    return f"<ul>{''.join(items)}</ul>"


def _data_quality(dq: dict, part: str = "all") -> str:
    """`part`: 'files' (the files loaded), 'issues' (not loaded, quarantined by reason and by file,
    silent feeds) or 'all'."""
    since = f" since {escape(dq['since'])}" if dq.get("since") else ""
    if len(dq["files"]) > FILES_LISTED:
        rows = "".join(f"<tr><td>{escape(f['feed'])}</td>" + "".join(
            f"<td class=num>{f[k]}</td>" for k in ("files", "rows_read", "accepted", "duplicate", "quarantined"))
            + "</tr>" for f in dq["file_totals"])
        files = (f"<p>{len(dq['files'])} files loaded{since}:</p><table><tr><th>feed</th><th>files</th><th>read</th>"
                 f"<th>accepted</th><th>duplicate</th><th>quarantined</th></tr>{rows}</table>")
    elif dq["files"]:
        rows = "".join(f"<tr><td>{escape(f['source_file'])}</td><td>{escape(f['format'])}</td>"
                       f"<td>{escape(f['feed'] or '')}</td>" + "".join(
                           f"<td class=num>{f[k]}</td>" for k in ("rows_read", "accepted", "duplicate", "quarantined"))
                       + "</tr>" for f in dq["files"])
        files = (f"<p>Files loaded{since}:</p><table><tr><th>file</th><th>format</th><th>feed</th><th>read</th>"
                 f"<th>accepted</th><th>duplicate</th><th>quarantined</th></tr>{rows}</table>")
    else:
        files = f'<p class="none">No files loaded{since}.</p>'
    if dq.get("not_loaded"):
        items = "".join(f"<li>{escape(f['source_file'])}: {escape(f['problem'])} ({escape(f['reason'])})</li>"
                        for f in dq["not_loaded"])
        files += f"<p>Files not loaded{since} ({len(dq['not_loaded'])}):</p><ul id=not-loaded>{items}</ul>"
    if dq["quarantined"]:
        rows = "".join(f"<tr><td>{escape(q['feed'])}</td><td>{escape(q['reason'])}</td><td class=num>{q['rows']}</td></tr>"
                       for q in dq["quarantined"])
        quarantine = f"<p>Rows quarantined, by reason:</p><table><tr><th>feed</th><th>reason</th><th>rows</th></tr>{rows}</table>"
    else:
        quarantine = '<p class="none">No rows quarantined.</p>'
    limit = f"{dq['silence_limit_hours']:g} h"
    if dq["silent_feeds"]:
        items = "".join(f"<li>{escape(s['feed'])}: " + (
            f"newest result {escape(s['newest'])} ({s['hours']:g} h ago)" if s["newest"] else "nothing received")
            + "</li>" for s in dq["silent_feeds"])
        silent = f"<p>Feeds silent longer than {limit}:</p><ul id=silent-feeds>{items}</ul>"
    else:
        silent = f'<p class="none">No feed silent longer than {limit}.</p>'
    by_file = [f for f in dq["files"] if f["quarantined"]]
    if part == "issues" and by_file:
        quarantine += ("<p>By file: " + ", ".join(f"{escape(f['source_file'])} {f['quarantined']}" for f in by_file)
                       + " (the files loaded are listed at the end).</p>")
    loaded, marker, not_loaded = files.partition("<p>Files not loaded")
    if part == "files":
        return loaded
    if part == "issues":
        return marker + not_loaded + quarantine + silent
    return files + quarantine + silent


def render_html(doc: dict, *, mask_ids: bool = False) -> str:
    doc = masked(doc, mask_ids)
    c = doc["counts"]
    since = f" since {escape(doc['since'])}" if doc.get("since") else ""
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>cartwatch digest {escape(doc['as_of'])}"
             f"</title><style>{STYLE}</style></head><body>",
             f"<h1>cartwatch digest as of {escape(doc['as_of'])}</h1>",
             f'<p class="summary">Rules version {escape(doc["rules_version"] + rules_note(doc["rules_version"]))}; '
             f'{doc["monitored_episodes"]} infusion '
             f"episodes monitored; <b>{escape(header_counts(doc))}</b>; windows: new {c['new']}, "
             f"escalated {c['escalated']}, still open {c['still_open']}, resolved {c['resolved']}{since}.</p>"]
    pager = pager_lines(doc)
    if pager:
        parts.append('<section id="pager"><h2>Pager</h2><ul class="pager">'
                     + "".join(f"<li>{escape(p)}</li>" for p in pager) + "</ul></section>")
    problems = data_quality_problems(doc["data_quality"])
    if problems:                              # what went wrong first; the files loaded at the end
        parts.append(f'<section id="data-quality"><h2>Data quality</h2>'
                     f'{_data_quality(doc["data_quality"], "issues")}</section>')
        dq = f'<section id="files-loaded"><h2>Files loaded</h2>{_data_quality(doc["data_quality"], "files")}</section>'
    else:
        dq = f'<section id="data-quality"><h2>Data quality</h2>{_data_quality(doc["data_quality"])}</section>'

    if doc.get("monitoring_gap_hours") is not None:
        gaps = doc.get("monitoring_gaps") or []
        items = "".join(f"<li>{escape(gap_line(g))}</li>" for g in gaps) or '<li class="none">None.</li>'
        parts.append(f'<section id="monitoring-gaps"><h2>Monitoring gaps</h2><p>At-risk episodes whose ferritin, '
                     f"fibrinogen or transaminases were not measured in the last {doc['monitoring_gap_hours']:g} h "
                     f"({len(gaps)}):</p><ul>{items}</ul></section>")
    parts.append(f'<section id="patients"><h2>Patients</h2>{_cards(doc)}</section>')
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
    if not problems:
        parts.append(dq)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
