"""flags.astct_iec_hs_2023_points: the IEC-HS status at each evaluation point
(transforms.iec_hs_windows.evaluation_points)."""

from __future__ import annotations

import duckdb
import polars as pl

from transforms.build_context import BuildContext
from transforms.iec_hs_inputs import ONSET_WINDOWS_SQL, iec_hs_inputs
from transforms.iec_hs_windows import IecHsRules, evaluation_points
from transforms.tables import read_frame, write_table

COLUMNS = ["patient_id", "infusion_id", "observed_at", "day", "point_kind", "rule", "analyte", "value",
           "comparator", "unit", "detail", "source", "status", "ferritin_signal", "timing_holds", "window_kind", "window_onset_at",
           "manifestations", "evidence"]


def build(con: duckdb.DuckDBPyConnection, ctx: BuildContext) -> None:
    """flags.astct_iec_hs_2023_points: the IEC-HS status at each evaluation point.

    Grain: one row per post-infusion ferritin result, and per positive manifestation result
    collected within $iec_hs__manifestation_window_hours after a suspected one; with the status
    then (watch / suspected / criteria_met / NULL), the window it belongs to, the most-common
    manifestations found by then and the evidence.
    Source criterion: ASTCT consensus on IEC-HS (Hines et al., TCT 2023); clinical-rules.md §3 (statuses).
    Parameters: $iec_hs__manifestation_window_hours.
    Upstream tables: derived.ferritin_trajectory, derived.infusion_episodes,
    flags.astct_iec_hs_2023_manifestations, flags.astct_iec_hs_2023_onset_windows.
    """
    trajectory, manifestations = iec_hs_inputs(con, ctx)
    points = evaluation_points(trajectory, manifestations, read_frame(con, ONSET_WINDOWS_SQL),
                               IecHsRules.from_params(ctx.params))
    write_table(con, "flags.astct_iec_hs_2023_points", points.rename({"at": "observed_at"}).select(
        *COLUMNS, pl.lit(ctx.rules.version).alias("rules_version")))
