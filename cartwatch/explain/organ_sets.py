"""CARTOX 2017 and Shah 2020 (a ferritin peak above a cut-off plus N organ items) and UCSF MAS-L
2020 explained. The verdict and, when met, the results that made it are the stored window
(flags.windows). Which CARTOX or Shah item held is asked of the build's own macro,
flags.ferritin_peak_organ_held (stored with the evaluation), for this one episode; an item that did
not hold is `not met` when the episode has data for it in the set's time frame, else `not
evaluable`, and is shown with its worst value there."""

from __future__ import annotations

import json

import duckdb

from cartwatch.explain import words as w
from cartwatch.explain.read import named
from transforms.rules import Rules

PHASE_SQL = {   # the time frame each set reads, as its flags SQL file does
    "cartox_2017": "SELECT patient_id, infusion_id, onset_at AS starts_at, ferritin_window_end_at AS ferritin_ends_at "
                   "FROM derived.crs_episodes WHERE patient_id = $patient AND infusion_id = $infusion "
                   "AND onset_at IS NOT NULL",
    "shah_2020": "SELECT patient_id, infusion_id, infused_at AS starts_at, NULL::TIMESTAMPTZ AS ferritin_ends_at "
                 "FROM derived.infusion_episodes WHERE patient_id = $patient AND infusion_id = $infusion",
}
PREFIX = {"cartox_2017": "cartox", "shah_2020": "shah"}
LUNG_ITEM = {"cartox_2017": "lung", "shah_2020": "pulmonary_edema"}     # as each set's flags SQL names it
HELD_SQL = """
WITH phase AS ({phase})
SELECT item, held_at, evidence
FROM flags.ferritin_peak_organ_held(rule_prefix := $prefix, phase_table := 'phase', ferritin_peak_gt := $cut,
                                    organ_grade_min := $grade, lung_item := $lung)
"""
# the worst value in the set's time frame, on the first day it was reached
WORST_SQL = """
WITH phase AS ({phase})
SELECT 'ferritin_peak' AS item, max(t.value) AS value, arg_max(t.comparator, t.value) AS comparator,
       arg_max(t.day, {{'v': t.value, 'first': -t.day}}) AS day, 'ng/mL' AS unit
FROM phase JOIN derived.timeline AS t USING (patient_id, infusion_id)
WHERE t.analyte = 'ferritin' AND t.observed_at >= phase.starts_at
  AND (phase.ferritin_ends_at IS NULL OR t.observed_at <= phase.ferritin_ends_at)
HAVING count(*) > 0
UNION ALL
SELECT o.organ, max(o.grade), NULL, arg_max(o.day, {{'v': o.grade, 'first': -o.day}}), 'CTCAE grade'
FROM phase JOIN derived.organ_toxicity_daily AS o USING (patient_id, infusion_id)
WHERE o.observed_at >= phase.starts_at GROUP BY o.organ
UNION ALL
SELECT $lung, max(c.hypoxia_grade), NULL, arg_max(c.day, {{'v': c.hypoxia_grade, 'first': -c.day}}), 'CRS hypoxia grade'
FROM phase JOIN derived.crs_daily AS c USING (patient_id, infusion_id)
WHERE c.day_end_at > phase.starts_at HAVING count(c.hypoxia_grade) > 0
UNION ALL
SELECT 'hemophagocytosis', max(e.value_num), NULL, arg_max(e.day, {{'v': e.value_num, 'first': -e.day}}), 'documented'
FROM phase JOIN derived.events_timeline AS e USING (patient_id, infusion_id)
WHERE e.event_type = 'hemophagocytosis' AND e.observed_at >= phase.starts_at HAVING count(*) > 0
"""
STATE_WORDS = {"met": "met", "not_met": "not met", "unknown": "not evaluable (no data)"}


def explain_organ_set(con: duckdb.DuckDBPyConnection, rules: Rules, ep: dict, name: str,
                      windows: list[dict]) -> dict:
    mine = [x for x in windows if x["criteria_set"] == name]
    out = {"criteria_set": name, "label": w.SET_LABELS[name], "verdict": "met" if mine else "not_met"}
    ids = {"patient": ep["patient_id"], "infusion": ep["infusion_id"]}
    if not named(con, PHASE_SQL[name], ids):
        return out | {"items": [], "sections": [], "summary": ["not met: no CRS, and this set reads the CRS phase"]}
    prefix, lung = PREFIX[name], LUNG_ITEM[name]
    held = {r["item"]: r for r in named(con, HELD_SQL.format(phase=PHASE_SQL[name]), ids | {
        "prefix": prefix, "cut": rules.value(f"{prefix}.ferritin_peak_gt"),
        "grade": rules.value(f"{prefix}.organ_grade_min"), "lung": lung})}
    worst = {r["item"]: r for r in named(con, WORST_SQL.format(phase=PHASE_SQL[name]), ids | {"lung": lung})}
    items = [item_line(rules, prefix, item, held.get(item), worst.get(item), ep["site_tz"])
             for item in ("ferritin_peak", "liver", "kidney", lung, "hemophagocytosis")]
    organs = sum(i["state"] == "met" for i in items[1:])
    head = (f"{organs} of 4 organ items held (needs {w.rule(rules, prefix + '.items_required')}); ferritin peak "
            f"{STATE_WORDS[items[0]['state']]}")
    return out | {"items": items, "summary": [("met: " if mine else "not met: ") + head]
                  + [evidence_line(x, ep["site_tz"]) for x in mine],
                  "sections": [{"title": "Items", "lines": [i["line"] for i in items]}]}


def item_line(rules: Rules, prefix: str, item: str, held: dict | None, worst: dict | None, tz: str) -> dict:
    """An item's state (held: the macro said so; else data or no data) and what it was read from."""
    state = "met" if held else ("not_met" if worst and worst["value"] is not None else "unknown")
    if item == "ferritin_peak":
        needs = f"needs > {w.rule(rules, prefix + '.ferritin_peak_gt')}"
    elif item == "hemophagocytosis":
        needs = "needs a documented yes"
    else:
        needs = f"needs grade >= {w.value_of(rules, prefix + '.organ_grade_min')} ({prefix}.organ_grade_min)"
    shown = []
    if held:
        shown.append(f"from {w.when(held['held_at'], tz)}: {w.result(held['evidence'])}")
    if worst and worst["value"] is not None:
        shown.append(worst_text(item, worst))
    detail = "; ".join([*shown, needs])
    return {"item": item, "state": state, "value": worst["value"] if worst else None,
            "line": f"{item.replace('_', ' ')}: {STATE_WORDS[state]} ({detail})"}


def worst_text(item: str, worst: dict) -> str:
    if item == "hemophagocytosis":
        return "documented " + ("yes" if worst["value"] else "no")
    if item == "ferritin_peak":
        return f"highest {w.amount(worst['value'], worst['unit'], worst['comparator'])} {w.day(worst['day'])}"
    return f"worst {worst['unit']} {w.number(worst['value'])} {w.day(worst['day'])}"


def evidence_line(x: dict, tz: str) -> str:
    items = json.loads(x["evidence"] or "[]")
    shown = ", ".join(w.result(e) for e in items)
    return f"onset {w.day(x['onset_day'])} ({w.when(x['onset_at'], tz)}) with {shown}"


UCSF_HELD_SQL = """
WITH one AS (SELECT $patient AS patient_id)
SELECT item, min(held_at) AS first_at, arg_min(evidence, held_at) AS evidence, count(*) AS results
FROM flags.ucsf_masl_items(patients_table := 'one', rise_ng_ml_per_hour := $rate, rise_window_hours := $window,
                           fibrinogen_lt_mg_dl := $fibrinogen, ldh_x_uln := $ldh)
WHERE item = 'companion' OR infusion_id = $infusion
GROUP BY item
"""
# what the episode has to judge each item with (a companion pairs with a rise by patient, as there)
UCSF_DATA_SQL = """
SELECT
    (SELECT count(*) FROM derived.ferritin_rises WHERE patient_id = $patient AND infusion_id = $infusion) AS pairs,
    (SELECT min(value) FROM derived.timeline WHERE patient_id = $patient AND analyte = 'fibrinogen') AS fibrinogen,
    (SELECT max(x_uln) FROM derived.timeline WHERE patient_id = $patient AND analyte = 'ldh') AS ldh_x_uln
"""


def explain_ucsf(con: duckdb.DuckDBPyConnection, rules: Rules, ep: dict, windows: list[dict]) -> dict:
    """UCSF MAS-L: the rise and the companion result, each as the build's macro flags.ucsf_masl_items
    judges them for this patient, then whether they came within the companion window (the windows)."""
    name = "ucsf_masl_2020"
    mine = [x for x in windows if x["criteria_set"] == name]
    ids = {"patient": ep["patient_id"], "infusion": ep["infusion_id"]}
    held = {r["item"]: r for r in named(con, UCSF_HELD_SQL, ids | {
        "rate": rules.value("ucsf.rise_ng_ml_per_hour"), "window": rules.value("ucsf.rise_window_hours"),
        "fibrinogen": rules.value("ucsf.fibrinogen_lt_mg_dl"), "ldh": rules.value("ucsf.ldh_x_uln")})}
    data = named(con, UCSF_DATA_SQL, ids)[0]
    tz = ep["site_tz"]
    items = [ucsf_rise(rules, held.get("rise"), data, tz), ucsf_companion(rules, held.get("companion"), data, tz),
             ucsf_pairing(rules, held, mine)]
    lines = [f"window met: {evidence_line(x, tz)}" for x in mine]
    why_not = "not met: " + "; ".join(f"{i['item'].replace('_', ' ')} {i['said']}" for i in items)
    return {"criteria_set": name, "label": w.SET_LABELS[name], "verdict": "met" if mine else "not_met",
            "items": items, "summary": lines or [why_not],
            "sections": [{"title": "Items", "lines": [i["line"] for i in items]}]}


def held_text(h: dict, tz: str) -> str:
    shown = " -> ".join(w.result(e) for e in h["evidence"])
    return f"first {w.when(h['first_at'], tz)}: {shown}; {h['results']} in all"


def ucsf_rise(rules: Rules, h: dict | None, data: dict, tz: str) -> dict:
    needs = (f"needs >= {w.rule(rules, 'ucsf.rise_ng_ml_per_hour')} against a ferritin at most "
             f"{w.rule(rules, 'ucsf.rise_window_hours')} before")
    state = "met" if h else ("not_met" if data["pairs"] else "unknown")
    detail = held_text(h, tz) if h else ("no such rise" if data["pairs"] else "no two ferritin results close enough")
    return {"item": "ferritin_rise", "state": state, "said": STATE_WORDS[state],
            "line": f"ferritin rise: {STATE_WORDS[state]} ({detail}; {needs})"}


def ucsf_companion(rules: Rules, h: dict | None, data: dict, tz: str) -> dict:
    needs = (f"needs fibrinogen < {w.rule(rules, 'ucsf.fibrinogen_lt_mg_dl')} or LDH > "
             f"{w.rule(rules, 'ucsf.ldh_x_uln')}")
    measured = data["fibrinogen"] is not None or data["ldh_x_uln"] is not None
    state = "met" if h else ("not_met" if measured else "unknown")
    worst = ", ".join(p for p in (
        f"lowest fibrinogen {w.amount(data['fibrinogen'], 'mg/dL')}" if data["fibrinogen"] is not None else "",
        f"highest LDH {w.number(data['ldh_x_uln'])} x ULN" if data["ldh_x_uln"] is not None else "") if p)
    detail = held_text(h, tz) if h else (worst or "no fibrinogen or LDH result")
    return {"item": "companion", "state": state, "said": STATE_WORDS[state],
            "line": f"companion: {STATE_WORDS[state]} ({detail}; {needs})"}


def ucsf_pairing(rules: Rules, held: dict, windows: list[dict]) -> dict:
    """Whether a rise and a companion came close enough: the stored windows say it."""
    within = f"within {w.rule(rules, 'ucsf.companion_window_hours')} of each other"
    state = "met" if windows else ("not_met" if len(held) == 2 else "unknown")
    said = {"met": "met", "not_met": "not met (never that close)", "unknown": "not evaluable (needs both)"}[state]
    return {"item": "rise_with_companion", "state": state, "said": said,
            "line": f"rise and companion {within}: {said}"}
