"""The on-call digest (Markdown): who is being watched, latest ferritin, statuses, data quality."""

from __future__ import annotations

import hashlib
from datetime import datetime

import duckdb

from cartwatch.store import scalar

PATIENTS_SQL = """
WITH latest_ferritin AS (
    SELECT patient_id, infusion_id, arg_max(value, observed_at) AS ferritin,
           arg_max(unit, observed_at) AS unit, max(observed_at) AS ferritin_at,
           arg_max(x_uln, observed_at) AS x_uln
    FROM derived.timeline WHERE analyte = 'ferritin' GROUP BY ALL
)
SELECT i.patient_id, i.infusion_id, i.product, i.infused_at,
       day_post_infusion(i.site_tz, $as_of::TIMESTAMPTZ, i.infused_at) AS day_now,
       f.ferritin, f.unit, f.ferritin_at, f.x_uln
FROM derived.infusion_episodes AS i
LEFT JOIN latest_ferritin AS f USING (patient_id, infusion_id)
WHERE i.episode_end IS NULL OR i.episode_end > $as_of::TIMESTAMPTZ
ORDER BY day_now, i.patient_id
"""


def mask(patient_id: str, enabled: bool) -> str:
    """A stable pseudonym when masking is on (same patient, same mask, every night)."""
    return "pt-" + hashlib.sha256(patient_id.encode()).hexdigest()[:8] if enabled else patient_id


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(scalar(con, "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
                       "AND table_name = ?", [schema, table]))


def _statuses(con, as_of: datetime) -> dict[tuple[str, str], str]:
    if not _table_exists(con, "flags", "windows"):
        return {}
    rows = con.execute(
        "SELECT patient_id, infusion_id, string_agg(criteria_set || ': ' || status, '; ' "
        "ORDER BY criteria_set) FROM flags.windows WHERE status <> 'not_met' GROUP BY ALL").fetchall()
    return {(p, i): s for p, i, s in rows}


def render_markdown(con: duckdb.DuckDBPyConnection, *, as_of: datetime, rules_version: str,
                    mask_ids: bool = False) -> str:
    patients = con.execute(PATIENTS_SQL, {"as_of": as_of}).fetchall()
    statuses = _statuses(con, as_of)
    lines = [f"# cartwatch digest as of {as_of:%Y-%m-%d %H:%M %Z}", "",
             f"Rules version {rules_version}. {len(patients)} patients in an open episode.", "",
             "## Patients", "",
             "| patient | product | day | latest ferritin | x ULN | at | statuses |",
             "|---|---|---:|---:|---:|---|---|"]
    for pid, inf, product, _, day, ferritin, unit, at, x_uln in patients:
        ferr = f"{ferritin:,.0f} {unit}" if ferritin is not None else "none"
        xu = f"{x_uln:.1f}" if x_uln is not None else ""
        when = f"{at:%Y-%m-%d %H:%M}" if at else ""
        lines.append(f"| {mask(pid, mask_ids)} | {product} | {day} | {ferr} | {xu} | {when} | "
                     f"{statuses.get((pid, inf), '')} |")
    lines += ["", "## Data quality", "", *_quarantine_lines(con)]
    return "\n".join(lines) + "\n"


def _quarantine_lines(con) -> list[str]:
    rows = con.execute("SELECT source_file, reason, count(*) FROM quarantine.rows "
                       "GROUP BY ALL ORDER BY source_file, count(*) DESC").fetchall()
    if not rows:
        return ["No rows quarantined."]
    out = ["| file | reason | rows |", "|---|---|---:|"]
    return out + [f"| {f} | {r} | {n} |" for f, r, n in rows]
