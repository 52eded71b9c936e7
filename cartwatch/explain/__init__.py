"""`cartwatch explain`: why (or why not) a patient is flagged, criteria set by criteria set.

document (this module: one infusion episode read from the stored evaluation) -> renderers (text for
a terminal, JSON with stable keys, self-contained HTML). Every verdict and every judgement in it
is read from the tables the build stored, never re-decided here (read.py): a second engine could
silently disagree with the flags. Thresholds are quoted from the rules file the evaluation was made
with, and its version is stated.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from cartwatch.explain.astct import explain_astct
from cartwatch.explain.hlh import explain_hlh, explain_hscore
from cartwatch.explain.organ_sets import explain_organ_set, explain_ucsf
from cartwatch.explain.read import ExplainError, daily, episode, iso, windows
from cartwatch.explain.render import render
from transforms.rules import Rules

__all__ = ["ExplainError", "explain", "render"]
SET_ORDER = ("astct_iec_hs_2023", "cartox_2017", "shah_2020", "ucsf_masl_2020", "hlh_94", "hlh_2004", "hscore")
DAILY_COLUMN = {"astct_iec_hs_2023": "astct_iec_hs_2023", "cartox_2017": "cartox_2017", "shah_2020": "shah_2020",
                "ucsf_masl_2020": "ucsf_masl_2020", "hlh_94": "hlh_94", "hlh_2004": "hlh_2004_met"}


def explain(con: duckdb.DuckDBPyConnection, rules: Rules, patient_id: str, infusion_id: str | None,
            as_of: datetime) -> dict:
    """The explanation document of one infusion episode (the patient's latest unless named)."""
    ep, episodes = episode(con, patient_id, infusion_id, as_of)
    stored = windows(con, ep)
    days = daily(con, ep)
    sets = [explain_astct(con, rules, ep, stored),
            explain_organ_set(con, rules, ep, "cartox_2017", stored),
            explain_organ_set(con, rules, ep, "shah_2020", stored),
            explain_ucsf(con, rules, ep, stored),
            explain_hlh(con, rules, ep, "hlh_94", stored),
            explain_hlh(con, rules, ep, "hlh_2004", stored),
            explain_hscore(con, rules, ep, stored)]
    for s in sets:
        s["windows"] = [window_facts(x) for x in stored if x["criteria_set"] == s["criteria_set"]]
        s["latest_day"] = latest(days, s["criteria_set"])
    return {"patient_id": ep["patient_id"], "infusion_id": ep["infusion_id"], "product": ep["product"],
            "site_tz": ep["site_tz"], "infused_at": iso(ep["infused_at"]), "as_of": iso(as_of),
            "rules_version": rules.version, "rules_released": rules.released,
            "other_infusions": [{"infusion_id": e["infusion_id"], "infused_at": iso(e["infused_at"])}
                                for e in episodes if e["infusion_id"] != ep["infusion_id"]],
            "criteria_sets": sorted(sets, key=lambda s: SET_ORDER.index(s["criteria_set"]))}


def window_facts(x: dict) -> dict:
    """One stored window with the `export windows` columns that place it in time."""
    return {"status": x["status"], "onset_at": iso(x["onset_at"]), "onset_day": x["onset_day"],
            "end_at": iso(x["end_at"]), "end_day": x["end_day"], "late_onset": x["late_onset"]}


def latest(days: list[dict], criteria_set: str) -> dict | None:
    """The set's status on the episode's latest day with data (`export flags`; HScore has no column)."""
    if not days or criteria_set not in DAILY_COLUMN:
        return None
    last = days[-1]
    value = last[DAILY_COLUMN[criteria_set]]
    if criteria_set == "hlh_2004":
        value = "met" if value else None
    return {"day": last["day"], "status": value}
