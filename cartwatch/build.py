"""Build the derived and flags layers as of a moment, in the order of sql/run_order.txt.

Each line of run_order.txt names the one file that builds one table: `<layer>/<table>.sql` under
sql/, or `<layer>/<table>.py` under transforms/ for a table that reads better in polars (that
module's `build(con, ctx)`). A step receives the connection and the build's `BuildContext`: the
rules (parsed once per build), the named SQL parameters (`as_of`, `as_loaded`, `site_tz`,
`rules_version` and every rule as `<rule id with . -> __>`, transforms/rules.py) and the frames
that several steps read (read once per build).
"""

from __future__ import annotations

import importlib
import re
from datetime import datetime
from pathlib import Path
from typing import Callable

import duckdb

from cartwatch.store import SQL_DIR, transaction
from transforms.build_context import BuildContext
from transforms.easix_units import easix_unit_params
from transforms.rules import Rules

RUN_ORDER = SQL_DIR / "run_order.txt"
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_COMMENT = re.compile(r"/\*.*?\*/|--[^\n]*", re.S)


def build_parameters(rules: Rules, *, as_of: datetime, as_loaded: bool, site_tz: str) -> dict:
    return {"as_of": as_of, "as_loaded": as_loaded, "site_tz": site_tz, "rules_version": rules.version,
            **rules.sql_params(), **easix_unit_params(rules)}


def build_context(rules: Rules, *, as_of: datetime, as_loaded: bool, site_tz: str) -> BuildContext:
    return BuildContext(rules, build_parameters(rules, as_of=as_of, as_loaded=as_loaded, site_tz=site_tz))


def steps(run_order: Path = RUN_ORDER) -> list[str]:
    lines = run_order.read_text(encoding="utf-8").splitlines()
    return [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]


def strip_comments(sql: str) -> str:
    return _COMMENT.sub("", sql)


def named_parameters(sql: str, params: dict, where: object = "SQL") -> dict:
    """Only the parameters the SQL names (DuckDB refuses extra ones); KeyError for a missing one."""
    names = set(_PARAM.findall(strip_comments(sql)))
    missing = names - params.keys()
    if missing:
        raise KeyError(f"{where}: no value for parameter(s) {', '.join(sorted(missing))}")
    return {n: params[n] for n in names}


def run_sql_file(con: duckdb.DuckDBPyConnection, path: Path, params: dict) -> None:
    """Run one SQL file, passing only the parameters it names."""
    sql = path.read_text(encoding="utf-8")
    con.execute(sql, named_parameters(sql, params, path))


def step_module(step: str) -> str:
    """`derived/crs_daily.py` -> `transforms.derived.crs_daily`."""
    return "transforms." + step.removesuffix(".py").replace("/", ".")


def run_step(con: duckdb.DuckDBPyConnection, step: str | Callable, ctx: BuildContext) -> None:
    """One line of the run order (or, in tests, a callable standing in for several)."""
    if callable(step):
        step(con, ctx)
    elif step.endswith(".py"):
        importlib.import_module(step_module(step)).build(con, ctx)
    else:
        run_sql_file(con, SQL_DIR / step, ctx.params)


def write_reference_tables(con: duckdb.DuckDBPyConnection, rules: Rules) -> None:
    """ref.analytes from the rules file, so SQL reads default ranges from the one source."""
    con.execute("CREATE OR REPLACE TABLE ref.analytes (analyte VARCHAR, canonical_unit VARCHAR, "
                "default_low DOUBLE, default_high DOUBLE, rules_version VARCHAR)")
    con.executemany("INSERT INTO ref.analytes VALUES (?, ?, ?, ?, ?)",
                    [[a.name, a.canonical_unit, a.default_low, a.default_high, rules.version]
                     for a in rules.analytes.values()])


def run_steps(con: duckdb.DuckDBPyConnection, ctx: BuildContext) -> None:
    """Every step, inside the caller's transaction."""
    write_reference_tables(con, ctx.rules)
    for step in steps():
        run_step(con, step, ctx)


def build(con: duckdb.DuckDBPyConnection, rules: Rules, *, as_of: datetime, as_loaded: bool,
          site_tz: str) -> None:
    """Rebuild every derived and flags table as of `as_of`.

    One transaction: readers never see a half-rebuilt layer, and a failing step leaves the
    previous build in place.
    """
    with transaction(con):
        run_steps(con, build_context(rules, as_of=as_of, as_loaded=as_loaded, site_tz=site_tz))
