"""CARTOX 2017 and Shah 2020 (a ferritin peak above a cut-off plus N organ items) and UCSF MAS-L
2020 explained. The verdict and, when met, the results that made it are the stored window
(flags.windows). Item by item, each item shows the stored value it is read from (the phase's
highest ferritin in derived.timeline, the CTCAE grades of derived.organ_toxicity_daily, the CRS
hypoxia grade of derived.crs_daily, documented hemophagocytosis) beside the set's threshold."""

from __future__ import annotations

import json

import duckdb

from cartwatch.explain import words as w
from cartwatch.explain.read import rows
from transforms.rules import Rules

PHASE_SQL = {   # the time frame each set reads, as its flags SQL file does
    "cartox_2017": "SELECT onset_at AS starts_at, ferritin_window_end_at AS ends_at FROM derived.crs_episodes "
                   "WHERE patient_id = ? AND infusion_id = ? AND onset_at IS NOT NULL",
    "shah_2020": "SELECT infused_at AS starts_at, NULL::TIMESTAMPTZ AS ends_at FROM derived.infusion_episodes "
                 "WHERE patient_id = ? AND infusion_id = ?",
}
PREFIX = {"cartox_2017": "cartox", "shah_2020": "shah"}
ITEMS_SQL = """
WITH ids AS (SELECT ?::VARCHAR AS patient_id, ?::VARCHAR AS infusion_id, ?::TIMESTAMPTZ AS starts_at,
                    ?::TIMESTAMPTZ AS ends_at)
SELECT 'ferritin' AS item, max(t.value) AS value, arg_max(t.comparator, t.value) AS comparator,
       arg_max(t.day, t.value) AS day, 'ng/mL' AS unit
FROM ids JOIN derived.timeline AS t USING (patient_id, infusion_id)
WHERE t.analyte = 'ferritin' AND t.observed_at >= ids.starts_at
  AND (ids.ends_at IS NULL OR t.observed_at <= ids.ends_at)
UNION ALL
SELECT o.organ, max(o.grade), NULL, arg_max(o.day, o.grade), 'CTCAE grade'
FROM ids JOIN derived.organ_toxicity_daily AS o USING (patient_id, infusion_id)
WHERE o.observed_at >= ids.starts_at GROUP BY o.organ
UNION ALL
SELECT 'lung', max(c.hypoxia_grade), NULL, arg_max(c.day, c.hypoxia_grade), 'ASTCT hypoxia grade'
FROM ids JOIN derived.crs_daily AS c USING (patient_id, infusion_id)
WHERE c.day_end_at > ids.starts_at HAVING count(c.hypoxia_grade) > 0
UNION ALL
SELECT 'hemophagocytosis', max(e.value_num), NULL, arg_max(e.day, e.value_num), 'documented'
FROM ids JOIN derived.events_timeline AS e USING (patient_id, infusion_id)
WHERE e.event_type = 'hemophagocytosis' AND e.observed_at >= ids.starts_at HAVING count(*) > 0
"""
ORGAN_ITEMS = ("liver", "kidney", "lung", "hemophagocytosis")


def explain_organ_set(con: duckdb.DuckDBPyConnection, rules: Rules, ep: dict, name: str,
                      windows: list[dict]) -> dict:
    mine = [x for x in windows if x["criteria_set"] == name]
    out = {"criteria_set": name, "label": w.SET_LABELS[name], "verdict": "met" if mine else "not_met"}
    phase = rows(con, PHASE_SQL[name], [ep["patient_id"], ep["infusion_id"]])
    if not phase:
        return out | {"items": [], "sections": [], "summary": ["not met: no CRS, and this set reads the CRS phase"]}
    found = {r["item"]: r for r in rows(con, ITEMS_SQL, [ep["patient_id"], ep["infusion_id"],
                                                          phase[0]["starts_at"], phase[0]["ends_at"]])}
    prefix = PREFIX[name]
    items = [ferritin_item(rules, prefix, found.get("ferritin"))]
    items += [organ_item(rules, prefix, item, found.get(item)) for item in ORGAN_ITEMS]
    met = sum(i["state"] == "met" for i in items[1:])
    head = (f"{met} of 4 organ items met (needs {w.rule(rules, prefix + '.items_required')}); ferritin item "
            f"{items[0]['state'].replace('_', ' ')}")
    return out | {"items": items, "summary": [("met: " if mine else "not met: ") + head]
                  + [evidence_line(x, ep["site_tz"]) for x in mine],
                  "sections": [{"title": "Items", "lines": [i["line"] for i in items]}]}


def ferritin_item(rules: Rules, prefix: str, r: dict | None) -> dict:
    cut = rules.value(f"{prefix}.ferritin_peak_gt")
    needs = f"needs > {w.rule(rules, prefix + '.ferritin_peak_gt')}"
    if r is None or r["value"] is None:
        return {"item": "ferritin_peak", "state": "unknown", "line": f"ferritin peak: not evaluable (no data; {needs})"}
    state = "met" if r["value"] > cut and r["comparator"] not in ("<", "<=") else "not_met"
    return {"item": "ferritin_peak", "state": state, "value": r["value"],
            "line": f"ferritin peak: {state.replace('_', ' ')} (highest {w.amount(r['value'], 'ng/mL', r['comparator'])}"
                    f" {w.day(r['day'])}; {needs})"}


def organ_item(rules: Rules, prefix: str, item: str, r: dict | None) -> dict:
    needs = ("needs a documented yes" if item == "hemophagocytosis"
             else f"needs grade >= {w.value_of(rules, prefix + '.organ_grade_min')} ({prefix}.organ_grade_min)")
    if r is None or r["value"] is None:
        return {"item": item, "state": "unknown", "line": f"{item}: not evaluable (no data; {needs})"}
    held = bool(r["value"]) if item == "hemophagocytosis" else r["value"] >= rules.value(f"{prefix}.organ_grade_min")
    state = "met" if held else "not_met"
    shown = ("documented " + ("yes" if r["value"] else "no") if item == "hemophagocytosis"
             else f"worst {r['unit']} {w.number(r['value'])} {w.day(r['day'])}")
    return {"item": item, "state": state, "value": r["value"],
            "line": f"{item}: {state.replace('_', ' ')} ({shown}; {needs})"}


def evidence_line(x: dict, tz: str) -> str:
    items = json.loads(x["evidence"] or "[]")
    shown = ", ".join(f"{e['analyte']} {w.amount(e['value'], e['unit'])}" for e in items)
    return f"onset {w.day(x['onset_day'])} ({w.when(x['onset_at'], tz)}) with {shown}"


def explain_ucsf(con: duckdb.DuckDBPyConnection, rules: Rules, ep: dict, windows: list[dict]) -> dict:
    """UCSF MAS-L: the stored windows and the results that made them; with none, what it needs."""
    name = "ucsf_masl_2020"
    mine = [x for x in windows if x["criteria_set"] == name]
    needs = (f"a ferritin rise >= {w.rule(rules, 'ucsf.rise_ng_ml_per_hour')} within "
             f"{w.rule(rules, 'ucsf.rise_window_hours')}, with fibrinogen < {w.rule(rules, 'ucsf.fibrinogen_lt_mg_dl')}"
             f" or LDH > {w.rule(rules, 'ucsf.ldh_x_uln')} within {w.rule(rules, 'ucsf.companion_window_hours')}")
    lines = [f"window met: {evidence_line(x, ep['site_tz'])}" for x in mine]
    return {"criteria_set": name, "label": w.SET_LABELS[name], "verdict": "met" if mine else "not_met", "items": [],
            "summary": lines or ["not met: no such rise with its companion result"],
            "sections": [{"title": "Criteria", "lines": [f"needs {needs}"]}]}
