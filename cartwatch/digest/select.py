"""What a digest shows, read from the built tables as of one moment.

Two selections, both plain JSON-able dicts so that a nightly run and a backfill night (which
builds in its own in-memory database) produce byte-identical documents:

- `patient_snapshot`: every onset window that is not `not_met`, and for each patient with one the
  context an on-call clinician needs (product, day post-infusion, CRS state, each criteria set's
  status, the ferritin trend and the series for its plot). Reads derived.* and flags.* only.
- `data_quality`: files loaded and rows quarantined since the previous digest, and feeds whose
  newest result is older than `operations.feed_silence_hours`. Reads meta, quarantine and stg.

Tables the clinical engine has not built yet are treated as empty, so the digest degrades to what
the store holds.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, timezone
from pathlib import PurePath

import duckdb

from cartwatch.digest.plot_data import plot_data
from cartwatch.loader import reason_category
from cartwatch.store import table_columns
from transforms.criteria_inputs import CRITERIA_EVENTS
from transforms.rules import Rules

CRITERIA_SETS = ("astct_iec_hs_2023", "cartox_2017", "shah_2020", "ucsf_masl_2020", "hlh_94",
                 "hlh_2004", "hscore")
WINDOW_COLUMNS = ("patient_id", "infusion_id", "criteria_set", "status", "onset_at", "onset_day",
                  "end_at", "end_day", "crs_onset_day", "crs_peak_day", "crs_resolved_day",
                  "late_onset", "evidence", "rules_version")
SILENCE_FEEDS = {"labs": ("stg.lab_results", "coalesce(resulted_at, observed_at)"),
                 "vitals": ("stg.vitals", "observed_at"),
                 "events": ("stg.events", "observed_at")}
RECENT_VALUES = 5         # values listed in a trend line (a display choice, not a clinical rule)
FILES_LISTED = 20         # more files loaded than this: the digest shows totals per feed


# ---------------------------------------------------------------------------------------------
# helpers


def iso(value: object) -> str | None:
    """UTC ISO 8601 with `Z` for timestamps; dates as ISO dates; None stays None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _plain(value: object) -> object:
    if isinstance(value, (datetime, date)):
        return iso(value)
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if hasattr(value, "item"):          # numpy / decimal-like scalars
        return _plain(value.item())
    return value


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict | list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [{n: _plain(v) for n, v in zip(names, r)} for r in cursor.fetchall()]


def parse_evidence(text: object) -> list[dict]:
    """The evidence JSON of a window (contract.md §5) as a list of dicts; unreadable: empty."""
    if text is None:
        return []
    if isinstance(text, list):
        return text
    try:
        value = json.loads(str(text))
    except ValueError:
        return []
    return value if isinstance(value, list) else [value] if isinstance(value, dict) else []


RULE_PREFIX = {"astct_iec_hs_2023": "iec_hs", "cartox_2017": "cartox", "shah_2020": "shah",
               "ucsf_masl_2020": "ucsf", "hlh_94": "hlh_94", "hlh_2004": "hlh_2004", "hscore": "hscore"}


def evidence_key(e: dict) -> tuple:
    return (str(e.get("at") or ""), str(e.get("rule") or ""), str(e.get("analyte") or ""), str(e.get("value")),
            str(e.get("source") or ""))


def canonical_evidence(text: object) -> object:
    """Evidence JSON with its items in time order (the engine's order is not guaranteed)."""
    items = parse_evidence(text)
    if not items or not all(isinstance(e, dict) for e in items):
        return text
    return json.dumps(sorted(items, key=evidence_key), separators=(",", ":"))


def threshold(rules: Rules, rule: str | None, criteria_set: str | None = None) -> dict | None:
    """The rules-file value a piece of evidence was judged against: its rule id, or the criteria
    set's first rule whose id starts with the evidence's short rule name (`re_rise` in IEC-HS:
    `iec_hs.re_rise_factor`)."""
    table = rules.raw.get("rules", {})
    rule_id = rule if rule in table else None
    if rule_id is None and rule and criteria_set in RULE_PREFIX:
        stem = f"{RULE_PREFIX[criteria_set]}.{rule}"
        rule_id = next((r for r in table if r.startswith(stem)), None)
        if rule_id is None and rule.endswith("s"):          # `transaminases`: iec_hs.transaminase_x_uln
            rule_id = next((r for r in table if r.startswith(stem[:-1])), None)
    if rule_id is None or not isinstance(table[rule_id], dict):
        return None
    return {"rule": rule_id, "value": table[rule_id].get("value"), "unit": table[rule_id].get("unit")}


# ---------------------------------------------------------------------------------------------
# windows and patients


def windows(con: duckdb.DuckDBPyConnection, rules: Rules) -> list[dict]:
    """flags.windows without `not_met` rows, evidence parsed and thresholds attached, in a stable order."""
    have = table_columns(con, "flags.windows")
    if not {"patient_id", "criteria_set", "status"} <= have:
        return []
    cols = ", ".join(c if c in have else f"NULL AS {c}" for c in WINDOW_COLUMNS)
    found = rows(con, f"SELECT {cols} FROM flags.windows WHERE status IS DISTINCT FROM 'not_met' "
                      "ORDER BY patient_id, infusion_id, criteria_set, onset_at, status")
    refs = _references(con, {(w["patient_id"], w["infusion_id"]) for w in found})
    for w in found:
        w["evidence"] = [dict(e, threshold=threshold(rules, _rule_of(e), w["criteria_set"]),
                              **refs.get((w["patient_id"], w["infusion_id"], e.get("analyte"), _moment(e.get("at"))), {}))
                         for e in sorted((e for e in parse_evidence(w["evidence"]) if isinstance(e, dict)),
                                         key=evidence_key)]
        w["evidence_summary"] = summarize_evidence(w["evidence"])
        for e in w["evidence"]:                  # used for the summary's thresholds only
            e.pop("uln", None)
            e.pop("lln", None)
            e.pop("baseline", None)
    return found


def _rule_of(e: dict) -> str | None:
    """The rule an item was judged by; a new cytopenia is judged by the analyte's fixed cut-off
    (iec_hs.anc_lt), a worsening one by the fraction."""
    if e.get("rule") == "cytopenia" and e.get("detail") == "new" and e.get("analyte"):
        return str(e["analyte"])
    return e.get("rule")


def _moment(at: object) -> str | None:
    if not at:
        return None
    try:
        return iso(datetime.fromisoformat(str(at).replace("Z", "+00:00")))
    except ValueError:
        return None


# Only the digest's patients are read (bound as a list): the cohort's tables grow with the data
OF_PATIENTS = "list_contains(?::VARCHAR[], patient_id)"


def _patients(keys) -> list[str]:
    """The patient ids of (patient, infusion) keys, for OF_PATIENTS."""
    return sorted({patient for patient, _ in keys})


def _references(con, keys: set[tuple[str, str]]) -> dict[tuple, dict]:
    """ULN and baseline of each lab result of the episodes, by (patient, infusion, analyte, time)."""
    have = table_columns(con, "derived.timeline")
    if not keys or not {"patient_id", "infusion_id", "analyte", "observed_at", "uln", "lln", "baseline"} <= have:
        return {}
    out = {}
    for r in rows(con, "SELECT patient_id, infusion_id, analyte, observed_at, uln, lln, baseline FROM derived.timeline "
                       f"WHERE (uln IS NOT NULL OR lln IS NOT NULL OR baseline IS NOT NULL) AND {OF_PATIENTS}",
                  [_patients(keys)]):
        if (r["patient_id"], r["infusion_id"]) in keys:
            out[(r["patient_id"], r["infusion_id"], r["analyte"], r["observed_at"])] = {
                "uln": r["uln"], "lln": r["lln"], "baseline": r["baseline"]}
    return out


LOWER_IS_WORSE = {"fibrinogen", "platelets", "anc", "hemoglobin", "wbc", "lymphocytes"}
FINDINGS = frozenset(CRITERIA_EVENTS)   # documented yes/no findings, not measurements


def threshold_in_unit(e: dict) -> float | None:
    """The item's threshold as a number in the result's unit: a multiple of its ULN, baseline or
    (the engine's note) post-peak nadir, or the cut-off itself when written in the result's unit."""
    t = e.get("threshold") or {}
    value, unit = t.get("value"), t.get("unit")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    if unit == "x ULN" and e.get("uln"):
        return round(value * e["uln"], 6)
    if unit == "x baseline" and e.get("baseline"):
        return round(value * e["baseline"], 6)
    if unit == "x nadir":
        found = re.search(r"nadir ([0-9.]+)", str(e.get("detail") or ""))
        return round(value * float(found.group(1)), 6) if found else None
    if unit and unit == e.get("unit"):
        return e["lln"] if lln_used(e) else value
    return None


def lln_used(e: dict) -> bool:
    """Whether the engine judged the item against the result's LLN rather than the fixed cut-off
    (IEC-HS fibrinogen: below max(cut-off, LLN); a site whose LLN is 200 mg/dL is judged at 200)."""
    value, lln = (e.get("threshold") or {}).get("value"), e.get("lln")
    return ("LLN" in str(e.get("detail") or "") and isinstance(value, (int, float))
            and isinstance(lln, (int, float)) and lln > value)


def threshold_text(t: dict) -> str | None:
    """A rules-file threshold as a clinician reads it: '5 x ULN', '50%' (a fraction), '5' (a count)."""
    value, unit = t.get("value"), t.get("unit")
    if not isinstance(value, (int, float)) or not unit:
        return None
    if unit == "fraction":
        return f"{100 * value:g}%"
    return f"{value:g}" if unit == "count" else f"{value:g} {unit}"


def summarize_evidence(items: list[dict]) -> list[dict]:
    """Per manifestation (rule and analyte): the worst result with its time, the threshold in the
    result's unit, its source, and how many more results of the window support it (first-seen order)."""
    groups: dict[tuple, list[dict]] = {}
    for e in items:
        groups.setdefault((str(e.get("rule") or ""), str(e.get("analyte") or "")), []).append(e)
    out = []
    for (rule, analyte), found in groups.items():
        numeric = [e for e in found if isinstance(e.get("value"), (int, float)) and not isinstance(e.get("value"), bool)]
        if numeric:
            pick = min if analyte in LOWER_IS_WORSE else max
            worst = pick(numeric, key=lambda e: e["value"])
        else:
            worst = found[-1]
        t = worst.get("threshold") or {}
        out.append({"rule": rule, "analyte": analyte, "value": worst.get("value"),
                    "comparator": worst.get("comparator"), "unit": worst.get("unit"),
                    "at": worst.get("at"), "source": worst.get("source"), "detail": worst.get("detail"),
                    "finding": analyte in FINDINGS, "threshold_value": threshold_in_unit(worst),
                    "threshold_rule": t.get("rule"),
                    "threshold_text": (f"LLN; cut-off {threshold_text(t)}" if lln_used(worst) else threshold_text(t)),
                    "more": len(found) - 1})
    return out


def _episodes(con, as_of: datetime, keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    if not keys or not table_columns(con, "derived.infusion_episodes"):
        return {}
    found = rows(con, "SELECT patient_id, infusion_id, product, infused_at, site_tz, "
                      "day_post_infusion(site_tz, $as_of::TIMESTAMPTZ, infused_at) AS day_now "
                      "FROM derived.infusion_episodes", {"as_of": as_of})
    return {k: r for r in found if (k := (r["patient_id"], r["infusion_id"])) in keys}


def _crs(con, keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """Latest daily CRS grade and the first episode's onset, peak and resolution days."""
    out: dict[tuple[str, str], dict] = {}
    if {"patient_id", "infusion_id", "day", "grade"} <= table_columns(con, "derived.crs_daily"):
        src = "grade_source" if "grade_source" in table_columns(con, "derived.crs_daily") else "NULL"
        for r in rows(con, f"""
                SELECT patient_id, infusion_id, arg_max(day, day) AS day, arg_max(grade, day) AS grade,
                       arg_max({src}, day) AS grade_source,
                       list(day ORDER BY day) FILTER (WHERE grade >= 1) AS crs_days
                FROM derived.crs_daily GROUP BY ALL"""):
            if (r["patient_id"], r["infusion_id"]) in keys:
                out[(r["patient_id"], r["infusion_id"])] = {
                    "latest_day": r["day"], "grade": r["grade"], "grade_source": r["grade_source"],
                    "days_with_crs": r["crs_days"] or []}
    have = table_columns(con, "derived.crs_episodes")
    if {"patient_id", "infusion_id", "onset_day"} <= have:
        pick = [c for c in ("onset_day", "peak_grade", "peak_day", "improvement_day", "resolved_day",
                            "resolved_at", "improvement_at") if c in have]
        for r in rows(con, f"SELECT patient_id, infusion_id, {', '.join(pick)} FROM derived.crs_episodes "
                           "ORDER BY patient_id, infusion_id, onset_day"):
            key = (r["patient_id"], r["infusion_id"])
            if key in keys and "episode" not in out.setdefault(key, {}):
                out[key]["episode"] = {c: r[c] for c in pick}
    return out


def _statuses(con, keys: set[tuple[str, str]], rules: Rules) -> dict[tuple[str, str], dict]:
    """Each criteria set's status on the patient's latest day of flags.daily."""
    have = table_columns(con, "flags.daily")
    if not {"patient_id", "infusion_id", "day"} <= have:
        return {}
    extra = [c for c in ("hlh_2004_met", "hlh_2004_evaluable", "hscore_min", "hscore_max",
                         "ferritin_signal") if c in have]
    sets = [c for c in CRITERIA_SETS if c in have]
    pick = ", ".join(f"arg_max({c}, day) AS {c}" for c in sets + extra)
    if not pick:
        return {}
    out = {}
    for r in rows(con, f"SELECT patient_id, infusion_id, max(day) AS day, {pick} FROM flags.daily GROUP BY ALL"):
        key = (r.pop("patient_id"), r.pop("infusion_id"))
        if key in keys:
            out[key] = r
    _hlh_counts(con, out, rules)
    _verdict_inputs(con, out)
    for st in out.values():
        st["hscore_cutoff"] = rules.value("hscore.cutoff")
        st["cartox_ferritin_gt"] = rules.value("cartox.ferritin_peak_gt")
        st["shah_ferritin_gt"] = rules.value("shah.ferritin_peak_gt")
    return out


VERDICT_ANALYTES = ("ferritin", "fibrinogen", "ldh")


def _verdict_inputs(con, out: dict[tuple[str, str], dict]) -> None:
    """What tells 'not met' from 'not evaluable' for CARTOX, Shah and UCSF MAS-L: the episode's
    ferritin, fibrinogen and LDH result counts, its highest ferritin, and whether hemophagocytosis
    was ever documented either way (an item neither set can judge without)."""
    if not out:
        return
    if {"patient_id", "infusion_id", "analyte", "value"} <= table_columns(con, "derived.timeline"):
        for r in rows(con, f"SELECT patient_id, infusion_id, analyte, count(*) AS n, max(value) AS peak "
                           f"FROM derived.timeline WHERE analyte IN {VERDICT_ANALYTES} AND value IS NOT NULL "
                           f"AND {OF_PATIENTS} GROUP BY ALL", [_patients(out)]):
            st = out.get((r["patient_id"], r["infusion_id"]))
            if st is not None:
                st.setdefault("results", {})[r["analyte"]] = r["n"]
                if r["analyte"] == "ferritin":
                    st["ferritin_peak"] = r["peak"]
    if {"patient_id", "infusion_id", "hemophagocytosis"} <= table_columns(con, "derived.hlh_criteria_daily"):
        for r in rows(con, "SELECT patient_id, infusion_id, bool_or(hemophagocytosis IS NOT NULL) AS assessed "
                           f"FROM derived.hlh_criteria_daily WHERE {OF_PATIENTS} GROUP BY ALL", [_patients(out)]):
            st = out.get((r["patient_id"], r["infusion_id"]))
            if st is not None:
                st["hemophagocytosis_assessed"] = bool(r["assessed"])


HLH_INPUTS = {  # criterion of a set -> the day's worst-value / finding columns that can decide it
    "hlh_2004": [("fever", ("temperature_max",)), ("splenomegaly", ("splenomegaly",)),
                 ("cytopenias", ("hemoglobin_min", "platelets_min", "anc_min")),
                 ("triglycerides/fibrinogen", ("triglycerides_max", "fibrinogen_min")),
                 ("hemophagocytosis", ("hemophagocytosis",)), ("NK activity", ()),
                 ("ferritin", ("ferritin_max",)), ("sCD25", ("scd25_max",))],
    "hlh_94": [("fever", ("temperature_max",)), ("splenomegaly", ("splenomegaly",)),
               ("cytopenias", ("hemoglobin_min", "platelets_min", "anc_min")),
               ("triglycerides/fibrinogen", ("triglycerides_max", "fibrinogen_min")),
               ("hemophagocytosis", ("hemophagocytosis",))],
}


def _hlh_counts(con, out: dict[tuple[str, str], dict], rules: Rules) -> None:
    """HLH-2004 and HLH-94 on the latest day of flags.daily: criteria met, criteria that could be
    decided, their total, and the criteria with no input at all that day (`<set>_missing`)."""
    have = table_columns(con, "derived.hlh_criteria_daily")
    if not out or not {"patient_id", "infusion_id", "day"} <= have:
        return
    for name, items in HLH_INPUTS.items():
        if not {f"{name}_met_count", f"{name}_evaluable_count"} <= have:
            continue
        inputs = sorted({c for _, cols in items for c in cols if c in have})
        sel = ", ".join([f"{name}_met_count AS met", f"{name}_evaluable_count AS evaluable"]
                        + [f"{c} IS NOT NULL AS {c}" for c in inputs])
        for r in rows(con, f"SELECT patient_id, infusion_id, day, {sel} FROM derived.hlh_criteria_daily "
                           f"WHERE {OF_PATIENTS}", [_patients(out)]):
            st = out.get((r["patient_id"], r["infusion_id"]))
            if st is None or r["day"] != st.get("day"):
                continue
            st[f"{name}_counts"] = {
                "met": r["met"], "evaluable": r["evaluable"], "total": len(items),
                "required": int(rules.value("hlh_2004.criteria_required")) if name == "hlh_2004" else len(items),
                "missing": [label for label, cols in items if not any(r.get(c) for c in cols)]}


def _last_results(con, keys: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The time of each episode's latest lab result (derived.timeline)."""
    if not keys or not {"patient_id", "infusion_id", "observed_at"} <= table_columns(con, "derived.timeline"):
        return {}
    return {k: r["at"] for r in rows(con, "SELECT patient_id, infusion_id, max(observed_at) AS at "
                                          f"FROM derived.timeline WHERE {OF_PATIENTS} GROUP BY ALL", [_patients(keys)])
            if (k := (r["patient_id"], r["infusion_id"])) in keys}


def _ferritin(con, keys: set[tuple[str, str]], rules: Rules) -> dict[tuple[str, str], dict]:
    """Every ferritin result of the episode with its day, signal, nadir and reference values."""
    have = table_columns(con, "derived.ferritin_trajectory")
    if {"patient_id", "infusion_id", "observed_at", "value"} <= have:
        source = "derived.ferritin_trajectory"
        where = "TRUE"
    elif table_columns(con, "derived.timeline"):
        source, have = "derived.timeline", table_columns(con, "derived.timeline")
        where = "analyte = 'ferritin'"
    else:
        return {}
    opt = {c: (c if c in have else f"NULL AS {c}") for c in
           ("day", "uln", "baseline", "crs_phase_peak", "post_peak_nadir", "signal", "status", "unit")}
    series = rows(con, f"""
        SELECT t.patient_id, t.infusion_id, t.observed_at AS at, t.value, {", ".join(opt.values())},
               epoch(timezone(i.site_tz, t.observed_at) - timezone(i.site_tz, i.infused_at)::DATE::TIMESTAMP)
                   / 86400.0 AS x
        FROM {source} AS t
        INNER JOIN derived.infusion_episodes AS i USING (patient_id, infusion_id)
        WHERE {where} AND t.value IS NOT NULL
        ORDER BY t.patient_id, t.infusion_id, t.observed_at""")
    by_key: dict[tuple[str, str], list[dict]] = {}
    for r in series:
        key = (r.pop("patient_id"), r.pop("infusion_id"))
        if key in keys:
            by_key.setdefault(key, []).append(r)
    return {key: _ferritin_summary(points, rules) for key, points in by_key.items()}


def _ferritin_summary(points: list[dict], rules: Rules) -> dict:
    latest = points[-1]
    uln = next((p["uln"] for p in reversed(points) if p["uln"] is not None), None)
    baseline = next((p["baseline"] for p in reversed(points) if p["baseline"] is not None), None)
    nadir = latest["post_peak_nadir"]
    elevated_uln = rules.value("iec_hs.ferritin_elevated_x_uln")
    elevated_base = rules.value("iec_hs.ferritin_elevated_x_baseline")
    lines = []
    if uln:
        lines.append({"label": f"{elevated_uln:g} x ULN", "value": elevated_uln * uln,
                      "rule": "iec_hs.ferritin_elevated_x_uln"})
    if baseline and uln and baseline > uln:
        lines.append({"label": f"{elevated_base:g} x baseline", "value": elevated_base * baseline,
                      "rule": "iec_hs.ferritin_elevated_x_baseline"})
    if nadir:
        factor = rules.value("iec_hs.re_rise_factor")
        lines.append({"label": f"re-rise {factor:g} x nadir", "value": factor * nadir,
                      "rule": "iec_hs.re_rise_factor"})

    def fold(ref):
        return round(latest["value"] / ref, 2) if ref else None

    return {
        "unit": latest.get("unit") or rules.analyte("ferritin").canonical_unit,
        "uln": uln, "baseline": baseline, "nadir": nadir, "crs_phase_peak": latest["crs_phase_peak"],
        "latest": {"at": latest["at"], "day": latest["day"], "value": latest["value"],
                   "signal": latest["signal"]},
        "recent": [{"at": p["at"], "day": p["day"], "value": p["value"], "signal": p["signal"]}
                   for p in points[-RECENT_VALUES:]],
        "fold_from_nadir": fold(nadir), "fold_from_baseline": fold(baseline),
        "thresholds": lines,
        "series": [{"x": round(p["x"], 4), "value": p["value"], "signal": p["signal"]} for p in points],
    }


def patient_snapshot(con: duckdb.DuckDBPyConnection, *, as_of: datetime, rules: Rules) -> dict:
    """Windows and per-patient context as of `as_of` (the derived/flags tables must be built as of it)."""
    found = windows(con, rules)
    keys = sorted({(w["patient_id"], w["infusion_id"]) for w in found}, key=lambda k: (k[0], k[1] or ""))
    episodes = _episodes(con, as_of, set(keys))
    crs, statuses, ferritin = _crs(con, set(keys)), _statuses(con, set(keys), rules), _ferritin(con, set(keys), rules)
    last = _last_results(con, set(keys))
    plots = plot_data(con, rules, set(keys))
    patients = []
    for key in keys:
        ep = episodes.get(key, {})
        patients.append({
            "patient_id": key[0], "infusion_id": key[1], "product": ep.get("product"),
            "infused_at": ep.get("infused_at"), "site_tz": ep.get("site_tz"), "day_now": ep.get("day_now"),
            "crs": crs.get(key), "statuses": statuses.get(key), "ferritin": ferritin.get(key),
            "last_result_at": last.get(key), "plot": plots.get(key)})
    monitored = 0
    if table_columns(con, "derived.infusion_episodes"):
        monitored = con.execute("SELECT count(*) FROM derived.infusion_episodes "
                                "WHERE episode_end IS NULL OR episode_end > $as_of::TIMESTAMPTZ",
                                {"as_of": as_of}).fetchone()[0]
    return {"as_of": iso(as_of), "rules_version": rules.version, "monitored_episodes": monitored,
            "no_recent_data_hours": rules.value("operations.no_recent_data_hours"),
            "monitoring_gap_hours": rules.value("operations.monitoring_gap_hours"),
            "monitoring_gaps": monitoring_gaps(con, as_of, rules, found),
            "windows": found, "patients": patients}


GAP_TESTS = {"ferritin": ("ferritin",), "fibrinogen": ("fibrinogen",), "transaminases": ("ast", "alt")}


def at_risk(day_now: int | None, improvement_day: int | None, late_onset_day: float, open_status: str | None) -> str | None:
    """Why an episode is at risk of IEC-HS now, or None: an open IEC-HS watch / suspected window, or
    CRS improved and today's day post-infusion before iec_hs.late_onset_day."""
    if open_status in ("watch", "suspected"):
        return f"IEC-HS {open_status}"
    if improvement_day is not None and day_now is not None and improvement_day <= day_now < late_onset_day:
        return f"after CRS improvement (day {improvement_day:+d})"
    return None


def gaps_of(last: dict[str, str | None], as_of: datetime, limit_hours: float) -> list[dict]:
    """The tests (GAP_TESTS) last measured more than `limit_hours` before `as_of`, or never."""
    out = []
    for test, analytes in GAP_TESTS.items():
        times = [t for a in analytes if (t := last.get(a))]
        newest = max(times) if times else None
        hours = None if newest is None else (as_of - datetime.fromisoformat(newest.replace("Z", "+00:00"))
                                             ).total_seconds() / 3600
        if hours is None or hours > limit_hours:
            out.append({"test": test, "last_at": newest, "hours": None if hours is None else round(hours, 1)})
    return out


def monitoring_gaps(con, as_of: datetime, rules: Rules, found: list[dict]) -> list[dict]:
    """At-risk monitored episodes whose ferritin, fibrinogen or transaminases are overdue
    (operations.monitoring_gap_hours), so the clinician can order them."""
    if not {"patient_id", "infusion_id", "infused_at"} <= table_columns(con, "derived.infusion_episodes"):
        return []
    limit = rules.value("operations.monitoring_gap_hours")
    late = rules.value("iec_hs.late_onset_day")
    now = iso(as_of)
    open_iec: dict[tuple, str] = {}
    for w in found:
        if w["criteria_set"] == "astct_iec_hs_2023" and (w.get("end_at") is None or w["end_at"] > now):
            key = (w["patient_id"], w["infusion_id"])
            if w["status"] in ("watch", "suspected") and key not in open_iec:
                open_iec[key] = w["status"]
            elif w["status"] in ("criteria_met", "met"):
                open_iec[key] = w["status"]                 # met: alerted already, not a gap to chase
    improved: dict[tuple, int] = {}
    if {"patient_id", "infusion_id", "improvement_day", "onset_day"} <= table_columns(con, "derived.crs_episodes"):
        for r in rows(con, "SELECT patient_id, infusion_id, arg_min(improvement_day, onset_day) AS d "
                           "FROM derived.crs_episodes GROUP BY ALL"):
            improved[(r["patient_id"], r["infusion_id"])] = r["d"]
    last: dict[tuple, dict] = {}
    if {"patient_id", "infusion_id", "analyte", "observed_at"} <= table_columns(con, "derived.timeline"):
        for r in rows(con, "SELECT patient_id, infusion_id, analyte, max(observed_at) AS at FROM derived.timeline "
                           "WHERE analyte IN ('ferritin', 'fibrinogen', 'ast', 'alt') GROUP BY ALL"):
            last.setdefault((r["patient_id"], r["infusion_id"]), {})[r["analyte"]] = r["at"]
    end = "episode_end" if "episode_end" in table_columns(con, "derived.infusion_episodes") else "NULL"
    out = []
    for ep in rows(con, f"SELECT patient_id, infusion_id, product, site_tz, "
                        f"day_post_infusion(site_tz, $as_of::TIMESTAMPTZ, infused_at) AS day_now "
                        f"FROM derived.infusion_episodes WHERE {end} IS NULL OR {end} > $as_of::TIMESTAMPTZ "
                        f"ORDER BY patient_id, infusion_id", {"as_of": as_of}):
        key = (ep["patient_id"], ep["infusion_id"])
        reason = at_risk(ep["day_now"], improved.get(key), late, open_iec.get(key))
        if reason is None or (open_iec.get(key) in ("criteria_met", "met") and not reason.startswith("IEC-HS")):
            continue
        overdue = gaps_of(last.get(key, {}), as_of, limit)
        if overdue:
            out.append(dict(ep, reason=reason, overdue=overdue))
    return out


# ---------------------------------------------------------------------------------------------
# data quality


def data_quality(con: duckdb.DuckDBPyConnection, *, as_of: datetime, since: datetime | None,
                 as_loaded: bool, rules: Rules) -> dict:
    """Files and quarantined rows loaded in (since, as_of]; feeds silent longer than the rule allows.

    File names are shown without their folder; quarantine reasons without the row's values.
    """
    window = {"as_of": as_of, "since": since}
    loaded = "loaded_at <= $as_of::TIMESTAMPTZ AND ($since::TIMESTAMPTZ IS NULL OR loaded_at > $since::TIMESTAMPTZ)"
    files = rows(con, f"SELECT source_file, format, feed, rows_read, accepted, duplicate, quarantined "
                      f"FROM meta.files WHERE {loaded} ORDER BY loaded_at, source_file", window)
    for f in files:
        f["source_file"] = PurePath(f["source_file"]).name
    reasons: dict[tuple[str, str], int] = {}
    for feed, reason, n in con.execute(f"SELECT feed, reason, count(*) FROM quarantine.rows WHERE {loaded} "
                                       "GROUP BY ALL", window).fetchall():
        key = (feed or "", reason_category(reason))
        reasons[key] = reasons.get(key, 0) + n
    quarantined = [{"feed": k[0], "reason": k[1], "rows": n}
                   for k, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]
    not_loaded = files_not_loaded(con, files, window)
    limit_h = rules.value("operations.feed_silence_hours")
    silent = []
    for feed, (table, known_at) in SILENCE_FEEDS.items():
        newest = con.execute(
            f"SELECT max({known_at}) FROM {table} WHERE {known_at} <= $as_of::TIMESTAMPTZ "
            "AND (NOT $as_loaded OR loaded_at <= $as_of::TIMESTAMPTZ)",
            {"as_of": as_of, "as_loaded": as_loaded}).fetchone()[0]
        hours = None if newest is None else (as_of - newest).total_seconds() / 3600
        if hours is None or hours > limit_h:
            silent.append({"feed": feed, "newest": iso(newest),
                           "hours": None if hours is None else round(hours, 1)})
    totals: dict[str, dict] = {}
    for f in files:
        agg = totals.setdefault(f["feed"] or "", {"feed": f["feed"] or "", "files": 0, "rows_read": 0, "accepted": 0,
                                                   "duplicate": 0, "quarantined": 0})
        agg["files"] += 1
        for k in ("rows_read", "accepted", "duplicate", "quarantined"):
            agg[k] += f[k]
    return {"since": iso(since), "files": files, "file_totals": [totals[k] for k in sorted(totals)],
            "quarantined": quarantined, "not_loaded": not_loaded,
            "silence_limit_hours": limit_h, "silent_feeds": silent}


def files_not_loaded(con: duckdb.DuckDBPyConnection, files: list[dict], window: dict) -> list[dict]:
    """Files skipped (meta.skipped_files), empty, or with every row rejected, in (since, as_of].

    Names without their folder; a skip reason with its quoted text and digit-bearing tokens
    replaced by '…' (a file without a header shows its first data row as the 'header').
    """
    from cartwatch.notify import scrub

    seen = "seen_at <= $as_of::TIMESTAMPTZ AND ($since::TIMESTAMPTZ IS NULL OR seen_at > $since::TIMESTAMPTZ)"
    out = [{"source_file": PurePath(name).name, "problem": "skipped", "reason": scrub(reason)}
           for name, reason in con.execute(f"SELECT source_file, arg_max(reason, seen_at) FROM meta.skipped_files "
                                           f"WHERE {seen} GROUP BY source_file ORDER BY source_file",
                                           window).fetchall()]
    for f in files:
        if f["rows_read"] == 0:
            out.append({"source_file": f["source_file"], "problem": "empty", "reason": "no rows"})
        elif f["accepted"] == 0 and f["duplicate"] == 0:
            out.append({"source_file": f["source_file"], "problem": "rejected",
                        "reason": f"every row quarantined ({f['quarantined']})"})
    return out
