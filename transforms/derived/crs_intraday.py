"""derived.crs_intraday: each day's CRS inputs as known at each reading (transforms.crs_grading).

Read by derived.crs_daily (a day's inputs are its last row) and by derived.ferritin_trajectory (a
day as known at a ferritin result's moment), so the readings are judged once per build.
"""

from __future__ import annotations

import duckdb
import polars as pl

from transforms.build_context import BuildContext
from transforms.crs_grading import CrsRules, crs_intraday, crs_readings
from transforms.tables import read_frame, write_table

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

# the table's rows in the order the cumulative columns were computed in (a day's last row is its total)
READ_SQL = """
SELECT * EXCLUDE (reading_at, rules_version), reading_at AS "at"
FROM derived.crs_intraday
ORDER BY patient_id, infusion_id, day, reading_at
"""


def build(con: duckdb.DuckDBPyConnection, ctx: BuildContext) -> None:
    """derived.crs_intraday: what the post-infusion vitals and documented events of a calendar day
    said about CRS by each reading time.

    Grain: one row per patient, infusion, day post-infusion and reading time; columns patient_id,
    infusion_id, day, reading_at, max_temp_c, hypotension_grade, o2_grade, o2_support, spo2_low, dose,
    doc_max, doc_last (cumulative within the day), rules_version.
    Source criterion: ASTCT consensus grading (Lee et al., BBMT 2019); clinical-rules.md §2.
    Parameters: $crs__* (hypotension, hypoxia, grades, vasopressors), o2_devices.
    Upstream tables: derived.vitals_timeline, derived.events_timeline, derived.infusion_episodes.
    """
    readings = crs_readings(read_frame(con, VITALS_SQL), read_frame(con, EVENTS_SQL),
                            CrsRules.from_params(ctx.params, ctx.rules))
    write_table(con, "derived.crs_intraday",
                crs_intraday(readings).rename({"at": "reading_at"})
                .with_columns(pl.lit(ctx.rules.version).alias("rules_version")))
