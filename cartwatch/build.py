"""Build the derived and flags layers as of a moment, in the order of sql/run_order.txt.

Each line of run_order.txt is either a SQL file under sql/ (one file builds one table) or
`py:<module>:<function>` for a step that reads better in polars; such a function receives the
connection and the same named parameters. Parameters: `as_of`, `as_loaded`, `site_tz`,
`rules_version` and every rule as `<rule id with . -> __>` (transforms/rules.py).
"""

from __future__ import annotations

import importlib
import re
from datetime import datetime
from pathlib import Path

import duckdb

from cartwatch.store import SQL_DIR, transaction
from transforms.rules import Rules

RUN_ORDER = SQL_DIR / "run_order.txt"
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_COMMENT = re.compile(r"/\*.*?\*/|--[^\n]*", re.S)


def build_parameters(rules: Rules, *, as_of: datetime, as_loaded: bool, site_tz: str) -> dict:
    # rules_path: the polars steps read the same file the build runs with (not the default one)
    return {"as_of": as_of, "as_loaded": as_loaded, "site_tz": site_tz, "rules_path": str(rules.path),
            "rules_version": rules.version, **rules.sql_params()}


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


def run_step(con: duckdb.DuckDBPyConnection, step: str, params: dict) -> None:
    if step.startswith("py:"):
        _, module, function = step.split(":")
        getattr(importlib.import_module(module), function)(con, params)
    else:
        run_sql_file(con, SQL_DIR / step, params)


def write_reference_tables(con: duckdb.DuckDBPyConnection, rules: Rules) -> None:
    """ref.analytes from the rules file, so SQL reads default ranges from the one source."""
    con.execute("CREATE OR REPLACE TABLE ref.analytes (analyte VARCHAR, canonical_unit VARCHAR, "
                "default_low DOUBLE, default_high DOUBLE, rules_version VARCHAR)")
    con.executemany("INSERT INTO ref.analytes VALUES (?, ?, ?, ?, ?)",
                    [[a.name, a.canonical_unit, a.default_low, a.default_high, rules.version]
                     for a in rules.analytes.values()])


def build(con: duckdb.DuckDBPyConnection, rules: Rules, *, as_of: datetime, as_loaded: bool,
          site_tz: str) -> list[str]:
    """Rebuild every derived and flags table as of `as_of`; returns the steps run.

    One transaction: readers never see a half-rebuilt layer, and a failing step leaves the
    previous build in place.
    """
    params = build_parameters(rules, as_of=as_of, as_loaded=as_loaded, site_tz=site_tz)
    done = []
    with transaction(con):
        write_reference_tables(con, rules)
        for step in steps():
            run_step(con, step, params)
            done.append(step)
    return done
