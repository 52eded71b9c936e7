"""derived.ferritin_trajectory: each ferritin result judged (transforms.ferritin_signal) with the CRS
course as known at its collection time."""

from __future__ import annotations

import duckdb
import polars as pl

from transforms.build_context import BuildContext
from transforms.crs_grading import CrsRules, grade_partial_days
from transforms.crs_milestones import milestones_known_at
from transforms.derived.crs_intraday import READ_SQL as INTRADAY_SQL
from transforms.ferritin_signal import FerritinRules, ferritin_trajectory
from transforms.tables import read_frame, write_table

FERRITIN_SQL = """
SELECT
    row_number() OVER (ORDER BY t.patient_id, t.observed_at, t.load_seq) AS point_id,
    t.patient_id, t.infusion_id, t.observed_at, t.day, t.value, t.comparator, t.unit, t.uln, t.baseline,
    t.baseline_comparator, t.source,
    t.load_seq, i.infused_at
FROM derived.timeline AS t
JOIN derived.infusion_episodes AS i ON t.patient_id = i.patient_id AND t.infusion_id = i.infusion_id
WHERE t.analyte = 'ferritin' AND t.value IS NOT NULL
"""

RISES_SQL = """
SELECT patient_id, observed_at, load_seq, earlier_at AS o_at, earlier_value AS o_value,
    earlier_comparator AS o_comparator
FROM derived.ferritin_rises
"""
COURSE_SQL = "SELECT * EXCLUDE (rules_version) FROM derived.crs_daily ORDER BY patient_id, infusion_id, day"

COLUMNS = ["patient_id", "infusion_id", "observed_at", "day", "value", "comparator", "unit", "uln", "baseline", "elevated",
           "crs_phase_peak", "crs_phase_peak_at", "post_peak_nadir", "max_rate_ng_ml_h", "re_rise", "rapid_rise",
           "new_high", "signal", "timing_holds", "status", "source", "timing_reason", "timing_from"]


def ferritin_points_with_crs(con: duckdb.DuckDBPyConnection,
                             ctx: BuildContext) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every ferritin result, and the CRS milestones as known at each post-infusion one."""
    r = CrsRules.from_params(ctx.params, ctx.rules)
    course, intraday = read_frame(con, COURSE_SQL), read_frame(con, INTRADAY_SQL)
    ferritin = read_frame(con, FERRITIN_SQL)
    points = (ferritin.filter(pl.col("observed_at") >= pl.col("infused_at"))
              .select("point_id", "patient_id", "infusion_id", "day", pl.col("observed_at").alias("at")))
    probes = grade_partial_days(points, course, intraday, r).join(points.select("point_id", "at"), on="point_id")
    return ferritin, milestones_known_at(course, probes, r.resolution_days)


def build(con: duckdb.DuckDBPyConnection, ctx: BuildContext) -> None:
    """derived.ferritin_trajectory: each ferritin result judged with what was known at its collection.

    Grain: one row per ferritin result in force as of $as_of (results before the infusion get
    `elevated` only); columns as COLUMNS + rules_version. `timing_reason` names why the timing
    holds or not (transforms.ferritin_signal.TIMING_REASONS), `timing_from` is CRS improvement +
    $iec_hs__timing_after_improvement_hours as known then: `cartwatch explain` reads both.
    Source criterion: ASTCT consensus on IEC-HS (Hines et al., TCT 2023) as operationalized in
    clinical-rules.md §3 (elevated, re-rise, rapid rise, new high, timing, watch / suspected).
    Parameters: $iec_hs__ferritin_*, $iec_hs__re_rise_factor, $iec_hs__rapid_rise_*,
    $iec_hs__timing_after_improvement_hours, $iec_hs__no_crs_timing_day, and the CRS ones.
    Upstream tables: derived.timeline, derived.infusion_episodes, derived.crs_daily,
    derived.crs_intraday, derived.ferritin_rises.
    """
    ferritin, crs_at = ferritin_points_with_crs(con, ctx)
    rises = read_frame(con, RISES_SQL).join(ferritin.select("point_id", "patient_id", "observed_at", "load_seq"),
                                            on=["patient_id", "observed_at", "load_seq"]).rename({"observed_at": "t"})
    trajectory = ferritin_trajectory(ferritin, crs_at, FerritinRules.from_params(ctx.params), rises)
    write_table(con, "derived.ferritin_trajectory", trajectory.select(
        *COLUMNS, pl.lit(ctx.rules.version).alias("rules_version")))
