"""What a patient's plot draws besides ferritin, read from the built tables in a few set-based queries.

Per episode with a reported window: the fibrinogen, AST/ALT and platelets/ANC results as
(day post-infusion, value) points, the IEC-HS thresholds of each in the result's unit, the IEC-HS
windows (onset, criteria-met moment, end) and the moment CRS improvement + the rules' lag passes.
Days are fractional on the site calendar (day 0 starts at midnight of the infusion date), as for
the ferritin series, so every panel shares one time axis.
"""

from __future__ import annotations

import duckdb

from cartwatch.store import table_columns
from transforms.rules import Rules

PANEL_ANALYTES = ("fibrinogen", "ast", "alt", "platelets", "anc")
# analyte -> (rules-file threshold, how it reads in the result's unit: fixed cut-off, x ULN, or the
# higher of the cut-off and the result's LLN, as the engine judges fibrinogen)
THRESHOLDS = {"fibrinogen": ("iec_hs.fibrinogen_lt_mg_dl", "cut-off or LLN"), "ast": ("iec_hs.transaminase_x_uln", "x ULN"),
              "alt": ("iec_hs.transaminase_x_uln", "x ULN"), "platelets": ("iec_hs.platelets_lt", "cut-off"),
              "anc": ("iec_hs.anc_lt", "cut-off")}
DIGITS = 4            # decimals kept of a plotted value (a display choice)
REPORTED = ("SELECT DISTINCT patient_id, infusion_id FROM flags.windows "
            "WHERE status IS DISTINCT FROM 'not_met'")


def day_x(column: str) -> str:
    """SQL: the fractional day post-infusion of a timestamp column (i: the infusion episode)."""
    return (f"round(epoch(timezone(i.site_tz, {column}) - timezone(i.site_tz, i.infused_at)::DATE::TIMESTAMP)"
            " / 86400.0, 3)")


def _labs(con, rules: Rules) -> dict[tuple, dict]:
    """Each reported episode's panel analytes: unit, latest ULN and LLN, points [[day, value], ...]."""
    need = {"patient_id", "infusion_id", "analyte", "value", "unit", "uln", "lln", "observed_at"}
    if not need <= table_columns(con, "derived.timeline"):
        return {}
    found = con.execute(f"""
        SELECT t.patient_id, t.infusion_id, t.analyte, arg_max(t.unit, t.observed_at) AS unit,
               arg_max(t.uln, t.observed_at) FILTER (WHERE t.uln IS NOT NULL) AS uln,
               arg_max(t.lln, t.observed_at) FILTER (WHERE t.lln IS NOT NULL) AS lln,
               list([{day_x('t.observed_at')}, round(t.value, {DIGITS})] ORDER BY t.observed_at) AS points
        FROM derived.timeline AS t
        INNER JOIN derived.infusion_episodes AS i USING (patient_id, infusion_id)
        SEMI JOIN ({REPORTED}) AS r USING (patient_id, infusion_id)
        WHERE t.analyte IN {PANEL_ANALYTES} AND t.value IS NOT NULL
        GROUP BY ALL ORDER BY ALL""").fetchall()
    out: dict[tuple, dict] = {}
    for pid, iid, analyte, unit, uln, lln, points in found:
        out.setdefault((pid, iid), {})[analyte] = {"unit": unit, "points": points,
                                                   "thresholds": _thresholds(rules, analyte, unit, uln, lln)}
    return out


def _thresholds(rules: Rules, analyte: str, unit: str | None, uln: float | None,
                lln: float | None = None) -> list[dict]:
    """The analyte's IEC-HS threshold as a number in the result's unit, when it can be stated."""
    rule, kind = THRESHOLDS[analyte]
    value = rules.value(rule)
    if kind == "x ULN":
        return [{"label": f"{value:g} x ULN", "value": round(value * uln, DIGITS), "rule": rule}] if uln else []
    if rules.raw["rules"][rule].get("unit") != unit:
        return []
    if kind == "cut-off or LLN" and lln is not None and lln > value:
        return [{"label": f"< LLN {lln:g}", "value": round(lln, DIGITS), "rule": rule}]
    return [{"label": f"< {value:g}", "value": value, "rule": rule}]


def _iec_windows(con) -> dict[tuple, list[dict]]:
    """IEC-HS windows at suspected or above: onset, the first criteria-met result, end (days)."""
    if not {"criteria_set", "onset_at", "end_at"} <= table_columns(con, "flags.windows"):
        return {}
    points = table_columns(con, "flags.astct_iec_hs_2023_points")
    met = (f"(SELECT min(p.observed_at) FROM flags.astct_iec_hs_2023_points AS p "
           f"WHERE p.patient_id = w.patient_id AND p.infusion_id = w.infusion_id "
           f"AND p.window_onset_at = w.onset_at AND p.status = 'criteria_met')"
           if {"window_onset_at", "status", "observed_at"} <= points else "NULL::TIMESTAMPTZ")
    out: dict[tuple, list[dict]] = {}
    for pid, iid, status, onset_x, met_x, end_x in con.execute(f"""
            SELECT w.patient_id, w.infusion_id, w.status, {day_x('w.onset_at')}, {day_x(met)},
                   {day_x('w.end_at')}
            FROM flags.windows AS w INNER JOIN derived.infusion_episodes AS i USING (patient_id, infusion_id)
            WHERE w.criteria_set = 'astct_iec_hs_2023' AND w.status IN ('suspected', 'criteria_met')
            ORDER BY ALL""").fetchall():
        out.setdefault((pid, iid), []).append({"status": status, "onset_x": onset_x, "met_x": met_x, "end_x": end_x})
    return out


def _crs_risk(con, rules: Rules) -> dict[tuple, dict]:
    """The first CRS episode's improvement and the moment its IEC-HS timing lag has passed (days)."""
    if not {"improvement_at", "onset_day"} <= table_columns(con, "derived.crs_episodes"):
        return {}
    lag = rules.value("iec_hs.timing_after_improvement_hours")
    return {(pid, iid): {"improved_x": x, "risk_from_x": None if x is None else round(x + lag / 24, 3),
                         "lag_hours": lag}
            for pid, iid, x in con.execute(f"""
                SELECT c.patient_id, c.infusion_id, arg_min({day_x('c.improvement_at')}, c.onset_day)
                FROM derived.crs_episodes AS c INNER JOIN derived.infusion_episodes AS i USING (patient_id, infusion_id)
                GROUP BY ALL""").fetchall()}


def plot_data(con: duckdb.DuckDBPyConnection, rules: Rules, keys: set[tuple]) -> dict[tuple, dict]:
    """Per episode in `keys`: {'labs', 'iec_windows', 'crs'} for its plot (absent parts empty)."""
    if not keys or not {"site_tz", "infused_at"} <= table_columns(con, "derived.infusion_episodes"):
        return {}
    labs, windows, crs = _labs(con, rules), _iec_windows(con), _crs_risk(con, rules)
    return {k: {"labs": labs.get(k, {}), "iec_windows": windows.get(k, []), "crs": crs.get(k)} for k in keys}
