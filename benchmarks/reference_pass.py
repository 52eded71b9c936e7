"""The yardstick of `make bench`: the core computation as one hand-written DuckDB SQL pass.

    .venv/bin/python benchmarks/reference_pass.py FEEDS_DIR [--site-tz America/New_York] [--out result.parquet]

Reads labs.csv and infusions.csv of a cohort folder and computes, for every lab result, what the
evaluation's core needs: the timestamp in UTC (offset, Z or naive in the site zone), the value
(comparators and thousands separators), the canonical unit (a conversion table built once), the
result version in force (corrections), the infusion it belongs to (as-of join, pre-infusion rows
to the next infusion), the day post-infusion in the site's zone, the baseline (last pre-infusion
value within the look-back), x ULN and x baseline; then for ferritin the running CRS-phase peak, the
post-peak nadir and the first re-rise (elevated and >= the re-rise factor x nadir) per infusion.
Thresholds come from the rules file. It does less than cartwatch (no vitals, no CRS grading, no
quarantine, no Great Expectations, no dedupe across files, no as-of replays, no other criteria
sets): it is the lower bound of what the same data costs, not a replacement.

Prints one JSON line: rows read, results, infusions with a re-rise, seconds.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402

from cartwatch.synth.units import LAB_ANALYTES, profiles  # noqa: E402
from transforms.rules import load_rules  # noqa: E402

CORE = """
CREATE TEMP TABLE units AS SELECT * FROM (VALUES {units}) AS u(analyte, loinc, unit, scale, "offset");
CREATE TEMP TABLE uln AS SELECT * FROM (VALUES {uln}) AS u(analyte, default_high);

CREATE TEMP TABLE infusions AS
SELECT patient_id, infusion_id, site_timezone AS tz, infused_at::TIMESTAMPTZ AS infused_at
FROM read_csv($infusions, all_varchar = true);

CREATE TEMP TABLE labs AS
WITH raw AS (
    SELECT * FROM read_csv($labs, all_varchar = true)
), typed AS (
    SELECT r.patient_id, r.accession, r.result_status, r.loinc, r.unit,
           regexp_extract(r.value, '^\\s*(<=|>=|<|>)', 1) AS comparator,
           TRY_CAST(replace(regexp_replace(r.value, '^\\s*(<=|>=|<|>)', ''), ',', '') AS DOUBLE) AS value_raw,
           TRY_CAST(r.ref_high AS DOUBLE) AS ref_high_raw,
           r.collected_at, r.resulted_at
    FROM raw AS r
), zoned AS (   -- naive times are in the patient's site zone (else the settings' zone)
    SELECT t.*, coalesce(i.tz, $site_tz) AS tz
    FROM typed AS t LEFT JOIN (SELECT patient_id, any_value(tz) AS tz FROM infusions GROUP BY 1) AS i
        USING (patient_id)
)
SELECT z.patient_id, z.accession, z.result_status, u.analyte, z.comparator,
       (z.value_raw - u."offset") / u.scale AS value,
       (z.ref_high_raw - u."offset") / u.scale AS ref_high,
       CASE WHEN regexp_matches(z.collected_at, '(Z|[+-]\\d\\d:?\\d\\d)$') THEN z.collected_at::TIMESTAMPTZ
            ELSE timezone(z.tz, z.collected_at::TIMESTAMP) END AS collected_at,
       CASE WHEN regexp_matches(z.resulted_at, '(Z|[+-]\\d\\d:?\\d\\d)$') THEN z.resulted_at::TIMESTAMPTZ
            ELSE timezone(z.tz, z.resulted_at::TIMESTAMP) END AS resulted_at
FROM zoned AS z JOIN units AS u ON u.loinc = z.loinc AND u.unit = z.unit;

CREATE TEMP TABLE result AS
WITH in_force AS (   -- the latest version of each result (a cancellation removes it)
    SELECT * FROM labs
    QUALIFY row_number() OVER (PARTITION BY patient_id, accession, analyte ORDER BY resulted_at DESC) = 1
), placed AS (   -- the latest infusion at or before the draw (before the first: the first)
    SELECT l.*, coalesce(a.infusion_id, f.infusion_id) AS infusion_id,
           coalesce(a.infused_at, f.infused_at) AS infused_at, coalesce(a.tz, f.tz) AS tz
    FROM in_force AS l
    ASOF LEFT JOIN infusions AS a ON l.patient_id = a.patient_id AND l.collected_at >= a.infused_at
    LEFT JOIN (SELECT * FROM infusions QUALIFY row_number() OVER (PARTITION BY patient_id ORDER BY infused_at) = 1)
        AS f ON a.infusion_id IS NULL AND f.patient_id = l.patient_id
    WHERE l.result_status <> 'X' AND coalesce(a.infusion_id, f.infusion_id) IS NOT NULL
), baselines AS (  -- the last value before each infusion, within the look-back
    SELECT i.infusion_id, l.analyte, arg_max(l.value, l.collected_at) AS baseline
    FROM infusions AS i JOIN in_force AS l
        ON l.patient_id = i.patient_id AND l.collected_at < i.infused_at
       AND l.collected_at >= i.infused_at - to_hours($lookback_hours)
    WHERE l.result_status <> 'X'
    GROUP BY ALL
), baselined AS (
    SELECT p.*, b.baseline,
           date_diff('day', timezone(p.tz, p.infused_at)::DATE, timezone(p.tz, p.collected_at)::DATE) AS day,
           p.value / coalesce(p.ref_high, u.default_high) AS x_uln
    FROM placed AS p JOIN uln AS u USING (analyte) LEFT JOIN baselines AS b USING (infusion_id, analyte)
), ferritin AS (
    SELECT *, value / baseline AS x_baseline,
           max(value) OVER w AS peak,
           value = max(value) OVER w AS new_peak
    FROM baselined
    WHERE analyte = 'ferritin' AND collected_at >= infused_at
    WINDOW w AS (PARTITION BY infusion_id ORDER BY collected_at ROWS UNBOUNDED PRECEDING)
), segments AS (   -- rows from one peak to the next; a new peak closes the segment before it
    SELECT *, sum(new_peak::INT) OVER (PARTITION BY infusion_id ORDER BY collected_at
                                       ROWS UNBOUNDED PRECEDING) - new_peak::INT AS segment
    FROM ferritin
), nadirs AS (     -- the post-peak nadir: the lowest value since the last peak, before this row
    SELECT *, min(value) FILTER (WHERE NOT new_peak) OVER (
                  PARTITION BY infusion_id, segment ORDER BY collected_at
                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS nadir
    FROM segments
)
SELECT *,
       (x_uln >= $elevated_x_uln OR x_baseline >= $elevated_x_baseline)
       AND value >= $re_rise_factor * nadir AS re_rise
FROM nadirs;
"""


def conversion_rows(rules) -> tuple[str, str]:
    """(analyte, LOINC, unit, scale, offset) for every unit any site writes; (analyte, default ULN)."""
    units = set()
    for profile in profiles().values():
        for analyte in LAB_ANALYTES:
            w = profile[analyte]
            units.add((analyte, rules.analyte(analyte).loinc[0], w.unit, w.scale, w.offset))
    uln = [(a, rules.analyte(a).default_high) for a in LAB_ANALYTES]
    text = lambda rows: ", ".join("(" + ", ".join(repr(v) for v in row) + ")" for row in sorted(rows))  # noqa: E731
    return text(units), text(uln)


def run(feeds: Path, site_tz: str, out: Path | None) -> dict:
    rules = load_rules()
    units, uln = conversion_rows(rules)
    started = time.perf_counter()
    con = duckdb.connect()
    params = {"infusions": str(feeds / "infusions.csv"), "labs": str(feeds / "labs.csv"), "site_tz": site_tz,
              "lookback_hours": int(rules.value("time_axis.baseline_lookback_hours")),
              "elevated_x_uln": rules.value("iec_hs.ferritin_elevated_x_uln"),
              "elevated_x_baseline": rules.value("iec_hs.ferritin_elevated_x_baseline"),
              "re_rise_factor": rules.value("iec_hs.re_rise_factor")}
    for statement in re.split(r";\s*\n", CORE.format(units=units, uln=uln)):
        if statement.strip():
            names = [k for k in params if f"${k}" in statement]
            con.execute(statement, {k: params[k] for k in names})
    summary = con.execute("""
        SELECT (SELECT count(*) FROM labs), count(*), count(DISTINCT infusion_id) FILTER (WHERE re_rise)
        FROM result""").fetchall()[0]
    if out is not None:
        con.execute(f"COPY (SELECT * FROM result) TO '{out}' (FORMAT parquet)")
    con.close()
    return {"lab_rows": summary[0], "ferritin_results": summary[1], "infusions_with_re_rise": summary[2],
            "seconds": round(time.perf_counter() - started, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("feeds", type=Path)
    ap.add_argument("--site-tz", default="America/New_York")
    ap.add_argument("--out", type=Path, help="write the per-result table as Parquet")
    args = ap.parse_args()
    print(json.dumps(run(args.feeds, args.site_tz, args.out)))


if __name__ == "__main__":
    main()
