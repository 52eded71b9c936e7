"""flags.astct_iec_hs_2023_points: the IEC-HS status at each evaluation point (transforms.iec_hs_windows)."""

from __future__ import annotations

import duckdb
import polars as pl

from transforms.build_context import BuildContext
from transforms.flags.windows_astct_iec_hs_2023 import iec_hs_frames
from transforms.tables import write_table


def build(con: duckdb.DuckDBPyConnection, ctx: BuildContext) -> None:
    """flags.astct_iec_hs_2023_points: the IEC-HS status at each evaluation point.

    Grain: one row per post-infusion ferritin result, and per positive manifestation result
    collected within $iec_hs__manifestation_window_hours after a suspected one; with the status
    then (watch / suspected / criteria_met / NULL), the window it belongs to, the most-common
    manifestations found by then and the evidence (JSON).
    Source criterion: ASTCT consensus on IEC-HS (Hines et al., TCT 2023); CLINICAL_RULES 3 (statuses).
    Parameters: $as_of, $iec_hs__manifestation_window_hours, $iec_hs__window_close_quiet_hours.
    Upstream tables: derived.ferritin_trajectory, derived.infusion_episodes,
    flags.astct_iec_hs_2023_manifestations.
    """
    _, _, _, points = iec_hs_frames(con, ctx.params)
    write_table(con, "flags.astct_iec_hs_2023_points", points.select(
        "patient_id", "infusion_id", pl.col("at").alias("observed_at"), "day", "point_kind", "rule", "analyte",
        "value", "unit", "detail",
        "source", "status", "ferritin_signal", "timing_holds", "window_kind", "window_onset_at", "manifestations",
        "evidence", pl.lit(ctx.rules.version).alias("rules_version")))
