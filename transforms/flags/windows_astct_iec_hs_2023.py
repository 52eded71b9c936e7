"""flags.windows_astct_iec_hs_2023: the IEC-HS onset windows with their statuses and evidence
(transforms.iec_hs_windows.window_rows)."""

from __future__ import annotations

import duckdb

from transforms.build_context import BuildContext
from transforms.iec_hs_inputs import ONSET_WINDOWS_SQL, as_of_utc, iec_hs_inputs
from transforms.iec_hs_windows import IecHsRules, window_rows
from transforms.tables import read_frame

POINTS_SQL = "SELECT * EXCLUDE (rules_version), observed_at AS at FROM flags.astct_iec_hs_2023_points"
BASELINES_SQL = """
SELECT patient_id, infusion_id, value, comparator, uln, observed_at AS at, source, unit
FROM derived.baselines
WHERE analyte = 'ferritin'
"""
CRS_SQL = "SELECT * FROM derived.crs_episodes"


def build(con: duckdb.DuckDBPyConnection, ctx: BuildContext) -> None:
    """flags.windows_astct_iec_hs_2023: the IEC-HS onset windows (contract.md §5 `export windows`).

    Grain: one row per onset window per infusion (status suspected or criteria_met), plus one
    `watch` row per run of CRS-associated hyperferritinemia that never reached suspected.
    Source criterion: ASTCT consensus on IEC-HS (Hines et al., TCT 2023); clinical-rules.md §3 (onset
    window, late onset).
    Parameters: $as_of, $iec_hs__manifestation_window_hours, $iec_hs__late_onset_day, $rules_version.
    Upstream tables: flags.astct_iec_hs_2023_onset_windows, flags.astct_iec_hs_2023_points,
    flags.astct_iec_hs_2023_manifestations, derived.crs_episodes, derived.baselines,
    derived.infusion_episodes.
    """
    _, manifestations = iec_hs_inputs(con, ctx)
    rows = window_rows(read_frame(con, ONSET_WINDOWS_SQL), read_frame(con, POINTS_SQL), manifestations,
                       read_frame(con, CRS_SQL), read_frame(con, BASELINES_SQL), IecHsRules.from_params(ctx.params),
                       as_of_utc(ctx))
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
        """, {"rules_version": ctx.rules.version})
    finally:
        con.unregister("_cartwatch_windows")
