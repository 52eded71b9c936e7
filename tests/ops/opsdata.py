"""Test data and a stand-in engine for the operations tests (nightly, incremental, backfill, digest).

- `write_cohort`: CSV feeds for a synthetic cohort with infusions spread over time, one file per
  feed per day of arrival (so a replay can drop a day's files into the inbox each night).
- `fake_engine`: a `py:` build step that writes the tables the clinical engine owns
  (derived.crs_daily, derived.crs_episodes, derived.ferritin_trajectory, flags.windows, flags.daily)
  from the base layer, with the same columns, depending on `$as_of` the way the real engine does
  (a window closes after a quiet period). The orchestration tests use it so that they test the
  orchestration, whatever state the real engine is in; `use_engine` swaps it in.
"""

from __future__ import annotations

import csv
import json
import random
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from cartwatch.build import steps

NY = ZoneInfo("America/New_York")
# the macros of sql/macros/ (first in sql/run_order.txt), then the base derived layer
BASE_STEPS = tuple(steps()[:steps().index("derived/episode_days.sql") + 1])
PRODUCTS = ("axi-cel", "tisa-cel", "liso-cel", "cilta-cel")


def at(d: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(d, time(hour, minute), NY)


def _ferritin_curve(day: int, hlh: bool, peak: float, rng: random.Random) -> float:
    if day < 0:
        value = 250.0
    elif day <= 4:
        value = 250 + (peak - 250) * day / 4
    elif day <= 10:
        value = peak * (0.55 ** (day - 4)) + 300
    elif hlh and day <= 16:
        value = (peak * 0.55 ** 6 + 300) * (1.9 ** (day - 10))
    elif hlh:
        value = max(400.0, 12000 * 0.6 ** (day - 16))
    else:
        value = 350.0
    return round(value * rng.uniform(0.95, 1.05), 0)


HEADERS = {
        "labs": ["patient_id", "collected_at", "loinc", "value", "unit", "ref_low", "ref_high", "resulted_at",
                 "result_status", "accession"],
        "vitals": ["patient_id", "measured_at", "kind", "value", "unit"],
        "infusions": ["patient_id", "infused_at", "product", "infusion_id"],
        "events": ["patient_id", "event_at", "event_type", "value"],
}


def cohort_rows(*, patients: int = 12, first_infusion: date = date(2026, 3, 1), spread_days: int = 40,
                seed: int = 7, days_after: int = 24) -> tuple[dict, dict]:
    """Feed rows (CSV column order) by (feed, day of arrival), and {patient_id: infusion date}."""
    rng = random.Random(seed)
    by_day: dict[tuple[str, date], list[list]] = {}
    infused = {}
    for n in range(patients):
        pid = f"P{n + 1:03d}"
        d0 = first_infusion + timedelta(days=round(n * spread_days / max(patients - 1, 1)))
        infused[pid] = d0
        hlh = n % 3 == 0
        peak = rng.choice((2500.0, 4000.0, 6000.0))
        by_day.setdefault(("infusions", d0), []).append(
            [pid, at(d0, 10).isoformat(), PRODUCTS[n % 4], f"{pid}-I1"])
        for k in range(-3, days_after + 1):
            d = d0 + timedelta(days=k)
            collected, resulted = at(d, 6), at(d, 8, 30)
            acc = f"{pid}-{k + 10:03d}"
            by_day.setdefault(("labs", d), []).append(
                [pid, collected.isoformat(), "2276-4", _ferritin_curve(k, hlh, peak, rng), "ng/mL", 30, 400,
                 resulted.isoformat(), "F", acc + "F"])
            if hlh and k >= 12:
                by_day[("labs", d)].append([pid, collected.isoformat(), "3255-7", 120 if k >= 13 else 210, "mg/dL",
                                            200, 400, resulted.isoformat(), "F", acc + "G"])
            if k >= 0 and k <= 14:
                for hour in (4, 12, 20):
                    temp = 38.6 if 2 <= k <= 4 + (n % 2) else 37.0
                    by_day.setdefault(("vitals", d), []).append(
                        [pid, at(d, hour).isoformat(), "temperature", temp, "Cel"])
        if n % 4 == 1:      # a documented grade and a cancellation the next day
            d = d0 + timedelta(days=3)
            by_day.setdefault(("events", d), []).append([pid, at(d, 9).isoformat(), "crs_grade", 2])
            d2 = d0 + timedelta(days=8)
            by_day.setdefault(("labs", d2), []).append(
                [pid, at(d0 + timedelta(days=7), 6).isoformat(), "2276-4", "", "ng/mL", 30, 400,
                 at(d2, 7).isoformat(), "X", f"{pid}-{7 + 10:03d}F"])
    return by_day, infused


def write_cohort(folder: Path, *, by_day: bool = True, **cohort) -> dict:
    """Write CSV files under `folder`, one per feed per day (or one per feed); returns {patient_id: infusion date}."""
    rows_by_day, infused = cohort_rows(**cohort)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[list]] = {}
    for (feed, d), rows in sorted(rows_by_day.items()):
        files.setdefault(f"{d:%Y%m%d}_{feed}.csv" if by_day else f"{feed}.csv", []).extend(rows)
    for name, rows in files.items():
        with open(folder / name, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADERS[name.split("_")[-1].removesuffix(".csv")])
            writer.writerows(rows)
    return infused


def cohort_store(path: Path, **cohort) -> dict:
    """A store holding the cohort, its stg rows inserted directly (fast: no parsing, no suites).

    Rows are grouped in one simulated file per feed per day, loaded (loaded_at) five hours after the
    day's last known time, so `--as-loaded` replays differ from plain as-of evaluations, and
    meta.files lists those files for the digest's data-quality section.
    """
    import hashlib

    from cartwatch.store import open_store

    rows_by_day, infused = cohort_rows(**cohort)
    con = open_store(path)
    seq = 0
    analytes = {"2276-4": ("ferritin", "ng/mL"), "3255-7": ("fibrinogen", "mg/dL")}
    for n, ((feed, d), rows) in enumerate(sorted(rows_by_day.items(), key=lambda kv: (kv[0][1], kv[0][0]))):
        name = f"/inbox/{d:%Y%m%d}_{feed}.csv"
        sha = hashlib.sha256(name.encode()).hexdigest()
        loaded_at = datetime.combine(d + timedelta(days=1), time(1, 0), NY)
        base = (n + 1) << 32
        for line, r in enumerate(rows, 2):
            seq = base + line
            key = hashlib.sha1(repr((feed, r)).encode()).hexdigest()
            common = [key, r[0], loaded_at, name, line, "csv", sha, seq]
            if feed == "labs":
                analyte, unit = analytes[r[2]]
                value = None if r[3] == "" else float(r[3])
                con.execute("INSERT INTO stg.lab_results (row_key, patient_id, loaded_at, source_file, source_line, "
                            "source_format, file_sha256, load_seq, analyte, loinc, value, unit, ref_low, ref_high, "
                            "result_status, accession, observed_at, resulted_at) VALUES "
                            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            common + [analyte, r[2], value, unit, r[5], r[6], r[8], r[9], r[1], r[7]])
            elif feed == "vitals":
                con.execute("INSERT INTO stg.vitals (row_key, patient_id, loaded_at, source_file, source_line, "
                            "source_format, file_sha256, load_seq, kind, value, unit, observed_at) VALUES "
                            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", common + [r[2], r[3], r[4], r[1]])
            elif feed == "infusions":
                con.execute("INSERT INTO stg.infusions (row_key, patient_id, loaded_at, source_file, source_line, "
                            "source_format, file_sha256, load_seq, product, infusion_id, observed_at) VALUES "
                            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", common + [r[2], r[3], r[1]])
            else:
                con.execute("INSERT INTO stg.events (row_key, patient_id, loaded_at, source_file, source_line, "
                            "source_format, file_sha256, load_seq, event_type, value_num, observed_at) VALUES "
                            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", common + [r[2], r[3], r[1]])
        con.execute("INSERT INTO meta.files VALUES (?, ?, 'csv', ?, ?, ?, ?, 0, 0, NULL)",
                    [sha, name, feed, loaded_at, len(rows), len(rows)])
    con.close()
    return infused


def files_until(folder: Path, day: date) -> list[Path]:
    """The cohort files that had arrived by the end of `day`."""
    return sorted(p for p in folder.glob("*.csv") if p.name[:8] <= f"{day:%Y%m%d}")


# ---------------------------------------------------------------------------------------------
# the stand-in engine

FAKE_SQL = """
CREATE OR REPLACE TABLE derived.crs_daily AS
SELECT patient_id, infusion_id, day, min(observed_at) AS day_start_at, max(observed_at) AS day_end_at,
       CASE WHEN max(value) >= 38 THEN 1 ELSE 0 END AS grade, 'derived' AS grade_source
FROM derived.vitals_timeline WHERE kind = 'temperature' GROUP BY ALL;

CREATE OR REPLACE TABLE derived.crs_episodes AS
SELECT patient_id, infusion_id, min(day) AS onset_day, max(grade) AS peak_grade, min(day) AS peak_day,
       NULL::TIMESTAMPTZ AS improvement_at, NULL::TIMESTAMPTZ AS resolved_at, max(day) + 1 AS resolved_day
FROM derived.crs_daily WHERE grade >= 1 GROUP BY ALL;

CREATE OR REPLACE TABLE derived.ferritin_trajectory AS
WITH f AS (
    SELECT t.*, e.resolved_day,
           max(value) FILTER (WHERE day <= coalesce(e.resolved_day, 99999) + 2)
               OVER (PARTITION BY t.patient_id, t.infusion_id) AS crs_phase_peak
    FROM derived.timeline AS t
    LEFT JOIN derived.crs_episodes AS e USING (patient_id, infusion_id)
    WHERE analyte = 'ferritin'
), n AS (
    SELECT *, min(value) FILTER (WHERE day > coalesce(resolved_day, 0)) OVER (
              PARTITION BY patient_id, infusion_id ORDER BY observed_at
              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS post_peak_nadir
    FROM f
)
SELECT patient_id, infusion_id, observed_at, day, value, unit, uln, baseline, crs_phase_peak, post_peak_nadir,
       CASE WHEN value > 2 * uln AND value >= 2 * post_peak_nadir THEN 're_rise' END AS signal,
       CASE WHEN value > 2 * uln AND value >= 2 * post_peak_nadir THEN 'suspected' END AS status
FROM n;

CREATE OR REPLACE TABLE flags.windows AS
WITH s AS (
    SELECT patient_id, infusion_id, min(observed_at) AS onset_at, arg_min(day, observed_at) AS onset_day,
           max(observed_at) AS last_at, arg_max(day, observed_at) AS last_day,
           list({'rule': 'iec_hs.re_rise_factor', 'analyte': 'ferritin', 'value': value, 'unit': unit,
                 'at': strftime(observed_at, '%Y-%m-%dT%H:%M:%SZ'), 'source': 'timeline'} ORDER BY observed_at) AS ev
    FROM derived.ferritin_trajectory WHERE signal IS NOT NULL GROUP BY ALL
), m AS (
    SELECT s.patient_id, s.infusion_id, bool_or(t.value < 150) AS fib
    FROM s JOIN derived.timeline AS t ON t.patient_id = s.patient_id AND t.analyte = 'fibrinogen'
    GROUP BY ALL
)
SELECT s.patient_id, s.infusion_id, 'astct_iec_hs_2023' AS criteria_set,
       CASE WHEN coalesce(m.fib, false) THEN 'criteria_met' ELSE 'suspected' END AS status,
       s.onset_at, s.onset_day,
       CASE WHEN s.last_at + INTERVAL 72 HOUR <= $as_of THEN s.last_at + INTERVAL 72 HOUR END AS end_at,
       CASE WHEN s.last_at + INTERVAL 72 HOUR <= $as_of THEN s.last_day + 3 END AS end_day,
       e.onset_day AS crs_onset_day, e.peak_day AS crs_peak_day, e.resolved_day AS crs_resolved_day,
       s.onset_day >= 29 AS late_onset, to_json(s.ev)::VARCHAR AS evidence, $rules_version AS rules_version
FROM s LEFT JOIN m USING (patient_id, infusion_id)
LEFT JOIN derived.crs_episodes AS e USING (patient_id, infusion_id);

CREATE OR REPLACE TABLE flags.daily AS
SELECT t.patient_id, t.infusion_id, t.day, max(c.grade) AS crs_grade, any_value(c.grade_source) AS crs_grade_source,
       max(t.value) AS ferritin_max, max(t.signal) AS ferritin_signal, NULL::DOUBLE AS easix, NULL::DOUBLE AS m_easix,
       NULL::INTEGER AS hscore_min, NULL::INTEGER AS hscore_max, NULL::INTEGER AS hlh_2004_met,
       NULL::INTEGER AS hlh_2004_evaluable, max(t.status) AS astct_iec_hs_2023, NULL AS cartox_2017,
       NULL AS shah_2020, NULL AS ucsf_masl_2020, NULL AS hlh_94, $rules_version AS rules_version
FROM derived.ferritin_trajectory AS t
LEFT JOIN derived.crs_daily AS c USING (patient_id, infusion_id, day)
GROUP BY ALL;
"""


def fake_engine(con, ctx) -> None:
    for statement in FAKE_SQL.split(";\n"):
        if statement.strip():
            names = {n for n in ("as_of", "rules_version") if f"${n}" in statement}
            con.execute(statement, {n: ctx.params[n] for n in names})


def fake_steps() -> list:
    return [*BASE_STEPS, fake_engine]


def use_engine(monkeypatch) -> None:
    """Swap the real run order for the base layer plus the stand-in engine."""
    import cartwatch.build

    monkeypatch.setattr(cartwatch.build, "steps", lambda *a, **k: fake_steps())


def dump(con, table: str, drop: tuple[str, ...] = ()) -> list[tuple]:
    """A table's rows, sorted, without the named columns: for comparing two builds.

    Evidence lists compare as sets of items: the engine does not promise their order.
    """
    from cartwatch.digest.select import canonical_evidence

    cols = [c for (c,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position", table.split(".")).fetchall() if c not in drop]
    rows = con.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall()
    if "evidence" in cols:
        i = cols.index("evidence")
        rows = [r[:i] + (canonical_evidence(r[i]),) + r[i + 1:] for r in rows]
    return sorted(rows, key=repr)


def utc(y, m, d, h=0, mi=0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=timezone.utc)


def canonical_json(text: str) -> str:
    return json.dumps(json.loads(text), sort_keys=True)


# ---------------------------------------------------------------------------------------------
# fixtures (imported by the conftest of tests/ops, tests/flows and tests/digest)

import shutil  # noqa: E402

import pytest  # noqa: E402

COHORT = {"patients": 8, "spread_days": 20, "days_after": 24}
_TEMPLATE: dict = {}


@pytest.fixture
def cohort_db(tmp_path_factory, tmp_path) -> Path:
    """A fresh copy of a store holding the cohort (ingested once per test session)."""
    if "path" not in _TEMPLATE:
        folder = tmp_path_factory.mktemp("cohort")
        _TEMPLATE["infused"] = cohort_store(folder / "template.duckdb", **COHORT)
        _TEMPLATE["path"] = folder / "template.duckdb"
    path = tmp_path / "store.duckdb"
    shutil.copy(_TEMPLATE["path"], path)
    return path


@pytest.fixture
def engine(monkeypatch):
    """The stand-in clinical engine in place of the real run order."""
    use_engine(monkeypatch)
