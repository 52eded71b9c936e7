"""transforms/censored.py and its SQL twin sql/macros/censored_compare.sql: every comparator against
every threshold operator at, just below and just above the bound, each judged against the
definition (true when every value the result allows meets the threshold, false when none does,
unknown otherwise), which the test works out from values sampled inside the interval."""

from __future__ import annotations

from itertools import product
from pathlib import Path

import duckdb
import polars as pl
import pytest

from transforms.censored import highest_possible, judged, lowest_possible

MACROS = Path(__file__).resolve().parents[2] / "sql" / "macros"
THRESHOLD = 150.0
STEP = 0.5
OPS = {">": lambda a: a > THRESHOLD, ">=": lambda a: a >= THRESHOLD,
       "<": lambda a: a < THRESHOLD, "<=": lambda a: a <= THRESHOLD}
CASES = list(product([THRESHOLD - STEP, THRESHOLD, THRESHOLD + STEP], [None, ">", ">=", "<", "<="], OPS))


def allowed(value: float, comparator: str | None) -> list[float]:
    """Values the result allows, dense enough near the threshold to decide every case here."""
    near = [k * STEP / 4 for k in range(1, 9)] + [1e6]
    return {None: [value], ">": [value + d for d in near], ">=": [value] + [value + d for d in near],
            "<": [value - d for d in near], "<=": [value] + [value - d for d in near]}[comparator]


def definition(value: float, comparator: str | None, op: str) -> bool | None:
    met = [OPS[op](a) for a in allowed(value, comparator)]
    return True if all(met) else False if not any(met) else None


@pytest.fixture(scope="module")
def con():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA derived")
    for name in ("censored_compare.sql", "censored_bounds.sql"):
        con.execute((MACROS / name).read_text(encoding="utf-8"))
    yield con
    con.close()


def test_sql_and_polars_judge_every_boundary_by_its_interval(con):
    frame = pl.DataFrame([(v, c) for v, c, _ in CASES], schema={"value": pl.Float64, "comparator": pl.String},
                         orient="row")
    polars_says = [frame[i].select(judged(pl.col("value"), pl.col("comparator"), op, THRESHOLD)).item()
                   for i, (_, _, op) in enumerate(CASES)]
    sql_says = [con.execute("SELECT derived.censored_compare(?::DOUBLE, ?::VARCHAR, ?, ?::DOUBLE)",
                            [v, c, op, THRESHOLD]).fetchone()[0] for v, c, op in CASES]
    expected = [definition(v, c, op) for v, c, op in CASES]
    assert polars_says == expected
    assert sql_says == expected
    assert {None, True, False} <= set(expected)


@pytest.mark.parametrize("comparator, lowest, highest", [
    (None, 150.0, 150.0), (">", 150.0, None), (">=", 150.0, None), ("<", None, 150.0), ("<=", None, 150.0)])
def test_bounds_in_sql_and_polars(con, comparator, lowest, highest):
    sql = con.execute("SELECT derived.lowest_possible(150.0, ?::VARCHAR), derived.highest_possible(150.0, ?::VARCHAR)",
                      [comparator, comparator]).fetchone()
    frame = pl.DataFrame({"value": [150.0], "comparator": [comparator]}, schema={"value": pl.Float64,
                                                                                  "comparator": pl.String})
    bounds = frame.select(lowest_possible(pl.col("value"), pl.col("comparator")).alias("low"),
                          highest_possible(pl.col("value"), pl.col("comparator")).alias("high")).row(0)
    assert tuple(sql) == bounds == (lowest, highest)
