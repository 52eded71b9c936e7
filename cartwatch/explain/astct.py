"""ASTCT 2023 IEC-HS explained in the order a clinician checks it: the CRS course, each ferritin
result (elevated or not, which worsening rule fired or why none did, whether the timing held and
why), the most-common manifestations found or missing within the manifestation window, and the
windows that resulted. Every judgement is a stored column: derived.crs_episodes,
derived.ferritin_trajectory (signal, timing_reason), flags.astct_iec_hs_2023_points (status at each
result), flags.astct_iec_hs_2023_manifestations and flags.windows."""

from __future__ import annotations

from datetime import timedelta

import duckdb

from cartwatch.explain import words as w
from cartwatch.explain.read import iso, of_episode, rows
from transforms.rules import Rules

SET = "astct_iec_hs_2023"
COMMON_MANIFESTATIONS = ("transaminases", "fibrinogen", "cytopenia", "hemophagocytosis")

FERRITIN_SQL = """
SELECT f.*, p.status AS point_status, p.manifestations
FROM derived.ferritin_trajectory AS f
LEFT JOIN flags.astct_iec_hs_2023_points AS p
    ON p.patient_id = f.patient_id AND p.infusion_id = f.infusion_id AND p.point_kind = 'ferritin'
    AND p.observed_at = f.observed_at AND p.source IS NOT DISTINCT FROM f.source
WHERE f.patient_id = ? AND f.infusion_id = ?
ORDER BY f.observed_at, f.source
"""
FOUND_SQL = """
SELECT observed_at, day, status, unnest(evidence) AS item
FROM flags.astct_iec_hs_2023_points
WHERE patient_id = ? AND infusion_id = ? AND status = 'criteria_met'
ORDER BY observed_at
"""
TIMING = {
    "after_improvement": "timing holds: after CRS improvement + {hours} (from {from_})",
    "re_escalated": "timing holds: CRS re-escalated after improving",
    "no_crs_by_day": "timing holds: no CRS, day {no_crs_day} or later",
    "no_crs_yet": "timing not yet: no CRS so far and before day {no_crs_day} (CRS may still come)",
    "crs_not_improved": "timing does not hold: CRS has not improved yet",
    "within_improvement_hours": "timing does not hold: within {hours} of CRS improvement (holds after {from_})",
}


def explain_astct(con: duckdb.DuckDBPyConnection, rules: Rules, ep: dict, windows: list[dict]) -> dict:
    tz = ep["site_tz"]
    crs = of_episode(con, "derived.crs_episodes", ep, "onset_at")
    ferritin = rows(con, FERRITIN_SQL, [ep["patient_id"], ep["infusion_id"]])
    manifestations = of_episode(con, "flags.astct_iec_hs_2023_manifestations", ep, "observed_at, rule",
                                "AND manifestation_class = 'common'")
    found = [r for r in rows(con, FOUND_SQL, [ep["patient_id"], ep["infusion_id"]])
             if r["item"]["rule"] in COMMON_MANIFESTATIONS]
    mine = [x for x in windows if x["criteria_set"] == SET]
    verdict = max((x["status"] for x in mine), key=w.STATUS_RANK.get, default="none")
    post = [f for f in ferritin if f["timing_reason"] is not None]      # after the infusion
    sections = [
        {"title": "CRS course", "lines": crs_lines(rules, crs[0] if crs else None, tz)},
        {"title": "Ferritin", "lines": ferritin_lines(rules, ferritin, tz)},
        {"title": "Manifestations", "lines": manifestation_lines(rules, verdict, manifestations, found, tz)},
    ]
    return {"criteria_set": SET, "label": w.SET_LABELS[SET], "verdict": verdict,
            "summary": summary(rules, verdict, mine, post, tz),
            "sections": sections,
            "crs": crs_facts(crs[0] if crs else None),
            "ferritin": [ferritin_facts(f) for f in ferritin],
            "manifestations": [manifestation_facts(m) for m in manifestations]}


# --- the CRS course ---------------------------------------------------------------------------


def crs_lines(rules: Rules, c: dict | None, tz: str) -> list[str]:
    if c is None or not c["had_crs"]:
        return [f"no CRS: the timing holds from day {w.value_of(rules, 'iec_hs.no_crs_timing_day')} on "
                "(iec_hs.no_crs_timing_day)"]
    hours = rules.value("iec_hs.timing_after_improvement_hours")
    lines = [f"onset {w.day(c['onset_day'])} ({w.when(c['onset_at'], tz)}); "
             f"peak grade {c['peak_grade']} {w.day(c['peak_day'])}"]
    if c["improvement_at"] is None:
        lines.append("not improved yet")
    else:
        lines.append(f"improved {w.day(c['improvement_day'])} ({w.when(c['improvement_at'], tz)}); "
                     f"+ {w.rule(rules, 'iec_hs.timing_after_improvement_hours')}: "
                     f"{w.when(c['improvement_at'] + timedelta(hours=hours), tz)}")
    lines.append("re-escalated " + (f"{w.day(c['reescalated_day'])} ({w.when(c['reescalated_at'], tz)})"
                                    if c["reescalated_at"] else "never"))
    # resolved_at is the end of the resolution day (the next day's 00:00): said so, or d+5 next to
    # the 6th's date reads as a contradiction
    lines.append("resolved " + (f"at the end of {w.day(c['resolved_day'])} ({w.when(c['resolved_at'], tz)})"
                                if c["resolved_at"] else "not yet"))
    return lines


def crs_facts(c: dict | None) -> dict | None:
    if c is None:
        return None
    keep = ("onset_day", "onset_at", "peak_grade", "peak_day", "improvement_day", "improvement_at",
            "reescalated_day", "reescalated_at", "resolved_day", "resolved_at", "had_crs")
    return {k: iso(c[k]) if k.endswith("_at") else c[k] for k in keep}


# --- ferritin -----------------------------------------------------------------------------------


def ferritin_lines(rules: Rules, ferritin: list[dict], tz: str) -> list[str]:
    if not ferritin:
        return ["no ferritin result"]
    lines = []
    for f in ferritin:
        head = f"{w.day(f['day'])} {w.when(f['observed_at'], tz)} {w.amount(f['value'], f['unit'], f['comparator'])}"
        if f["timing_reason"] is None:                       # before the infusion: baseline context
            lines.append(f"{head}: before the infusion ({elevation(rules, f)})")
            continue
        lines.append(f"{head}: {elevation(rules, f)}")
        lines.append(f"    {worsening(rules, f)}; {timing(rules, f, tz)} -> {w.point_status(f['point_status'])}")
    return lines


def elevation(rules: Rules, f: dict) -> str:
    """Elevated or not against ULN and baseline (the stored `elevated` decides; this says why)."""
    x_uln = rules.value("iec_hs.ferritin_elevated_x_uln")
    ref = f"ULN {w.number(f['uln'])}" + (f", baseline {w.number(f['baseline'])}" if f["baseline"] is not None else "")
    x_base = rules.value("iec_hs.ferritin_elevated_x_baseline")
    high_baseline = f["baseline"] is not None and f["uln"] is not None and f["baseline"] > f["uln"]
    if f["elevated"]:
        also = f" and > {w.number(x_base)} x baseline, which is above ULN" if high_baseline else ""
        return f"elevated ({ref}: > {w.number(x_uln)} x ULN{also})"
    if f["uln"] is not None and f["value"] <= x_uln * f["uln"]:
        return f"not elevated ({ref}: not > {w.number(x_uln)} x ULN = {w.number(x_uln * f['uln'])})"
    return (f"not elevated ({ref}: baseline above ULN, not > {w.number(x_base)} x baseline = "
            f"{w.number(x_base * f['baseline'])})")


def worsening(rules: Rules, f: dict) -> str:
    """Which worsening rule fired (the stored `signal`), or why none did, rule by rule."""
    if not f["elevated"]:
        return "no signal (not elevated)"
    if f["signal"] is not None:
        return f"signal {f['signal'].replace('_', '-')} ({signal_detail(rules, f)})"
    return "no worsening rule fired: " + "; ".join(why_not(rules, f))


def signal_detail(rules: Rules, f: dict) -> str:
    if f["signal"] == "re_rise":
        return f">= {w.value_of(rules, 'iec_hs.re_rise_factor')} x post-peak nadir {w.number(f['post_peak_nadir'])}"
    if f["signal"] == "rapid_rise":
        return (f"{w.number(f['max_rate_ng_ml_h'])} ng/mL/h >= "
                f"{w.value_of(rules, 'iec_hs.rapid_rise_ng_ml_per_hour')}")
    return f"above CRS-phase peak {w.number(f['crs_phase_peak'])}"


def why_not(rules: Rules, f: dict) -> list[str]:
    factor = rules.value("iec_hs.re_rise_factor")
    nadir, peak, rate = f["post_peak_nadir"], f["crs_phase_peak"], f["max_rate_ng_ml_h"]
    re_rise = ("re-rise: no nadir yet" if nadir is None
               else f"re-rise: < {w.number(factor)} x nadir {w.number(nadir)} = {w.number(factor * nadir)}")
    rapid = (f"rapid rise: no earlier result within {w.value_of(rules, 'iec_hs.rapid_rise_window_hours')} h"
             if rate is None else f"rapid rise: {w.number(rate)} ng/mL/h < "
             f"{w.value_of(rules, 'iec_hs.rapid_rise_ng_ml_per_hour')}")
    if peak is None:
        new_high = "new high: no CRS-phase peak"
    elif f["value"] <= peak:
        new_high = f"new high: not above CRS-phase peak {w.number(peak)}"
    else:
        new_high = "new high: CRS-phase window still open (resolution + iec_hs.ferritin_lag_hours)"
    return [re_rise, rapid, new_high]


def timing(rules: Rules, f: dict, tz: str) -> str:
    return TIMING[f["timing_reason"]].format(
        hours=f"{w.value_of(rules, 'iec_hs.timing_after_improvement_hours')} h",
        from_=w.when(f["timing_from"], tz), no_crs_day=w.value_of(rules, "iec_hs.no_crs_timing_day"))


def ferritin_facts(f: dict) -> dict:
    """One result as the JSON gives it: the stored judgement, the status the IEC-HS had there."""
    keep = ("day", "value", "comparator", "unit", "uln", "baseline", "elevated", "crs_phase_peak", "post_peak_nadir",
            "max_rate_ng_ml_h", "re_rise", "rapid_rise", "new_high", "signal", "timing_holds", "timing_reason",
            "source")
    return {"at": iso(f["observed_at"]), **{k: f[k] for k in keep}, "timing_from": iso(f["timing_from"]),
            "status": f["point_status"]}


# --- manifestations -------------------------------------------------------------------------------


def manifestation_lines(rules: Rules, verdict: str, common: list[dict], found: list[dict], tz: str) -> list[str]:
    window = rules.value("iec_hs.manifestation_window_hours")
    lines = []
    seen = {}
    for r in found:                                          # first pairing per manifestation
        seen.setdefault(r["item"]["rule"], r)
    for name in COMMON_MANIFESTATIONS:
        if name in seen:
            item = seen[name]["item"]
            lines.append(f"{name}: found within {w.number(window)} h of a suspected ferritin: "
                         f"{w.result(item)} ({item['detail'] or 'documented'}{threshold_of(item, common)})")
        else:
            lines.append(f"{name}: none within {w.number(window)} h of a suspected ferritin"
                         + elsewhere([m for m in common if m["rule"] == name], tz))
    if verdict in ("none", "watch"):
        lines.insert(0, "(no suspected ferritin result: manifestations cannot make criteria met)")
    return lines


def threshold_of(item: dict, common: list[dict]) -> str:
    """'; threshold 200 U/L': the stored threshold the result was judged against, in its unit (the
    detail alone, 'above x ULN', does not say above what)."""
    for m in common:
        if ((m["rule"], m["analyte"], iso(m["observed_at"])) == (item["rule"], item["analyte"], item["at"])
                and m["threshold"] is not None):
            return f"; threshold {w.amount(m['threshold'], m['unit'])}"
    return ""


def elsewhere(results: list[dict], tz: str) -> str:
    if not results:
        return "; no result of the episode shows it"
    first = results[0]
    return (f"; {len(results)} result(s) of the episode show it, first {w.day(first['day'])} "
            f"{first['analyte']} {w.amount(first['value'], first['unit'])}")


def manifestation_facts(m: dict) -> dict:
    return {"rule": m["rule"], "analyte": m["analyte"], "value": m["value"], "unit": m["unit"],
            "threshold": m["threshold"], "detail": m["detail"], "at": iso(m["observed_at"]), "day": m["day"],
            "source": m["source"]}


# --- verdict ---------------------------------------------------------------------------------------


VERDICT_NOTES = {
    "watch": ["watch only: every ferritin signal came while the timing did not hold "
              "(CRS-associated hyperferritinemia, not an IEC-HS window)"],
    "suspected": ["suspected, not criteria met: no most-common manifestation within the manifestation "
                  "window of a suspected ferritin"],
}


def summary(rules: Rules, verdict: str, windows: list[dict], post: list[dict], tz: str) -> list[str]:
    """Why the verdict is what it is, in a few lines (details in the sections)."""
    if verdict != "none":
        return [window_line(x, tz) for x in windows] + VERDICT_NOTES.get(verdict, [])
    if not post:
        return ["not flagged: no ferritin result after the infusion"]
    if not any(f["elevated"] for f in post):
        return [f"not flagged: ferritin never elevated after the infusion "
                f"(> {w.rule(rules, 'iec_hs.ferritin_elevated_x_uln')}; and > "
                f"{w.rule(rules, 'iec_hs.ferritin_elevated_x_baseline')} when the baseline is above ULN)"]
    if not any(f["elevated"] for f in post if f["timing_holds"]):
        return ["not flagged: ferritin was elevated only while the timing did not hold, and never again "
                "once it held (no re-rise)"]
    return ["not flagged: ferritin was elevated but no worsening rule fired at any result "
            "(re-rise, rapid rise, new high: see each result)"] + closest_re_rise(rules, post)


def closest_re_rise(rules: Rules, post: list[dict]) -> list[str]:
    """Once the timing held, the elevated result nearest to a re-rise (against its own nadir)."""
    factor = rules.value("iec_hs.re_rise_factor")
    held = [f for f in post if f["timing_holds"] and f["elevated"] and f["post_peak_nadir"]]
    if not held:
        return []
    f = max(held, key=lambda f: f["value"] / f["post_peak_nadir"])
    return [f"closest to a re-rise once the timing held: {w.day(f['day'])} "
            f"{w.amount(f['value'], f['unit'], f['comparator'])} against {w.number(factor)} x nadir "
            f"{w.number(f['post_peak_nadir'])} = {w.number(factor * f['post_peak_nadir'])} "
            "(iec_hs.re_rise_factor)"]


def window_line(x: dict, tz: str) -> str:
    end = f"closed {w.day(x['end_day'])} ({w.when(x['end_at'], tz)})" if x["end_at"] else "open"
    late = ", late onset" if x["late_onset"] else ""
    return (f"window {w.status_words(x['status'])}: onset {w.day(x['onset_day'])} "
            f"({w.when(x['onset_at'], tz)}), {end}{late}")
