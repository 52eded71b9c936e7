"""The inputs HLH-94, HLH-2004 and HScore share, read once per build: the day grid, the day's
observations and the documented findings (transforms.criteria_hlh describes their columns)."""

from __future__ import annotations

import duckdb
import polars as pl

from transforms.build_context import BuildContext
from transforms.tables import read_frame

# Labs read for HLH-94, HLH-2004 and HScore; body temperature joins them as `temperature`.
CRITERIA_ANALYTES = ("ferritin", "triglycerides", "ast", "scd25", "hemoglobin", "wbc", "platelets",
                     "anc", "fibrinogen")
CRITERIA_EVENTS = ("splenomegaly", "hepatomegaly", "hemophagocytosis", "immunosuppression")

GRID_SQL = """
SELECT patient_id, infusion_id, day, day_start_at, day_end_at
FROM derived.episode_days
WHERE has_data
"""
OBS_SQL = """
SELECT patient_id, infusion_id, day::INTEGER AS day, analyte, value, comparator, unit, observed_at, source
FROM derived.timeline
WHERE day >= 0 AND value IS NOT NULL AND list_contains($analytes, analyte)
UNION ALL
SELECT patient_id, infusion_id, day::INTEGER AS day, 'temperature' AS analyte, value,
    NULL::VARCHAR AS comparator, unit, observed_at, source
FROM derived.vitals_timeline
WHERE day >= 0 AND value IS NOT NULL AND kind = 'temperature'
"""
EVENTS_SQL = """
SELECT patient_id, infusion_id, day::INTEGER AS day, event_type, value_num, observed_at, source
FROM derived.events_timeline
WHERE value_num IS NOT NULL AND list_contains($events, event_type)
"""


def criteria_inputs(con: duckdb.DuckDBPyConnection, ctx: BuildContext) -> tuple[pl.DataFrame, ...]:
    """(grid, obs, events) of this build, read on first use."""
    return ctx.frames("criteria_inputs", lambda: (
        read_frame(con, GRID_SQL), read_frame(con, OBS_SQL, {"analytes": list(CRITERIA_ANALYTES)}),
        read_frame(con, EVENTS_SQL, {"events": list(CRITERIA_EVENTS)})))
