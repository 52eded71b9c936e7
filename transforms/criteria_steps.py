"""Build steps (`py:transforms.criteria_steps:<function>` lines of sql/run_order.txt) for the
criteria tables that need the rules file's structured blocks or the units module.

Each step reads the derived tables it needs, calls the pure functions of `transforms.criteria_hlh`
and `transforms.hscore` (or runs its SQL file with extra parameters), and writes one table. The
rules are read from `params["rules_path"]` when the build carries one, else the default file, and
must be the version the build runs with (`params["rules_version"]`).
"""

from __future__ import annotations

import duckdb
import polars as pl

from cartwatch.build import run_sql_file
from cartwatch.store import SQL_DIR
from transforms.criteria_hlh import hlh_criteria_daily as evaluate_hlh
from transforms.hscore import hscore_daily as evaluate_hscore
from transforms.rules import Rules, RulesError, load_rules
from transforms.units import UnitConverter

# The units the EASIX formula is written in (Luft 2017): LDH U/L, creatinine mg/dL,
# platelets 10^9/L; m-EASIX puts CRP in mg/dL in place of creatinine (Pennisi 2021).
EASIX_FORMULA_UNITS = {"ldh": "U/L", "creatinine": "mg/dL", "platelets": "10*9/L", "crp": "mg/dL"}

# Labs read for HLH-94, HLH-2004 and HScore; body temperature joins them as `temperature`.
CRITERIA_ANALYTES = ("ferritin", "triglycerides", "ast", "scd25", "hemoglobin", "wbc", "platelets",
                     "anc", "fibrinogen")
CRITERIA_EVENTS = ("splenomegaly", "hepatomegaly", "hemophagocytosis", "immunosuppression")

GRID_SQL = """
WITH days AS (
    SELECT patient_id, infusion_id, day FROM derived.timeline WHERE day >= 0
    UNION SELECT patient_id, infusion_id, day FROM derived.vitals_timeline WHERE day >= 0
    UNION SELECT patient_id, infusion_id, day FROM derived.events_timeline WHERE day >= 0
)
SELECT d.patient_id, d.infusion_id, d.day::INTEGER AS day,
    timezone(i.site_tz, (timezone(i.site_tz, i.infused_at)::DATE + d.day::INTEGER)::TIMESTAMP) AS day_start_at,
    timezone(i.site_tz, (timezone(i.site_tz, i.infused_at)::DATE + d.day::INTEGER + 1)::TIMESTAMP)
        AS day_end_at
FROM days AS d
INNER JOIN derived.infusion_episodes AS i USING (patient_id, infusion_id)
"""
OBS_SQL = """
SELECT patient_id, infusion_id, day::INTEGER AS day, analyte, value, unit, observed_at, source
FROM derived.timeline
WHERE day >= 0 AND value IS NOT NULL AND list_contains($analytes, analyte)
UNION ALL
SELECT patient_id, infusion_id, day::INTEGER AS day, 'temperature' AS analyte, value, unit, observed_at, source
FROM derived.vitals_timeline
WHERE day >= 0 AND value IS NOT NULL AND kind = 'temperature'
"""
EVENTS_SQL = """
SELECT patient_id, infusion_id, day::INTEGER AS day, event_type, value_num, observed_at, source
FROM derived.events_timeline
WHERE value_num IS NOT NULL AND list_contains($events, event_type)
"""


def rules_for(params: dict) -> Rules:
    """The rules of this build: the file named in params, else the default one."""
    rules = load_rules(params.get("rules_path"))
    if "rules_version" in params and rules.version != params["rules_version"]:
        raise RulesError(f"{rules.path}: version {rules.version} is not the build's "
                         f"{params['rules_version']}; pass rules_path in the build parameters")
    return rules


def easix_unit_params(rules: Rules) -> dict[str, float]:
    """`$easix_unit__<analyte>`: multiply a canonical value by it to get the formula's unit."""
    converter = UnitConverter(rules)
    factors = {}
    for analyte, unit in EASIX_FORMULA_UNITS.items():
        linear = converter.to_canonical(analyte, unit)
        if linear.offset:
            raise RulesError(f"{analyte}: {unit} is not a pure scale of the canonical unit")
        factors[f"easix_unit__{analyte}"] = 1.0 / linear.scale
    return factors


def easix_daily(con: duckdb.DuckDBPyConnection, params: dict) -> None:
    """derived.easix_daily: sql/derived/easix_daily.sql with the formula-unit factors."""
    run_sql_file(con, SQL_DIR / "derived" / "easix_daily.sql",
                 {**params, **easix_unit_params(rules_for(params))})


def read_inputs(con: duckdb.DuckDBPyConnection) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The day grid, the day's observations and the documented findings, as polars frames."""
    grid = _frame(con, GRID_SQL, {})
    obs = _frame(con, OBS_SQL, {"analytes": list(CRITERIA_ANALYTES)})
    events = _frame(con, EVENTS_SQL, {"events": list(CRITERIA_EVENTS)})
    return grid, obs, events


def hlh_criteria_daily(con: duckdb.DuckDBPyConnection, params: dict) -> None:
    """derived.hlh_criteria_daily (transforms.criteria_hlh.hlh_criteria_daily)."""
    grid, obs, events = read_inputs(con)
    write_table(con, "derived.hlh_criteria_daily", evaluate_hlh(grid, obs, events, rules_for(params)))


def hscore_daily(con: duckdb.DuckDBPyConnection, params: dict) -> None:
    """derived.hscore_daily (transforms.hscore.hscore_daily)."""
    rules = rules_for(params)
    grid, obs, events = read_inputs(con)
    write_table(con, "derived.hscore_daily",
                evaluate_hscore(grid, obs, events, rules, UnitConverter(rules)))


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> pl.DataFrame:
    return pl.from_arrow(con.sql(sql, params=params or None).to_arrow_table())


def write_table(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    view = "_criteria_frame"
    con.register(view, frame.to_arrow())
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {view}")
    finally:
        con.unregister(view)
