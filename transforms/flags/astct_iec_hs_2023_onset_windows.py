"""flags.astct_iec_hs_2023_onset_windows: runs during which an IEC-HS criterion holds
(transforms.iec_hs_windows.onset_windows)."""

from __future__ import annotations

import duckdb
import polars as pl

from transforms.build_context import BuildContext
from transforms.iec_hs_inputs import as_of_utc, iec_hs_inputs
from transforms.iec_hs_windows import COMMON, IecHsRules, onset_windows
from transforms.tables import write_table


def build(con: duckdb.DuckDBPyConnection, ctx: BuildContext) -> None:
    """flags.astct_iec_hs_2023_onset_windows: the onset windows of each infusion, before statuses.

    Grain: one row per run of results during which a criterion holds that reached watch or
    suspected; columns patient_id, infusion_id, window_kind (iec_hs / watch), onset_at, onset_day,
    end_at (NULL while open at $as_of), closes_at (NULL while ferritin stays elevated), rules_version.
    Source criterion: ASTCT consensus on IEC-HS (Hines et al., TCT 2023); clinical-rules.md §3 (onset
    window: open while ferritin is elevated or a manifestation is found, closed after the quiet period).
    Parameters: $as_of, $iec_hs__window_close_quiet_hours.
    Upstream tables: derived.ferritin_trajectory, derived.infusion_episodes,
    flags.astct_iec_hs_2023_manifestations.
    """
    trajectory, manifestations = iec_hs_inputs(con, ctx)
    common = manifestations.filter(pl.col("manifestation_class") == COMMON)
    windows = onset_windows(trajectory, common, IecHsRules.from_params(ctx.params), as_of_utc(ctx))
    write_table(con, "flags.astct_iec_hs_2023_onset_windows",
                windows.with_columns(pl.lit(ctx.rules.version).alias("rules_version")))
