"""derived.crs_episodes: the milestones of each infusion's course (transforms.crs_milestones)."""

from __future__ import annotations

import duckdb
import polars as pl

from transforms.build_context import BuildContext
from transforms.crs_grading import CrsRules
from transforms.crs_milestones import crs_episodes, crs_milestones
from transforms.tables import read_frame, write_table

COURSE_SQL = """
SELECT patient_id, infusion_id, day, grade, febrile, day_start_at, day_end_at, CAST($as_of AS TIMESTAMPTZ) AS cutoff
FROM derived.crs_daily
"""


def build(con: duckdb.DuckDBPyConnection, ctx: BuildContext) -> None:
    """derived.crs_episodes: the CRS milestones of each infusion as of $as_of.

    Grain: one row per patient and infusion (CRS or not); columns patient_id, infusion_id,
    onset_day/at, peak_grade, peak_day/at, improvement_at/day, reescalated_at/day, resolved_at/day,
    ferritin_window_end_at, duration_days, had_crs, rules_version. Day-level milestones are stamped
    00:00 of their day (resolution: the end of its day).
    Source criterion: clinical-rules.md §2 (onset, peak, improvement, re-escalation, resolution) and 3
    (ferritin CRS-phase window = resolution + lag).
    Parameters: $as_of, $crs__resolution_clear_hours, $iec_hs__ferritin_lag_hours.
    Upstream tables: derived.crs_daily.
    """
    days = read_frame(con, COURSE_SQL, {"as_of": ctx.params["as_of"]})
    resolution_days = CrsRules.from_params(ctx.params, ctx.rules).resolution_days
    episodes = crs_episodes(crs_milestones(days, ["patient_id", "infusion_id"], resolution_days),
                            ctx.params["iec_hs__ferritin_lag_hours"])
    write_table(con, "derived.crs_episodes", episodes.select(
        "patient_id", "infusion_id", "onset_day", "onset_at", "peak_grade", "peak_day", "peak_at",
        "improvement_at", "improvement_day", "reescalated_at", "reescalated_day", "resolved_at", "resolved_day",
        "ferritin_window_end_at", "duration_days", "had_crs", pl.lit(ctx.rules.version).alias("rules_version")))
