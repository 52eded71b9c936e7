"""derived.hlh_criteria_daily: HLH-94 and HLH-2004 per day post-infusion (transforms.criteria_hlh)."""

from __future__ import annotations

import duckdb

from transforms.build_context import BuildContext
from transforms.criteria_hlh import hlh_criteria_daily
from transforms.criteria_inputs import criteria_inputs
from transforms.tables import write_table


def build(con: duckdb.DuckDBPyConnection, ctx: BuildContext) -> None:
    """Grain: one row per patient, infusion and day post-infusion (>= 0) with any data.
    Upstream tables: derived.episode_days, derived.timeline, derived.vitals_timeline,
    derived.events_timeline."""
    grid, obs, events = criteria_inputs(con, ctx)
    write_table(con, "derived.hlh_criteria_daily", hlh_criteria_daily(grid, obs, events, ctx.rules))
