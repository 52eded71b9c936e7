"""The report's one table: per infusion of the cohort and per criteria set, what the evaluation found.

One row per (infusion, criteria set), read from the evaluation's tables in one set-based query:
the infusion's product, target antigen and indication, its follow-up (the last day post-infusion
with any data), its first CRS episode's peak and improvement days, a documented death's day, and
for the criteria set the highest status reached, whether it was flagged (a status that pages
someone in the digest: suspected, criteria met, met), the onset day of the first flagged window
and whether that onset was late (the windows' own `late_onset`, day `iec_hs.late_onset_day` of the
rules file on).

A target antigen the feed left empty comes from the product (transforms/parsers/codes.yaml, the
products' labels); an indication the feed left empty is reported as "not given".

The same query reads a stored night of a stream instead (night_sources.py).
"""

from __future__ import annotations

import duckdb
import polars as pl
import pyarrow as pa

from cartwatch.digest.select import CRITERIA_SETS
from cartwatch.digest.state import ALERT_RANK, RANK
from cartwatch.report.night_sources import NIGHT_SOURCES
from cartwatch.streams import Night

NOT_GIVEN = "not given"

OUTCOMES = """
WITH cohort AS (
    SELECT patient_id, infusion_id FROM report_cohort
),
{sources},
ranked AS (
    SELECT w.*, coalesce(map_extract_value(MAP($status_from, $status_rank), w.status), 1) AS status_rank
    FROM read_windows AS w JOIN cohort USING (patient_id, infusion_id)
),
per_set AS (
    SELECT patient_id, infusion_id, criteria_set,
           arg_max(status, status_rank) AS highest_status,
           max(status_rank) >= $alert_rank AS flagged,
           arg_min(onset_day, onset_at) FILTER (WHERE status_rank >= $alert_rank) AS onset_day,
           arg_min(late_onset, onset_at) FILTER (WHERE status_rank >= $alert_rank) AS late_onset
    FROM ranked WHERE status <> 'not_met' GROUP BY ALL
)
SELECT i.patient_id, i.infusion_id, i.product, i.target_antigen, coalesce(i.indication, $not_given) AS indication,
       f.last_day, c.crs_peak_day, c.crs_improvement_day, d.death_day, s.criteria_set,
       coalesce(p.highest_status, 'none') AS highest_status, coalesce(p.flagged, false) AS flagged,
       p.onset_day, coalesce(p.late_onset, false) AS late_onset
FROM infusions AS i
CROSS JOIN (SELECT unnest($criteria_sets::VARCHAR[]) AS criteria_set) AS s
LEFT JOIN follow_up AS f USING (patient_id, infusion_id)
LEFT JOIN crs AS c USING (patient_id, infusion_id)
LEFT JOIN deaths AS d USING (patient_id, infusion_id)
LEFT JOIN per_set AS p ON p.patient_id = i.patient_id AND p.infusion_id = i.infusion_id
                      AND p.criteria_set = s.criteria_set
ORDER BY i.patient_id, i.infusion_id, list_position($criteria_sets::VARCHAR[], s.criteria_set)
"""

# what the query reads from the evaluation in the tables: infusions, read_windows, follow_up, crs, deaths
EVALUATION_SOURCES = """
infusions AS (
    SELECT c.patient_id, c.infusion_id, e.product, e.target_antigen, e.indication
    FROM cohort AS c JOIN derived.infusion_episodes AS e USING (patient_id, infusion_id)
),
read_windows AS (
    SELECT * FROM flags.windows
),
follow_up AS (
    SELECT patient_id, infusion_id, max(day) AS last_day FROM flags.daily GROUP BY ALL
),
crs AS (
    SELECT patient_id, infusion_id, arg_min(peak_day, onset_at) AS crs_peak_day,
           arg_min(improvement_day, onset_at) AS crs_improvement_day
    FROM derived.crs_episodes WHERE had_crs GROUP BY ALL
),
deaths AS (
    SELECT patient_id, infusion_id, min(day) AS death_day
    FROM derived.events_timeline WHERE event_type = 'death' GROUP BY ALL
)"""


def outcomes(con: duckdb.DuckDBPyConnection, members: list[tuple[str, str]], night: Night | None = None,
             site_tz: str = "UTC") -> pl.DataFrame:
    """One row per (infusion of `members`, criteria set) of the evaluation in `con`, or of a stored
    `night` (`site_tz`: the zone of an infusion whose feed row gives none)."""
    cohort = pa.table({"patient_id": pa.array([p for p, _ in members], pa.string()),
                       "infusion_id": pa.array([i for _, i in members], pa.string())})
    params = {"status_from": list(RANK), "status_rank": list(RANK.values()), "alert_rank": ALERT_RANK,
              "criteria_sets": list(CRITERIA_SETS), "not_given": NOT_GIVEN}
    sources = EVALUATION_SOURCES
    if night is not None:
        sources = NIGHT_SOURCES
        params |= {"stream": night.stream, "as_of": night.as_of, "site_tz": site_tz}
    query = OUTCOMES.format(sources=sources)
    con.register("report_cohort", cohort)
    try:
        table = con.sql(query, params=params).to_arrow_table()
    finally:
        con.unregister("report_cohort")
    return with_antigen(pl.from_arrow(table))


def with_antigen(frame: pl.DataFrame) -> pl.DataFrame:
    """An empty target antigen filled from the product's (codes.yaml), looked up once per product."""
    from transforms.parsers.codes import classify_medication

    products = frame.get_column("product").unique().drop_nulls().to_list()
    antigen = {p: getattr(classify_medication(p), "target_antigen", None) for p in products}
    known = pl.DataFrame({"product": list(antigen), "product_antigen": list(antigen.values())},
                         schema={"product": pl.Utf8, "product_antigen": pl.Utf8})
    return (frame.join(known, on="product", how="left")
            .with_columns(pl.coalesce("target_antigen", "product_antigen", pl.lit(NOT_GIVEN)).alias("target_antigen"))
            .drop("product_antigen"))
