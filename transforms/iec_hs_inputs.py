"""The inputs the ASTCT 2023 IEC-HS steps share, read once per build: the post-infusion ferritin
trajectory and the manifestation results (transforms.iec_hs_windows describes their columns)."""

from __future__ import annotations

from datetime import datetime, timezone

import duckdb
import polars as pl

from transforms.build_context import BuildContext
from transforms.tables import read_frame

TRAJECTORY_SQL = """
SELECT f.*, f.observed_at AS at
FROM derived.ferritin_trajectory AS f
JOIN derived.infusion_episodes AS i ON f.patient_id = i.patient_id AND f.infusion_id = i.infusion_id
WHERE f.observed_at >= i.infused_at
"""

# m_id: a stable id per manifestation result (evaluation points pair results by it)
MANIFESTATIONS_SQL = """
SELECT row_number() OVER (ORDER BY patient_id, observed_at, rule, analyte, source) AS m_id, *,
    observed_at AS at
FROM flags.astct_iec_hs_2023_manifestations
"""

ONSET_WINDOWS_SQL = "SELECT * EXCLUDE (rules_version) FROM flags.astct_iec_hs_2023_onset_windows"


def iec_hs_inputs(con: duckdb.DuckDBPyConnection, ctx: BuildContext) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(trajectory after the infusion, manifestations) of this build, read on first use."""
    return ctx.frames("iec_hs_inputs", lambda: (read_frame(con, TRAJECTORY_SQL), read_frame(con, MANIFESTATIONS_SQL)))


def as_of_utc(ctx: BuildContext) -> datetime:
    return ctx.params["as_of"].astimezone(timezone.utc)
