"""The digest document: one JSON-able dict that every renderer (md, html, json, pager) reads.

It is made from the two selections (select.py) and the stream's prior state (state.py), and is
stored as is (flags.digest_by_night), so a backfill night and a nightly run of the same moment
store the same document.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from cartwatch.digest.select import iso
from cartwatch.digest.state import ALERT_RANK, SECTIONS, alert_count, classify, rank

SET_LABELS = {"astct_iec_hs_2023": "IEC-HS", "cartox_2017": "CARTOX", "shah_2020": "Shah 2020",
              "ucsf_masl_2020": "UCSF MAS-L", "hlh_94": "HLH-94", "hlh_2004": "HLH-2004",
              "hscore": "HScore"}
PAGER_MAX = 139
# plots are drawn for this many paged cards, most urgent first (a display choice, not a clinical
# rule): a first digest over years of history can page hundreds of patients
PLOTS_DRAWN = 20


def compose(snapshot: dict, quality: dict, prior: dict, *, as_of: datetime, since: datetime | None,
            stream: str, night) -> tuple[dict, dict]:
    """The digest document and the reporting state it leaves."""
    sections, state = classify(snapshot["windows"], prior, as_of)
    shown = {(w["patient_id"], w["infusion_id"]) for s in SECTIONS for w in sections[s]}
    doc = {
        "stream": stream, "as_of": iso(as_of), "night": iso(night), "since": iso(since),
        "rules_version": snapshot["rules_version"], "monitored_episodes": snapshot["monitored_episodes"],
        "alerts": alert_count(sections),
        "counts": {s: len(sections[s]) for s in SECTIONS},
        "sections": sections,
        "patients": [p for p in snapshot["patients"] if (p["patient_id"], p["infusion_id"]) in shown],
        "data_quality": quality,
        "no_recent_data_hours": snapshot.get("no_recent_data_hours"),
        "monitoring_gap_hours": snapshot.get("monitoring_gap_hours"),
        "monitoring_gaps": snapshot.get("monitoring_gaps") or [],
    }
    doc["cards"] = cards(doc)
    plotted = set(plotted_order(doc["cards"])[:PLOTS_DRAWN])
    for p in doc["patients"]:              # only those plots are drawn: keep the stored document small
        if (p["patient_id"], p["infusion_id"]) not in plotted:
            p.pop("plot", None)
    doc["patient_count"] = len(doc["cards"])
    doc["paged_patients"] = sum(c["paged"] for c in doc["cards"])
    return doc, state


def plotted_order(found: list[dict]) -> list[tuple[str, str]]:
    """The episodes whose cards get a plot, most urgent first: the paged ones."""
    return [(c["patient_id"], c["infusion_id"]) for c in found if c["paged"]]


def patient_index(doc: dict) -> dict[tuple[str, str], dict]:
    return {(p["patient_id"], p["infusion_id"]): p for p in doc["patients"]}


def set_label(criteria_set: str) -> str:
    return SET_LABELS.get(criteria_set, criteria_set)


def status_label(status: str | None) -> str:
    return (status or "").replace("_", " ")


def ferritin_trend(patient: dict | None) -> str:
    f = (patient or {}).get("ferritin")
    if not f:
        return "no ferritin results"
    recent = ", ".join(f"{p['value']:,.0f} (d{p['day']:+d})" if p.get("day") is not None else f"{p['value']:,.0f}"
                       for p in f["recent"])
    folds = []
    if f.get("fold_from_nadir") and f["fold_from_nadir"] >= 1:    # below it, the latest is the new low
        folds.append(f"{f['fold_from_nadir']:.1f}x nadir {f['nadir']:,.0f}")
    if f.get("fold_from_baseline"):
        folds.append(f"{f['fold_from_baseline']:.1f}x baseline {f['baseline']:,.0f}")
    return f"{recent} {f['unit']}" + (f"; latest {'; '.join(folds)}" if folds else "")


def pager_lines(doc: dict) -> list[str]:
    """One line under 140 characters per paged patient (a window new or escalated at suspected and
    above), most urgent first: id, product, day, IEC-HS status and onset day, latest ferritin, CRS
    course, the other criteria sets met. Ids are as in `doc` (mask it first)."""
    index = patient_index(doc)
    out = []
    for card in doc.get("cards") or cards(doc):
        if not card["paged"]:
            continue
        p = index.get((card["patient_id"], card["infusion_id"]), {})
        day = f" d{card['day_now']:+d}" if card.get("day_now") is not None else ""
        head = f"{card['patient_id']} {card.get('product') or '?'}{day}: {iec_text(card)}"
        escalated = [w for w in doc["sections"]["escalated"] if w["criteria_set"] == IEC_HS
                     and (w["patient_id"], w["infusion_id"]) == (card["patient_id"], card["infusion_id"])]
        if escalated:
            head += f" (was {status_label(escalated[0].get('previous_status'))})"
        bits = [head]
        f = p.get("ferritin")
        if f:
            d = f" d{f['latest']['day']:+d}" if f["latest"].get("day") is not None else ""
            bits.append(f"ferritin {f['latest']['value']:,.0f} {f['unit']}{d}")
        crs = crs_pager_text(card.get("crs"))
        bits.append(crs)
        agree = [set_label(v["set"]) for v in card["verdicts"] if v["set"] != IEC_HS and v["verdict"] == "met"]
        # "also" only beside an IEC-HS alert: after "IEC-HS none" or "watch" it would read as agreement
        also = "also met" if card["iec_hs"]["status"] in ("suspected", "criteria_met") else "met"
        tail = f"{also}: {', '.join(agree)}" if agree else "no other set met"
        line = " | ".join(bits + [tail])
        if len(line) > PAGER_MAX:                      # drop the CRS course before anything else
            line = " | ".join(bits[:-1] + [tail])
        out.append(line if len(line) <= PAGER_MAX else line[:PAGER_MAX - 1] + "…")
    return out


# ---------------------------------------------------------------------------------------------
# patient cards: one per patient episode, in order of urgency

URGENCY = ("new criteria met", "escalated", "new suspected", "still open", "no recent data", "watch", "resolved")
IEC_HS = "astct_iec_hs_2023"


def window_urgency(section: str, w: dict) -> int:
    """Index in URGENCY of one window of a section."""
    r = rank(w["status"])
    if section == "resolved":
        return 6
    if section == "escalated":
        return 1
    if section == "new" and r >= 3:
        return 0
    if section == "new" and r == 2:
        return 2
    return 3 if r >= ALERT_RANK else 5


def no_recent_data(last_result_at: str | None, as_of: str | None, limit_hours: float | None) -> bool:
    """True when the episode's latest lab result is more than `limit_hours` before the digest's
    moment (operations.no_recent_data_hours; exactly that many hours is still recent), or it has none."""
    if limit_hours is None or not as_of:
        return False
    if not last_result_at:
        return True
    now = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
    last = datetime.fromisoformat(last_result_at.replace("Z", "+00:00"))
    return (now - last).total_seconds() > limit_hours * 3600


def local_date(at: str | None, tz: str | None) -> str | None:
    """The calendar date of a UTC ISO time in the patient's zone."""
    if not at:
        return None
    moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    return (moment.astimezone(ZoneInfo(tz)) if tz else moment).date().isoformat()


def _iec_hs(windows: list[tuple[str, dict]], tz: str | None) -> dict:
    """The IEC-HS window a card shows: the highest status, open before closed, latest onset."""
    iec = [w for s, w in windows if w["criteria_set"] == IEC_HS and not w.get("withdrawn")]
    if not iec:
        return {"status": None, "onset_day": None, "onset_date": None, "end_day": None}
    w = max(iec, key=lambda w: (w.get("open", False), rank(w["status"]), w.get("onset_at") or ""))
    return {"status": w["status"], "onset_day": w.get("onset_day"), "onset_date": local_date(w.get("onset_at"), tz),
            "end_day": w.get("end_day"), "open": w.get("open", False)}


def _crs_course(p: dict) -> dict | None:
    crs = p.get("crs") or {}
    ep = crs.get("episode") or {}
    if not crs:
        return None
    return {"onset_day": ep.get("onset_day"), "peak_grade": ep.get("peak_grade"), "peak_day": ep.get("peak_day"),
            "improvement_day": ep.get("improvement_day"), "resolved_day": ep.get("resolved_day"),
            "grade_now": crs.get("grade"), "grade_day": crs.get("latest_day")}


def crs_course_text(c: dict | None) -> str:
    """'CRS onset d+2, peak G3 d+4, improving d+5, resolved d+7' (labelled CRS, days post-infusion)."""
    if not c:
        return "CRS not evaluated"
    if c.get("onset_day") is None:
        return "no CRS"
    bits = [f"CRS onset d{c['onset_day']:+d}"]
    if c.get("peak_grade") is not None and c.get("peak_day") is not None:
        bits.append(f"peak G{c['peak_grade']} d{c['peak_day']:+d}")
    if c.get("improvement_day") is not None:
        bits.append(f"improving d{c['improvement_day']:+d}")
    bits.append(f"resolved d{c['resolved_day']:+d}" if c.get("resolved_day") is not None else "not resolved")
    return ", ".join(bits)


def crs_pager_text(c: dict | None) -> str:
    """'CRS G2 d+4 (d+3..d+8)': peak grade and day, onset to resolution ('..' open: not resolved)."""
    if not c or c.get("onset_day") is None:
        return "no CRS" if c else "CRS not evaluated"
    peak = f"G{c['peak_grade']} d{c['peak_day']:+d} " if c.get("peak_grade") is not None and \
        c.get("peak_day") is not None else ""
    end = f"d{c['resolved_day']:+d}" if c.get("resolved_day") is not None else ""
    return f"CRS {peak}(d{c['onset_day']:+d}..{end})"


def _change(section: str, w: dict) -> str:
    label = f"{set_label(w['criteria_set'])} {status_label(w['status'])}"
    if section == "new":
        return f"{label}: new" + ("" if w.get("open", True) else " (opened and closed)")
    if section == "escalated":
        return f"{set_label(w['criteria_set'])}: {status_label(w.get('previous_status'))} -> {status_label(w['status'])}"
    if section == "resolved":
        return f"{label}: " + ("results withdrawn" if w.get("withdrawn") else "resolved")
    return ""


def _count_verdict(name: str, counts: dict | None) -> dict:
    label = set_label(name)
    if not counts or counts.get("met") is None:
        return {"set": name, "verdict": "not evaluable", "text": f"{label} not evaluable (no data)"}
    met, known, total = counts["met"], counts["evaluable"] or 0, counts["total"]
    required = counts.get("required") or total
    unknown = total - known
    verdict = "met" if met >= required else "not met" if met + unknown < required else "not evaluable"
    text = f"{label} {met} of {total} met"
    if unknown:
        missing = counts.get("missing") or []
        text += f", {unknown} not evaluable" + (f" (no {', '.join(missing)})" if missing else "")
    return {"set": name, "verdict": verdict, "text": text}


def _peak_verdict(name: str, st: dict, peak: float | None, cutoff: float | None) -> dict:
    """CARTOX or Shah 2020: a ferritin peak above the cut-off and enough items. Not evaluable when
    there is no ferritin, or the peak is above the cut-off and hemophagocytosis (one of the items)
    was never assessed; not met when the peak is at or below the cut-off, or every item was judged."""
    label = set_label(name)
    if st.get(name) == "met":
        return {"set": name, "verdict": "met", "text": f"{label} met"}
    if not (st.get("results") or {}).get("ferritin") or peak is None or cutoff is None:
        return {"set": name, "verdict": "not evaluable", "text": f"{label} not evaluable (no ferritin to judge)"}
    if peak <= cutoff:
        return {"set": name, "verdict": "not met", "text": f"{label} not met (ferritin peak {peak:,.0f} ≤ {cutoff:,.0f})"}
    if not st.get("hemophagocytosis_assessed"):
        return {"set": name, "verdict": "not evaluable",
                "text": f"{label} not evaluable (ferritin peak {peak:,.0f}; no hemophagocytosis assessment)"}
    return {"set": name, "verdict": "not met", "text": f"{label} not met (ferritin peak {peak:,.0f}; too few organ items)"}


def _ucsf_verdict(st: dict) -> dict:
    """UCSF MAS-L: a ferritin rate needs two ferritin results, its companion a fibrinogen or LDH."""
    name, results = "ucsf_masl_2020", st.get("results") or {}
    if st.get(name) == "met":
        return {"set": name, "verdict": "met", "text": "UCSF MAS-L met"}
    missing = [what for what, ok in (("two ferritin results", results.get("ferritin", 0) >= 2),
                                     ("fibrinogen or LDH", results.get("fibrinogen") or results.get("ldh"))) if not ok]
    if missing:
        return {"set": name, "verdict": "not evaluable", "text": f"UCSF MAS-L not evaluable (no {', no '.join(missing)})"}
    return {"set": name, "verdict": "not met", "text": "UCSF MAS-L not met"}


def _iec_verdict(st: dict, iec: str | None) -> dict:
    if iec:
        return {"set": IEC_HS, "verdict": "met" if rank(iec) >= 3 else status_label(iec),
                "text": f"IEC-HS {status_label(iec)}"}
    if st and not (st.get("results") or {}).get("ferritin"):
        return {"set": IEC_HS, "verdict": "not evaluable", "text": "IEC-HS not evaluable (no ferritin)"}
    return {"set": IEC_HS, "verdict": "not met", "text": "IEC-HS not met"}


def _crs_phase_peak(crs_peak: float | None, st: dict) -> float | None:
    """CARTOX judges the CRS-phase ferritin peak; without one, the episode's highest ferritin
    still decides 'not met' when it is at or below the cut-off (the phase's peak cannot be higher)."""
    if crs_peak is not None:
        return crs_peak
    peak, cutoff = st.get("ferritin_peak"), st.get("cartox_ferritin_gt")
    return peak if peak is not None and cutoff is not None and peak <= cutoff else None


def verdicts(p: dict, iec_status: str | None) -> list[dict]:
    """Every criteria set on the patient's latest day, side by side: met / not met / not evaluable
    (with what is missing)."""
    st = p.get("statuses") or {}
    found = [x for x in (st.get(IEC_HS), iec_status) if x]
    iec = max(found, key=rank) if found else None          # the latest day's status or an open window's
    crs = p.get("crs") or {}
    no_crs = bool(crs) and not (crs.get("episode") or {}).get("onset_day") and not crs.get("days_with_crs")
    crs_peak = (p.get("ferritin") or {}).get("crs_phase_peak")
    cartox = ({"set": "cartox_2017", "verdict": "not met", "text": "CARTOX not met (no CRS)"}
              if no_crs and st.get("cartox_2017") != "met" else
              _peak_verdict("cartox_2017", st, _crs_phase_peak(crs_peak, st), st.get("cartox_ferritin_gt")))
    out = [_iec_verdict(st, iec), cartox,
           _peak_verdict("shah_2020", st, st.get("ferritin_peak"), st.get("shah_ferritin_gt")),
           _ucsf_verdict(st),
           _count_verdict("hlh_94", st.get("hlh_94_counts")),
           _count_verdict("hlh_2004", st.get("hlh_2004_counts"))]
    lo, hi, cutoff = st.get("hscore_min"), st.get("hscore_max"), st.get("hscore_cutoff")
    if lo is None or hi is None or cutoff is None:
        out.append({"set": "hscore", "verdict": "not evaluable", "text": "HScore not evaluable (no data)"})
    else:
        verdict = "met" if lo >= cutoff else "not evaluable" if hi >= cutoff else "not met"
        score = f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
        out.append({"set": "hscore", "verdict": verdict, "text": f"HScore {score} "
                    + {"met": "met", "not evaluable": "possible", "not met": "not met"}[verdict]})
    return out


def cards(doc: dict) -> list[dict]:
    """One card per patient episode with a reported window, most urgent first (URGENCY), then by id."""
    index = patient_index(doc)
    grouped: dict[tuple, list[tuple[str, dict]]] = {}
    for section in SECTIONS:
        for w in doc["sections"][section]:
            grouped.setdefault((w["patient_id"], w["infusion_id"]), []).append((section, w))
    out = []
    for key, ws in grouped.items():
        p = index.get(key, {"patient_id": key[0], "infusion_id": key[1]})
        tz = p.get("site_tz")
        urgency = min(window_urgency(s, w) for s, w in ws)
        stale = no_recent_data(p.get("last_result_at"), doc.get("as_of"), doc.get("no_recent_data_hours"))
        if stale and URGENCY[urgency] == "still open":
            urgency = URGENCY.index("no recent data")
        iec = _iec_hs(ws, tz)
        out.append({
            "patient_id": key[0], "infusion_id": key[1], "urgency": URGENCY[urgency],
            "paged": any(s in ("new", "escalated") and rank(w["status"]) >= ALERT_RANK for s, w in ws),
            "product": p.get("product"), "infusion_date": local_date(p.get("infused_at"), tz),
            "day_now": p.get("day_now"), "last_result_at": p.get("last_result_at"), "no_recent_data": stale,
            "iec_hs": iec, "crs": _crs_course(p),
            "changes": counted([c for s, w in ws if (c := _change(s, w))]),
            "verdicts": verdicts(p, iec["status"]),
        })
    out.sort(key=lambda c: (URGENCY.index(c["urgency"]), c["patient_id"], c["infusion_id"] or ""))
    return out


def counted(changes: list[str]) -> list[str]:
    """Repeated identical changes once, with their number: 'HScore met: new (opened and closed) (3 windows)'."""
    seen: dict[str, int] = {}
    for c in changes:
        seen[c] = seen.get(c, 0) + 1
    return [c if n == 1 else f"{c} ({n} windows)" for c, n in seen.items()]


def verdict_line(card: dict) -> str:
    return "; ".join(v["text"] for v in card["verdicts"])


def iec_text(card: dict) -> str:
    iec = card["iec_hs"]
    if not iec["status"]:
        return "IEC-HS none"
    text = f"IEC-HS {status_label(iec['status'])}"
    if iec.get("onset_day") is not None:
        text += f" onset d{iec['onset_day']:+d}"
    return text
