"""The digest as Markdown (the file on-call opens, the Prefect artifact, the notification body)."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from cartwatch.digest.document import (cards, crs_course_text, ferritin_trend, pager_lines, patient_index,
                                       set_label, status_label, verdict_line)
from cartwatch.digest.ids import masked
from cartwatch.digest.state import ALERT_RANK, rank
from cartwatch.digest.select import FILES_LISTED, FINDINGS

SECTION_TITLES = {"new": "New since the last digest", "escalated": "Escalated",
                  "still_open": "Still open", "resolved": "Resolved"}


def local_time(at: str | None, tz: str | None) -> str:
    """'2026-06-12 08:00 EDT' in the patient's (or the digest's) zone; '' for no time."""
    if not at:
        return ""
    moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    if tz:
        moment = moment.astimezone(ZoneInfo(tz))
    return moment.strftime("%Y-%m-%d %H:%M %Z")


def fmt_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"
    return str(value)


UNIT_LABELS = {"10*9/L": "x10^9/L", "10*12/L": "x10^12/L", "Cel": "°C", "{ratio}": "", "[degF]": "°F", "count": ""}
ANALYTE_LABELS = {"inr": "INR", "pt": "PT", "aptt": "aPTT", "ast": "AST", "alt": "ALT", "ldh": "LDH",
                  "anc": "ANC", "wbc": "WBC", "scd25": "sCD25", "crp": "CRP", "hscore_min": "HScore (lowest)",
                  "hscore_max": "HScore (highest)", "criteria_met": "criteria met",
                  "criteria_evaluable": "criteria evaluable"}


def unit_label(unit: str | None) -> str:
    """Readable units: x10^9/L for 10*9/L, °C for Cel, nothing for INR's {ratio}."""
    return UNIT_LABELS.get(unit or "", unit or "")


def analyte_label(analyte: str | None) -> str:
    return ANALYTE_LABELS.get(analyte or "", (analyte or "").replace("_", " "))


# Rule names whose spaced form does not read as a manifestation ('fever c', 'rise ng ml per hour')
MANIFESTATION_LABELS = {"re_rise": "re-rise", "fever_c": "fever", "rise_ng_ml_per_hour": "rise rate",
                        "rapid_rise_ng_ml_per_hour": "rapid rise"}


def manifestation_label(rule: str) -> str:
    """'re_rise' -> 're-rise'; 'hlh_2004.anc_lt' -> 'anc' (the rule's last part without its
    comparison, spaced, or its name in MANIFESTATION_LABELS)."""
    name = re.sub(r"_(lt|le|ge|gt|x)(_[a-z0-9]+)*$|_factor$", "", rule.rsplit(".", 1)[-1])
    return MANIFESTATION_LABELS.get(name, name.replace("_", " "))


def summary_value(s: dict) -> str:
    """'15 x10^9/L', 'INR 1.31', '>100,000 ng/mL' (a censored result keeps its comparator),
    'hemophagocytosis: documented', 'hemophagocytosis: no data' (a score's input nobody documented:
    the engine writes it without value, time or source, and counts it both ways)."""
    finding = s.get("finding") or s.get("analyte") in FINDINGS
    if s.get("value") is None and (finding or s.get("source") == "unknown"):
        return f"{analyte_label(s['analyte'])}: no data"
    if finding:
        return f"{analyte_label(s['analyte'])}: " + ("documented" if s["value"] else "documented absent")
    value = f"{s.get('comparator') or ''}{fmt_value(s.get('value'))}"
    if s.get("analyte") == "inr":
        return f"INR {value}"
    return f"{value} {unit_label(s.get('unit'))}".strip()


def summary_threshold(s: dict, rule: bool = True) -> str:
    """'555 U/L (1 x ULN, iec_hs.ldh_x_uln)': the number in the result's unit when known (without
    the rules-file key when `rule` is false: the HTML card, where the JSON has it)."""
    rule = s.get("threshold_rule") if rule else None
    note = ", ".join(x for x in (s.get("threshold_text"), rule) if x)
    if s.get("threshold_value") is not None:
        if s.get("threshold_text") in (f"{s['threshold_value']:g} {s.get('unit')}", f"{s['threshold_value']:g}"):
            note = rule or ""                  # the cut-off is already in the result's unit
        unit = unit_label(s.get("unit"))
        return f"{fmt_value(s['threshold_value'])} {unit}".strip() + (f" ({note})" if note else "")
    return note or readable_detail(s.get("detail"), s.get("unit"))


def readable_detail(detail, unit: str | None) -> str:
    """The engine's note as a lab report writes it: 'CRS-phase peak 6964.0' -> 'CRS-phase peak 6,964
    ng/mL' (its numbers grouped and rounded as values are, the result's unit after a closing number)."""
    text = re.sub(r"\d+\.\d+|\d{4,}", lambda m: fmt_value(float(m.group())), str(detail or ""))
    if re.search(r"\d$", text) and unit_label(unit):
        text += f" {unit_label(unit)}"
    return text


def is_judged(s: dict) -> bool:
    """An item with a threshold of its own or further results: a table row. The others (a score's
    inputs, HScore's) are listed on one line after the table, in Markdown as in HTML."""
    return s.get("threshold_value") is not None or bool(s.get("threshold_text")) or bool(s["more"])


def evidence_label(s: dict) -> str:
    """'coagulation (aPTT)': the manifestation, and the analyte when it is not in its name."""
    label, analyte = manifestation_label(s["rule"]), analyte_label(s.get("analyte"))
    if label in ("cutoff", analyte.lower()):       # a score's own value, or an input named as its analyte
        return analyte or label
    return f"{label} ({analyte})" if analyte and analyte.lower() not in label else label


def day(d) -> str:
    return "" if d is None else f"{d:+d}"


def window_head(w: dict) -> str:
    head = f"{set_label(w['criteria_set'])}: **{status_label(w['status'])}**"
    if w.get("previous_status") and w["previous_status"] != w["status"]:
        head += f" (was {status_label(w['previous_status'])})"
    head += f", onset day {day(w.get('onset_day'))}" if w.get("onset_day") is not None else ""
    if w.get("late_onset"):
        head += " (late onset)"
    if w.get("end_day") is not None:
        head += f", closed day {day(w['end_day'])}"
    crs = [f"{k} {day(w.get(f'crs_{k}_day'))}" for k in ("onset", "peak", "resolved")
           if w.get(f"crs_{k}_day") is not None]
    return head + (f"; measured against CRS {', '.join(crs)}" if crs else "")


def card_windows(doc: dict, card: dict) -> list[dict]:
    """The card's alerting windows that are new or escalated (their evidence is shown)."""
    key = (card["patient_id"], card["infusion_id"])
    return [w for s in ("new", "escalated") for w in doc["sections"][s]
            if (w["patient_id"], w["infusion_id"]) == key and rank(w["status"]) >= ALERT_RANK]


def card_facts(doc: dict, card: dict) -> list[tuple[str, str]]:
    """(label, text) lines of a patient card, shared by the Markdown and HTML renderers."""
    p = patient_index(doc).get((card["patient_id"], card["infusion_id"]), {})
    tz = p.get("site_tz")
    iec = card["iec_hs"]
    if iec["status"]:
        text = status_label(iec["status"])
        if iec.get("onset_day") is not None:
            text += f", onset day {day(iec['onset_day'])} ({iec['onset_date']})"
        if iec.get("end_day") is not None:
            text += f", closed day {day(iec['end_day'])}"
    else:
        text = "no IEC-HS window"
    st_day = (p.get("statuses") or {}).get("day")
    return [("IEC-HS", text), ("CRS course", crs_course_text(card.get("crs"))),
            ("Changed since the last digest", "; ".join(card["changes"]) or "nothing"),
            (f"Criteria sets (day {day(st_day)})" if st_day is not None else "Criteria sets", verdict_line(card)),
            ("Last result", (local_time(card.get("last_result_at"), tz) or "none") + (
                f" (no recent data: none for more than {doc['no_recent_data_hours']:g} h)"
                if card.get("no_recent_data") else "")),
            ("Ferritin trend", ferritin_trend(p))]


def card_title(card: dict) -> str:
    bits = [card.get("product") or "product unknown"]
    if card.get("infusion_date"):
        bits.append(f"infused {card['infusion_date']}")
    if card.get("day_now") is not None:
        bits.append(f"day {day(card['day_now'])}")
    return f"{card['patient_id']} ({', '.join(bits)}): {card['urgency']}"


MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>#"})
MD_CELL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>#|"})


def md_text(text: str, cell: bool = False) -> str:
    """Feed text (ids, product, units) with Markdown's active characters escaped (and `|` in a
    table cell)."""
    return str(text).translate(MD_CELL if cell else MD_SPECIAL)


def summary_table(w: dict, tz: str | None) -> list[str]:
    """One row per manifestation of a window: its worst result and how many more support it; then
    the items without a threshold (a score's inputs) on one line."""
    found = w.get("evidence_summary") or []
    if not found:
        return []
    judged, inputs = [s for s in found if is_judged(s)], [s for s in found if not is_judged(s)]
    out = []
    if judged:
        out = ["| manifestation | worst | at | threshold | source | more |", "|---|---:|---|---|---|---:|"]
        out += [f"| {md_text(evidence_label(s), cell=True)} | {md_text(summary_value(s), cell=True)} | "
                f"{local_time(s.get('at'), tz)} | {summary_threshold(s)} | "
                f"{md_text(s.get('source') or '', cell=True)} | {s['more']} |" for s in judged]
    if inputs:
        out += ([""] if out else []) + [f"{'Inputs' if judged else 'Evidence'}: " + "; ".join(
            md_text(f"{evidence_label(s)} {summary_value(s).split(': ')[-1]}".rstrip() + _input_where(s, tz))
            for s in inputs)]
    total = len(w.get("evidence") or [])
    return out + ["", f"{total} results in all (the HTML and JSON digests list each)."]


def _input_where(s: dict, tz: str | None) -> str:
    where = [x for x in (local_time(s.get("at"), tz), s.get("source")) if x and x != "unknown"]
    return f" ({', '.join(where)})" if where else ""


def card_lines(doc: dict) -> list[str]:
    out = ["## Patients", ""]
    for card in doc.get("cards") or cards(doc):
        tz = patient_index(doc).get((card["patient_id"], card["infusion_id"]), {}).get("site_tz")
        out += [f"### {md_text(card_title(card))}", ""]
        out += [f"- {k}: {md_text(v)}" for k, v in card_facts(doc, card)] + [""]
        for w in card_windows(doc, card):
            out += [f"#### {window_head(w)}", ""] + summary_table(w, tz) + [""]
    return out


def gap_line(g: dict) -> str:
    """'CW-0019 (axi-cel, day +80; IEC-HS suspected): ferritin last 2026-09-27 09:34 CEST (1,336 h ago); ...'."""
    tests = "; ".join(f"{o['test']} last {local_time(o['last_at'], g.get('site_tz'))} ({o['hours']:,.0f} h ago)"
                      if o.get("last_at") else f"{o['test']} never measured" for o in g["overdue"])
    d = f", day {day(g['day_now'])}" if g.get("day_now") is not None else ""
    return f"{g['patient_id']} ({g.get('product') or '?'}{d}; {g['reason']}): {tests}"


def gap_lines(doc: dict) -> list[str]:
    gaps = doc.get("monitoring_gaps") or []
    if doc.get("monitoring_gap_hours") is None:
        return []
    out = ["## Monitoring gaps", "",
           f"At-risk episodes whose ferritin, fibrinogen or transaminases were not measured in the last "
           f"{doc['monitoring_gap_hours']:g} h ({len(gaps)}):", ""]
    return out + ([f"- {md_text(gap_line(g))}" for g in gaps] or ["None."]) + [""]


def split_stale(doc: dict) -> tuple[list[dict], list[dict]]:
    """Still-open windows of episodes with recent data, and those of episodes with no recent data."""
    stale = {(c["patient_id"], c["infusion_id"]) for c in doc.get("cards") or [] if c.get("no_recent_data")}
    found = doc["sections"]["still_open"]
    return ([w for w in found if (w["patient_id"], w["infusion_id"]) not in stale],
            [w for w in found if (w["patient_id"], w["infusion_id"]) in stale])


def brief(doc: dict, section: str, windows: list[dict] | None = None) -> list[str]:
    index = patient_index(doc)
    out = []
    for w in doc["sections"][section] if windows is None else windows:
        p = index.get((w["patient_id"], w["infusion_id"]), {})
        extra = " (results withdrawn)" if w.get("withdrawn") else ""
        d = f" day {day(p.get('day_now'))}" if p.get("day_now") is not None else ""
        out.append(f"- {md_text(w['patient_id'])} ({md_text(p.get('product') or '?')}{d}): {window_head(w)}{extra}")
    return out + [""]


def data_quality_lines(dq: dict, files: bool = True, issues: bool = True, title: str = "Data quality") -> list[str]:
    """The data-quality section: the files loaded (`files`) and what went wrong (`issues`: files not
    loaded, quarantined rows by reason and by file, silent feeds)."""
    out = [f"## {title}", ""]
    since = f" since {dq['since']}" if dq.get("since") else ""
    if not files:
        pass
    elif len(dq["files"]) > FILES_LISTED:
        out += [f"{len(dq['files'])} files loaded{since}:", "", "| feed | files | read | accepted | duplicate | quarantined |",
                "|---|---:|---:|---:|---:|---:|"]
        out += [f"| {f['feed']} | {f['files']} | {f['rows_read']} | {f['accepted']} | {f['duplicate']} | "
                f"{f['quarantined']} |" for f in dq["file_totals"]]
    elif dq["files"]:
        out += [f"Files loaded{since}:", "", "| file | format | feed | read | accepted | duplicate | quarantined |",
                "|---|---|---|---:|---:|---:|---:|"]
        out += [f"| {f['source_file']} | {f['format']} | {f['feed'] or ''} | {f['rows_read']} | {f['accepted']} "
                f"| {f['duplicate']} | {f['quarantined']} |" for f in dq["files"]]
    else:
        out.append(f"No files loaded{since}.")
    out.append("")
    if not issues:
        return out
    out += pipeline_run_lines(dq)
    if dq.get("not_loaded"):
        out += [f"Files not loaded{since} ({len(dq['not_loaded'])}):", ""]
        out += [f"- {f['source_file']}: {f['problem']} ({f['reason']})" for f in dq["not_loaded"]]
        out.append("")
    if dq["quarantined"]:
        out += ["Rows quarantined, by reason:", "", "| feed | reason | rows |", "|---|---|---:|"]
        out += [f"| {q['feed']} | {q['reason']} | {q['rows']} |" for q in dq["quarantined"]]
        by_file = [f for f in dq["files"] if f["quarantined"]]
        if by_file and not files:
            out += ["", "By file: " + ", ".join(f"{md_text(f['source_file'])} {f['quarantined']}" for f in by_file)
                    + " (the files loaded are listed at the end)."]
    else:
        out.append("No rows quarantined.")
    out.append("")
    if dq["silent_feeds"]:
        out.append(f"Feeds silent longer than {dq['silence_limit_hours']:g} h:")
        out += [f"- {s['feed']}: " + (f"newest result {s['newest']} ({s['hours']:g} h ago)" if s["newest"]
                                      else "nothing received") for s in dq["silent_feeds"]]
    else:
        out.append(f"No feed silent longer than {dq['silence_limit_hours']:g} h.")
    return out + [""]


def pipeline_run_lines(dq: dict) -> list[str]:
    """Runs killed or failed since the previous digest (absent from digests stored before they were
    recorded: nothing shown)."""
    if "pipeline_runs" not in dq:
        return []
    if not dq["pipeline_runs"]:
        return ["No pipeline run killed or failed since the previous digest.", ""]
    return [f"Pipeline runs killed or failed since the previous digest ({len(dq['pipeline_runs'])}):", "",
            *[f"- {md_text(run['text'])}" for run in dq["pipeline_runs"]], ""]


def header_counts(doc: dict) -> str:
    """'12 patients in this digest, 11 paged (one pager line each)': patients, not windows."""
    found = doc.get("cards") or cards(doc)
    n = len(found)
    return f"{n} patient{'' if n == 1 else 's'} in this digest, {sum(c['paged'] for c in found)} paged " \
           "(one pager line each)"


def data_quality_problems(dq: dict) -> bool:
    """Anything skipped, not loaded or quarantined, or a run killed or failed: the data-quality
    section moves to the top."""
    return bool(dq.get("not_loaded") or dq.get("quarantined") or dq.get("pipeline_runs"))


def rules_note(version: str) -> str:
    """A rules version with a content hash is not the released content of its declared version."""
    declared, plus, digest = version.partition("+")
    return f" (rules content {digest}, not the released {declared})" if plus else ""


def render_md(doc: dict, *, mask_ids: bool = False) -> str:
    doc = masked(doc, mask_ids)
    c = doc["counts"]
    lines = [f"# cartwatch digest as of {doc['as_of']}", "",
             f"Rules version {doc['rules_version']}{rules_note(doc['rules_version'])}; "
             f"{doc['monitored_episodes']} infusion episodes monitored; "
             f"{header_counts(doc)}; windows: new {c['new']}, escalated {c['escalated']}, "
             f"still open {c['still_open']}, resolved {c['resolved']}" + (f" since {doc['since']}." if doc.get("since")
                                                                          else "."), ""]
    pager = pager_lines(doc)
    if pager:
        lines += ["## Pager", "", *[f"- {md_text(p)}" for p in pager], ""]
    problems = data_quality_problems(doc["data_quality"])
    if problems:                              # what went wrong first; the files loaded at the end
        lines += data_quality_lines(doc["data_quality"], files=False)
    lines += gap_lines(doc)
    lines += card_lines(doc)
    for section in ("new", "escalated", "still_open", "resolved"):
        lines += [f"## {SECTION_TITLES[section]}", ""]
        if section == "still_open":
            recent, stale = split_stale(doc)
            lines += brief(doc, section, recent) if recent else ["None.", ""]
            if stale:
                lines += [f"No recent data ({len(stale)}): open windows of episodes without a lab result for more "
                          f"than {doc['no_recent_data_hours']:g} h", ""] + brief(doc, section, stale)
            continue
        lines += brief(doc, section) if doc["sections"][section] else ["None.", ""]
    lines += data_quality_lines(doc["data_quality"], issues=False, title="Files loaded") if problems else \
        data_quality_lines(doc["data_quality"])
    return "\n".join(lines).rstrip() + "\n"
