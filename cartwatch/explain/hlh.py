"""HLH-94, HLH-2004 and HScore explained item by item on one day: the stored item states of
derived.hlh_criteria_daily (`hlh_94_items`, `hlh_2004_items`) and the HScore points of
derived.hscore_daily, with the day's worst values. The day is the onset day of the set's first
window when it was met, else the day it came closest (most items met, then most evaluable,
then the latest; for HScore the highest possible score)."""

from __future__ import annotations

import duckdb

from cartwatch.explain import words as w
from cartwatch.explain.read import of_episode
from transforms.rules import Rules

# item -> (the day's worst values shown with it, the rules that quote its threshold)
HLH_ITEM_VALUES = {
    "fever": (("temperature_max", "Cel"),),
    "splenomegaly": (),
    "cytopenias": (("hemoglobin_min", "g/dL"), ("platelets_min", "10*9/L"), ("anc_min", "10*9/L")),
    "triglycerides_or_fibrinogen": (("triglycerides_max", "mg/dL"), ("fibrinogen_min", "mg/dL")),
    "hemophagocytosis": (),
    "nk_activity": (),
    "ferritin": (("ferritin_max", "ng/mL"),),
    "scd25": (("scd25_max", "U/mL"),),
}
CYTOPENIA_CUTS = ((">=", "{set}.cytopenia_lineages_required"), ("Hb <", "hlh_2004.hemoglobin_lt_g_dl"),
                  ("platelets <", "hlh_2004.platelets_lt"), ("ANC <", "hlh_2004.anc_lt"))
LIPID_CUTS = (("triglycerides >=", "hlh_2004.triglycerides_ge_mg_dl"),
              ("or fibrinogen <=", "hlh_2004.fibrinogen_le_mg_dl"))
HLH_THRESHOLDS = {   # item -> (how it compares, rule) as derived.hlh_criteria_daily's step applies them
    "hlh_2004": {"fever": ((">=", "hlh_2004.fever_c"),), "cytopenias": CYTOPENIA_CUTS,
                 "triglycerides_or_fibrinogen": LIPID_CUTS, "ferritin": ((">=", "hlh_2004.ferritin_ge"),),
                 "scd25": ((">=", "hlh_2004.scd25_ge_u_ml"),)},
    "hlh_94": {"fever": ((">=", "hlh_94.fever_c"),), "cytopenias": CYTOPENIA_CUTS,
               "triglycerides_or_fibrinogen": LIPID_CUTS},
}
REQUIRED = {"hlh_2004": "hlh_2004.criteria_required", "hlh_94": None}
STATE_WORDS = {"met": "met", "not_met": "not met", "unknown": "not evaluable (no data)"}
HSCORE_ITEMS = ("immunosuppression", "temperature", "organomegaly", "cytopenias", "ferritin", "triglycerides",
                "fibrinogen", "ast", "hemophagocytosis")


def explain_hlh(con: duckdb.DuckDBPyConnection, rules: Rules, ep: dict, name: str, windows: list[dict]) -> dict:
    days = of_episode(con, "derived.hlh_criteria_daily", ep, "day")
    mine = [x for x in windows if x["criteria_set"] == name]
    chosen = explained_day(days, mine, lambda d: (d[f"{name}_met_count"], d[f"{name}_evaluable_count"], d["day"]))
    out = {"criteria_set": name, "label": w.SET_LABELS[name], "verdict": "met" if mine else "not_met", "items": []}
    if chosen is None:
        return out | {"summary": ["not met: no day after the infusion with data"], "sections": []}
    items = [hlh_item(rules, name, item, state, chosen) for item, state in chosen[f"{name}_items"].items()]
    total = len(items)
    needed = rules.value(REQUIRED[name]) if REQUIRED[name] else total
    head = (f"{w.day(chosen['day'])}: {chosen[f'{name}_met_count']} of {total} met, "
            f"{chosen[f'{name}_evaluable_count']} evaluable; needs {w.number(needed)}"
            + (f" ({REQUIRED[name]})" if REQUIRED[name] else " (all)"))
    return out | {"day": chosen["day"], "items": items, "summary": [day_reason(mine, head)],
                  "sections": [{"title": f"Items on {w.day(chosen['day'])}", "lines": [i["line"] for i in items]}]}


def explained_day(days: list[dict], windows: list[dict], closeness) -> dict | None:
    if windows:
        onset = min(windows, key=lambda x: x["onset_at"])["onset_day"]
        return next((d for d in days if d["day"] == onset), None)
    return max(days, key=closeness, default=None)


def day_reason(windows: list[dict], head: str) -> str:
    return ("met, first onset " if windows else "not met; closest ") + head


def hlh_item(rules: Rules, name: str, item: str, state: str, d: dict) -> dict:
    values = [(column.rsplit("_", 1)[0], d[column], unit) for column, unit in HLH_ITEM_VALUES[item]]
    shown = ", ".join(f"{a} {w.amount(v, u)}" for a, v, u in values if v is not None)
    if item in ("splenomegaly", "hemophagocytosis") and d[item] is not None:
        shown = "documented " + ("yes" if d[item] else "no")
    if item == "nk_activity":
        shown = "in no feed"
    cuts = HLH_THRESHOLDS.get(name, {}).get(item, ())
    needs = ", ".join(f"{op} {w.rule(rules, r.format(set=name))}" for op, r in cuts)
    if item == "cytopenias":
        needs = needs.replace(",", " lineages of", 1)
    detail = "; ".join(p for p in (shown, f"needs {needs}" if needs else "") if p)
    said = STATE_WORDS[state]
    if state == "unknown" and any(v is not None for _, v, _ in values):    # a lineage or test missing
        said = "not evaluable (not enough data)"
    return {"item": item, "state": state, "values": {a: v for a, v, _ in values},
            "line": f"{item.replace('_', ' ')}: {said}" + (f" ({detail})" if detail else "")}


def explain_hscore(con: duckdb.DuckDBPyConnection, rules: Rules, ep: dict, windows: list[dict]) -> dict:
    days = of_episode(con, "derived.hscore_daily", ep, "day")
    mine = [x for x in windows if x["criteria_set"] == "hscore"]
    chosen = explained_day(days, mine, lambda d: (d["hscore_max"] or 0, d["day"]))
    out = {"criteria_set": "hscore", "label": w.SET_LABELS["hscore"], "verdict": "met" if mine else "not_met",
           "items": []}
    if chosen is None:
        return out | {"summary": ["not met: no day after the infusion with data"], "sections": []}
    values = {}
    for e in chosen["evidence"]:
        if e["value"] is not None and e["rule"].startswith("hscore.") and e["rule"] != "hscore.cutoff":
            values.setdefault(e["rule"].split(".")[1], []).append(w.result(e))
    items = [hscore_item(item, chosen[f"{item}_points"], values.get(item, [])) for item in HSCORE_ITEMS]
    head = (f"{w.day(chosen['day'])}: {w.number(chosen['hscore_min'])}-{w.number(chosen['hscore_max'])} points "
            f"possible; met when the lowest reaches {w.rule(rules, 'hscore.cutoff')}")
    return out | {"day": chosen["day"], "items": items, "summary": [day_reason(mine, head)],
                  "sections": [{"title": f"Items on {w.day(chosen['day'])}", "lines": [i["line"] for i in items]}]}


def hscore_item(item: str, points: float | None, values: list[str]) -> dict:
    if points is None:
        line = f"{item}: not evaluable (no data): counts low and high in the range"
    else:
        line = f"{item}: {w.number(points)} points" + (f" ({', '.join(values)})" if values else "")
    return {"item": item, "state": "unknown" if points is None else "scored", "points": points, "line": line}
