"""flags.windows_astct_iec_hs_2023: the IEC-HS onset windows (transforms.iec_hs_windows)."""

from __future__ import annotations

from datetime import timezone
from typing import Mapping

import duckdb
import polars as pl

from transforms.build_context import BuildContext
from transforms.iec_hs_windows import (COMMON, IecHsRules, evaluation_points, onset_windows, window_rows)
from transforms.tables import read_frame

TRAJECTORY_SQL = """
SELECT f.*, f.observed_at AS at
FROM derived.ferritin_trajectory AS f
JOIN derived.infusion_episodes AS i ON f.patient_id = i.patient_id AND f.infusion_id = i.infusion_id
WHERE f.observed_at >= i.infused_at
"""

MANIFESTATIONS_SQL = """
SELECT row_number() OVER (ORDER BY patient_id, observed_at, rule, analyte, source) AS m_id, *,
    observed_at AS at
FROM flags.astct_iec_hs_2023_manifestations
"""

# the baseline ferritin result of each infusion (the one derived.timeline took as baseline)
BASELINES_SQL = """
SELECT i.patient_id, i.infusion_id, arg_max(l.value, l.observed_at) AS value,
    arg_max(coalesce(l.ref_high, r.default_high), l.observed_at) AS uln, max(l.observed_at) AS at,
    arg_max(l.source_file || ':' || l.source_line, l.observed_at) AS source, any_value(l.unit) AS unit
FROM derived.infusion_episodes AS i
JOIN derived.lab_results AS l
    ON l.patient_id = i.patient_id AND l.analyte = 'ferritin' AND l.observed_at < i.infused_at
    AND l.observed_at >= i.infused_at - to_hours(CAST($time_axis__baseline_lookback_hours AS BIGINT))
LEFT JOIN ref.analytes AS r ON r.analyte = l.analyte
GROUP BY ALL
"""


def _utc(params: Mapping):
    return params["as_of"].astimezone(timezone.utc)


def iec_hs_frames(con: duckdb.DuckDBPyConnection, params: Mapping):
    """Trajectory, manifestations, onset windows and evaluation points, as of $as_of."""
    r = IecHsRules.from_params(params)
    trajectory = read_frame(con, TRAJECTORY_SQL)
    manifestations = read_frame(con, MANIFESTATIONS_SQL)
    common = manifestations.filter(pl.col("manifestation_class") == COMMON)
    windows = onset_windows(trajectory, common, r, _utc(params))
    points = evaluation_points(trajectory, manifestations, windows, r)
    return r, manifestations, windows, points


def build(con: duckdb.DuckDBPyConnection, ctx: BuildContext) -> None:
    """flags.windows_astct_iec_hs_2023: the IEC-HS onset windows (CONTRACT 3 `export windows`).

    Grain: one row per onset window per infusion (status suspected or criteria_met), plus one
    `watch` row per run of CRS-associated hyperferritinemia that never reached suspected.
    Source criterion: ASTCT consensus on IEC-HS (Hines et al., TCT 2023); CLINICAL_RULES 3 (onset
    window, late onset).
    Parameters: $as_of, $iec_hs__manifestation_window_hours, $iec_hs__window_close_quiet_hours,
    $iec_hs__late_onset_day, $time_axis__baseline_lookback_hours, $rules_version.
    Upstream tables: derived.ferritin_trajectory, derived.crs_episodes, derived.lab_results,
    derived.infusion_episodes, flags.astct_iec_hs_2023_manifestations.
    """
    params = ctx.params
    r, manifestations, windows, points = iec_hs_frames(con, params)
    crs = read_frame(con, "SELECT * FROM derived.crs_episodes")
    baselines = read_frame(con, BASELINES_SQL, {"time_axis__baseline_lookback_hours":
                                                params["time_axis__baseline_lookback_hours"]})
    rows = window_rows(windows, points, manifestations, crs, baselines, r, _utc(params))
    con.register("_cartwatch_windows", rows.to_arrow())
    try:
        con.execute("""
            CREATE OR REPLACE TABLE flags.windows_astct_iec_hs_2023 AS
            SELECT w.patient_id, w.infusion_id, w.criteria_set, w.status, w.onset_at, w.onset_day, w.end_at,
                CAST(day_post_infusion(i.site_tz, w.end_at, i.infused_at) AS INTEGER) AS end_day,
                w.crs_onset_day, w.crs_peak_day, w.crs_resolved_day, w.late_onset, w.evidence,
                $rules_version AS rules_version
            FROM _cartwatch_windows AS w
            JOIN derived.infusion_episodes AS i ON w.patient_id = i.patient_id AND w.infusion_id = i.infusion_id
            ORDER BY w.patient_id, w.infusion_id, w.onset_at
        """, {"rules_version": params["rules_version"]})
    finally:
        con.unregister("_cartwatch_windows")
