"""derived.crs_daily: read the timelines, grade the course (transforms.crs_grading), write the table."""

from __future__ import annotations

import duckdb
import polars as pl

from transforms.build_context import BuildContext
from transforms.crs_grading import CrsRules, crs_intraday, crs_readings, day_inputs, grade_course
from transforms.tables import read_frame, write_table

# Days 0 .. the last day with any data (labs, vitals, events) of each infusion, with the site-zone
# midnights that bound each calendar day (23 or 25 h long across a DST change).
CALENDAR_SQL = """
WITH data_days AS (
    SELECT patient_id, infusion_id, max(day) AS last_day
    FROM (
        SELECT patient_id, infusion_id, day FROM derived.timeline
        UNION ALL SELECT patient_id, infusion_id, day FROM derived.vitals_timeline
        UNION ALL SELECT patient_id, infusion_id, day FROM derived.events_timeline
    )
    GROUP BY ALL
),
days AS (
    SELECT
        i.patient_id, i.infusion_id, i.site_tz, i.infused_at,
        unnest(range(0, greatest(coalesce(d.last_day, 0), 0) + 1)) AS day
    FROM derived.infusion_episodes AS i
    LEFT JOIN data_days AS d ON i.patient_id = d.patient_id AND i.infusion_id = d.infusion_id
)
SELECT
    patient_id, infusion_id, CAST(day AS INTEGER) AS day,
    timezone(site_tz, CAST(CAST(timezone(site_tz, infused_at) AS DATE) + CAST(day AS INTEGER) AS TIMESTAMP))
        AS day_start_at,
    timezone(site_tz, CAST(CAST(timezone(site_tz, infused_at) AS DATE) + CAST(day AS INTEGER) + 1 AS TIMESTAMP))
        AS day_end_at
FROM days
ORDER BY patient_id, infusion_id, day
"""

VITALS_SQL = """
SELECT v.patient_id, v.infusion_id, v.day, v.observed_at, v.kind, v.value, v.value_text
FROM derived.vitals_timeline AS v
JOIN derived.infusion_episodes AS i ON v.patient_id = i.patient_id AND v.infusion_id = i.infusion_id
WHERE v.observed_at >= i.infused_at
"""

EVENTS_SQL = """
SELECT e.patient_id, e.infusion_id, e.day, e.observed_at, e.event_type, e.value_num
FROM derived.events_timeline AS e
JOIN derived.infusion_episodes AS i ON e.patient_id = i.patient_id AND e.infusion_id = i.infusion_id
WHERE e.observed_at >= i.infused_at
"""


def crs_rules(ctx: BuildContext) -> CrsRules:
    return CrsRules.from_params(ctx.params, ctx.rules)


def read_course(con: duckdb.DuckDBPyConnection, r: CrsRules) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The graded daily course of every infusion, and the intraday inputs it was graded from."""
    calendar = read_frame(con, CALENDAR_SQL)
    intraday = crs_intraday(crs_readings(read_frame(con, VITALS_SQL), read_frame(con, EVENTS_SQL), r))
    return grade_course(calendar, day_inputs(intraday), r), intraday


def build(con: duckdb.DuckDBPyConnection, ctx: BuildContext) -> None:
    """derived.crs_daily: the ASTCT 2019 CRS grade of each calendar day post-infusion.

    Grain: one row per patient, infusion and calendar day post-infusion, day 0 to the last day with
    any data as of $as_of; columns patient_id, infusion_id, day, day_start_at, day_end_at (site-zone
    midnights), grade, grade_source (documented / derived), febrile, max_temp_c, hypotension_grade,
    hypoxia_grade, rules_version.
    Source criterion: ASTCT consensus grading (Lee et al., BBMT 2019); CLINICAL_RULES 2.
    Parameters: $crs__* (fever, hypotension, hypoxia, grades, hold days, resolution), o2_devices.
    Upstream tables: derived.infusion_episodes, derived.timeline, derived.vitals_timeline,
    derived.events_timeline.
    """
    course, _ = read_course(con, crs_rules(ctx))
    write_table(con, "derived.crs_daily", course.select(
        "patient_id", "infusion_id", "day", "day_start_at", "day_end_at", "grade", "grade_source", "febrile",
        "max_temp_c", "hypotension_grade", "hypoxia_grade", pl.lit(ctx.rules.version).alias("rules_version")))

