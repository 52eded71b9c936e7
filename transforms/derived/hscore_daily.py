"""derived.hscore_daily: the HScore range per day post-infusion (transforms.hscore)."""

from __future__ import annotations

import duckdb

from transforms.build_context import BuildContext
from transforms.criteria_inputs import criteria_inputs
from transforms.hscore import hscore_daily
from transforms.tables import write_table


def build(con: duckdb.DuckDBPyConnection, ctx: BuildContext) -> None:
    """Grain: one row per patient, infusion and day post-infusion (>= 0) with any data.
    Upstream tables: derived.episode_days, derived.timeline, derived.vitals_timeline,
    derived.events_timeline."""
    grid, obs, events = criteria_inputs(con, ctx)
    write_table(con, "derived.hscore_daily", hscore_daily(grid, obs, events, ctx.rules, ctx.converter))
