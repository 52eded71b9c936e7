"""The digest document: one JSON-able dict that every renderer (md, html, json, pager) reads.

It is made from the two selections (select.py) and the stream's prior state (state.py), and is
stored as is (flags.digest_by_night), so a backfill night and a nightly run of the same moment
store the same document.
"""

from __future__ import annotations

from datetime import datetime

from cartwatch.digest.select import iso
from cartwatch.digest.state import ALERT_RANK, SECTIONS, alert_count, classify, rank

SET_LABELS = {"astct_iec_hs_2023": "IEC-HS", "cartox_2017": "CARTOX", "shah_2020": "Shah 2020",
              "ucsf_masl_2020": "UCSF MAS-L", "hlh_94": "HLH-94", "hlh_2004": "HLH-2004",
              "hscore": "HScore"}
PAGER_MAX = 139


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
    }
    return doc, state


def patient_index(doc: dict) -> dict[tuple[str, str], dict]:
    return {(p["patient_id"], p["infusion_id"]): p for p in doc["patients"]}


def set_label(criteria_set: str) -> str:
    return SET_LABELS.get(criteria_set, criteria_set)


def status_label(status: str | None) -> str:
    return (status or "").replace("_", " ")


def crs_state(patient: dict | None) -> str:
    """'CRS grade 2 (documented) day +5; onset +2, peak G3 +4, resolved +7', or 'no CRS'."""
    crs = (patient or {}).get("crs") or {}
    parts = []
    if crs.get("grade") is not None:
        src = f" ({crs['grade_source']})" if crs.get("grade_source") else ""
        parts.append(f"CRS grade {crs['grade']}{src} day {crs['latest_day']:+d}")
    ep = crs.get("episode") or {}
    if ep.get("onset_day") is not None:
        bits = [f"onset {ep['onset_day']:+d}"]
        if ep.get("peak_grade") is not None and ep.get("peak_day") is not None:
            bits.append(f"peak G{ep['peak_grade']} {ep['peak_day']:+d}")
        bits.append(f"resolved {ep['resolved_day']:+d}" if ep.get("resolved_day") is not None else "not resolved")
        parts.append(", ".join(bits))
    elif crs and not crs.get("days_with_crs"):
        parts.append("no CRS")
    return "; ".join(parts) if parts else "CRS not evaluated"


def ferritin_trend(patient: dict | None) -> str:
    f = (patient or {}).get("ferritin")
    if not f:
        return "no ferritin results"
    recent = ", ".join(f"{p['value']:,.0f} (d{p['day']:+d})" if p.get("day") is not None else f"{p['value']:,.0f}"
                       for p in f["recent"])
    folds = []
    if f.get("fold_from_nadir"):
        folds.append(f"{f['fold_from_nadir']:.1f}x nadir {f['nadir']:,.0f}")
    if f.get("fold_from_baseline"):
        folds.append(f"{f['fold_from_baseline']:.1f}x baseline {f['baseline']:,.0f}")
    return f"{recent} {f['unit']}" + (f"; latest {'; '.join(folds)}" if folds else "")


def pager_lines(doc: dict) -> list[str]:
    """One line under 140 characters per alert (new or escalated, suspected and above)."""
    index = patient_index(doc)
    out = []
    for section in ("new", "escalated"):
        for w in doc["sections"][section]:
            if rank(w["status"]) < ALERT_RANK:
                continue
            p = index.get((w["patient_id"], w["infusion_id"]), {})
            day = f" d{p['day_now']:+d}" if p.get("day_now") is not None else ""
            head = f"{w['patient_id']} {p.get('product') or ''}{day}: {set_label(w['criteria_set'])} " \
                   f"{status_label(w['status'])}"
            if section == "escalated":
                head += f" (was {status_label(w.get('previous_status'))})"
            bits = [head]
            f = p.get("ferritin")
            if f:
                fer = f"ferritin {f['latest']['value']:,.0f} {f['unit']}"
                if f.get("fold_from_nadir"):
                    fer += f" {f['fold_from_nadir']:.1f}x nadir"
                bits.append(fer)
            crs = crs_state(p).split(";")[-1].strip()
            bits.append(crs)
            line = " | ".join(b for b in bits if b)
            out.append(line if len(line) <= PAGER_MAX else line[:PAGER_MAX - 1] + "…")
    return out
