"""derived.crs_daily: the graded CRS course of every infusion (transforms.crs_grading)."""

from __future__ import annotations

import duckdb
import polars as pl

from transforms.build_context import BuildContext
from transforms.crs_grading import CrsRules, day_inputs, grade_course
from transforms.derived.crs_intraday import READ_SQL as INTRADAY_SQL
from transforms.tables import read_frame, write_table

CALENDAR_SQL = "SELECT patient_id, infusion_id, day, day_start_at, day_end_at FROM derived.episode_days"
COLUMNS = ["patient_id", "infusion_id", "day", "day_start_at", "day_end_at", "grade", "grade_source", "febrile",
           "max_temp_c", "hypotension_grade", "hypoxia_grade", "state_prev_grade", "state_waiver",
           "state_held_grade", "state_held_day"]


def build(con: duckdb.DuckDBPyConnection, ctx: BuildContext) -> None:
    """derived.crs_daily: the ASTCT 2019 CRS grade of each calendar day post-infusion.

    Grain: one row per patient, infusion and calendar day post-infusion, day 0 to the last day with
    any data as of $as_of (derived.episode_days); columns patient_id, infusion_id, day,
    day_start_at, day_end_at (site-zone midnights), grade, grade_source (documented / derived),
    febrile, max_temp_c, hypotension_grade, hypoxia_grade, the state the day inherited from the day
    before (state_prev_grade, state_waiver, state_held_grade, state_held_day: what grading the day
    as known at a moment inside it starts from), rules_version.
    Source criterion: ASTCT consensus grading (Lee et al., BBMT 2019); clinical-rules.md §2.
    Parameters: $crs__* (fever, hypotension, hypoxia, grades, hold days, resolution), o2_devices.
    Upstream tables: derived.episode_days, derived.crs_intraday.
    """
    course = grade_course(read_frame(con, CALENDAR_SQL), day_inputs(read_frame(con, INTRADAY_SQL)),
                          CrsRules.from_params(ctx.params, ctx.rules))
    write_table(con, "derived.crs_daily", course.select(*COLUMNS, pl.lit(ctx.rules.version).alias("rules_version")))
