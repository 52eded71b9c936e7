"""Hand-built cases for the criteria-set tests: staged rows in an in-memory store, the base
derived steps run for real, and the CRS / ferritin / IEC-HS tables (built by another part of the
engine) stood in by hand-written rows with exactly their columns.

    case = Case()
    case.infusion("P1")                                   # day 0 = 2026-03-02, 10:00 New York
    case.lab("P1", "ferritin", case.at(5, "08:00"), 12000)
    case.crs("P1", onset_day=1, peak_day=2, resolved_day=4)
    case.build("derived/organ_toxicity_daily.sql", "flags/windows_cartox_2017.sql")
    case.rows("SELECT * FROM flags.windows_cartox_2017")
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta, timezone
from itertools import count
from zoneinfo import ZoneInfo

from cartwatch.build import build_context, run_step, steps, write_reference_tables
from cartwatch.store import open_store
from transforms.rules import load_rules

SITE_TZ = "America/New_York"
INFUSION_DATE = date(2026, 3, 2)
# The table macros the flags files call (sql/macros/), then the base derived layer (labs, vitals
# and events on their episodes, baselines, episode days): sql/run_order.txt up to episode_days.
BASE_STEPS = tuple(steps()[:steps().index("derived/episode_days.sql") + 1])
# Every step of this part of the engine, in build order (as sql/run_order.txt lists them).
CRITERIA_STEPS = (
    "derived/organ_toxicity_daily.sql",
    "derived/easix_daily.sql",
    "derived/hlh_criteria_daily.py",
    "derived/hscore_daily.py",
    "flags/windows_cartox_2017.sql",
    "flags/windows_shah_2020.sql",
    "flags/windows_ucsf_masl_2020.sql",
    "flags/windows_hlh_94.sql",
    "flags/windows_hlh_2004.sql",
    "flags/windows_hscore.sql",
    "flags/windows.sql",
    "flags/daily.sql",
)

# The tables the CRS / ferritin / IEC-HS engineer builds, with exactly their columns.
STAND_INS = {
    "derived.crs_daily": (
        "patient_id VARCHAR, infusion_id VARCHAR, day INTEGER, day_start_at TIMESTAMPTZ, "
        "day_end_at TIMESTAMPTZ, grade INTEGER, grade_source VARCHAR, febrile BOOLEAN, "
        "max_temp_c DOUBLE, hypotension_grade INTEGER, hypoxia_grade INTEGER, rules_version VARCHAR"),
    "derived.crs_episodes": (
        "patient_id VARCHAR, infusion_id VARCHAR, onset_day INTEGER, onset_at TIMESTAMPTZ, "
        "peak_grade INTEGER, peak_day INTEGER, peak_at TIMESTAMPTZ, improvement_at TIMESTAMPTZ, "
        "improvement_day INTEGER, reescalated_at TIMESTAMPTZ, reescalated_day INTEGER, "
        "resolved_at TIMESTAMPTZ, resolved_day INTEGER, ferritin_window_end_at TIMESTAMPTZ, "
        "duration_days INTEGER, had_crs BOOLEAN, rules_version VARCHAR"),
    "derived.ferritin_trajectory": (
        "patient_id VARCHAR, infusion_id VARCHAR, observed_at TIMESTAMPTZ, day BIGINT, "
        "value DOUBLE, comparator VARCHAR, unit VARCHAR, uln DOUBLE, baseline DOUBLE, elevated BOOLEAN, "
        "crs_phase_peak DOUBLE, "
        "crs_phase_peak_at TIMESTAMPTZ, post_peak_nadir DOUBLE, max_rate_ng_ml_h DOUBLE, "
        "re_rise BOOLEAN, rapid_rise BOOLEAN, new_high BOOLEAN, signal VARCHAR, "
        "timing_holds BOOLEAN, status VARCHAR, source VARCHAR, rules_version VARCHAR"),
    "flags.astct_iec_hs_2023_daily": (
        "patient_id VARCHAR, infusion_id VARCHAR, day INTEGER, status VARCHAR, rules_version VARCHAR"),
    "flags.windows_astct_iec_hs_2023": (
        "patient_id VARCHAR, infusion_id VARCHAR, criteria_set VARCHAR, status VARCHAR, "
        "onset_at TIMESTAMPTZ, onset_day INTEGER, end_at TIMESTAMPTZ, end_day INTEGER, "
        "crs_onset_day INTEGER, crs_peak_day INTEGER, crs_resolved_day INTEGER, "
        "late_onset BOOLEAN, evidence STRUCT(rule VARCHAR, analyte VARCHAR, value DOUBLE, comparator VARCHAR, "
        "unit VARCHAR, "
        "\"at\" VARCHAR, source VARCHAR, status VARCHAR, detail VARCHAR)[], rules_version VARCHAR"),
}


class Case:
    """One in-memory store with hand-written inputs."""

    def __init__(self, site_tz: str = SITE_TZ, infusion_date: date = INFUSION_DATE):
        self.con = open_store(":memory:")
        self.rules = load_rules()
        self.tz = ZoneInfo(site_tz)
        self.site_tz = site_tz
        self.infusion_date = infusion_date
        self._seq = count(1)
        self._stand_in_rows: dict[str, list[dict]] = {t: [] for t in STAND_INS}

    # --- time axis -------------------------------------------------------------------------------
    def at(self, day: int, hhmm: str = "08:00") -> datetime:
        """A site-local time on day `day` post-infusion, as an aware UTC datetime."""
        local = datetime.combine(self.infusion_date + timedelta(days=day), time.fromisoformat(hhmm),
                                 tzinfo=self.tz)
        return local.astimezone(timezone.utc)

    def day_start(self, day: int) -> datetime:
        return self.at(day, "00:00")

    # --- staged rows -----------------------------------------------------------------------------
    def _lineage(self, *key) -> dict:
        seq = next(self._seq)
        return {"row_key": hashlib.sha1(repr((key, seq)).encode()).hexdigest(), "source_file": "case.csv",
                "source_line": seq, "source_format": "csv", "file_sha256": "case", "load_seq": seq}

    def _insert(self, table: str, row: dict) -> None:
        cols = ", ".join(row)
        self.con.execute(f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(row))})",
                         list(row.values()))

    def infusion(self, patient: str, at: datetime | None = None, infusion_id: str | None = None,
                 product: str = "axi-cel") -> None:
        at = at or self.at(0, "10:00")
        self._insert("stg.infusions", {
            **self._lineage(patient, "infusion", at), "patient_id": patient,
            "infusion_id": infusion_id or f"{patient}-I1", "product": product, "site_timezone": None,
            "observed_at": at, "loaded_at": at})

    def lab(self, patient: str, analyte: str, at: datetime, value: float, *, ref_low: float | None = None,
            ref_high: float | None = None, comparator: str | None = None) -> None:
        self._insert("stg.lab_results", {
            **self._lineage(patient, analyte, at), "patient_id": patient, "analyte": analyte,
            "loinc": (self.rules.analyte(analyte).loinc or (None,))[0], "value": float(value),
            "comparator": comparator, "unit": self.rules.analyte(analyte).canonical_unit,
            "ref_low": ref_low, "ref_high": ref_high, "result_status": "F", "observed_at": at,
            "resulted_at": at, "loaded_at": at})

    def vital(self, patient: str, kind: str, at: datetime, value: float | None = None,
              text: str | None = None) -> None:
        self._insert("stg.vitals", {
            **self._lineage(patient, kind, at), "patient_id": patient, "kind": kind,
            "value": value, "value_text": text,
            "unit": str(self.rules.vitals[kind]["canonical_unit"]) if value is not None else None,
            "observed_at": at, "loaded_at": at})

    def event(self, patient: str, event_type: str, at: datetime, value: float | None = 1.0) -> None:
        self._insert("stg.events", {
            **self._lineage(patient, event_type, at), "patient_id": patient, "event_type": event_type,
            "value_num": value, "value_text": None, "observed_at": at, "loaded_at": at})

    # --- stand-ins for the CRS / ferritin / IEC-HS tables ------------------------------------------
    def crs(self, patient: str, onset_day: int, peak_day: int, resolved_day: int | None,
            peak_grade: int = 2, lag_hours: float | None = None, infusion_id: str | None = None,
            onset_at: datetime | None = None) -> None:
        """A CRS episode: onset at the start of its day, resolved at the end of its day."""
        lag = self.rules.value("iec_hs.ferritin_lag_hours") if lag_hours is None else lag_hours
        resolved_at = None if resolved_day is None else self.day_start(resolved_day + 1)
        self._stand_in_rows["derived.crs_episodes"].append({
            "patient_id": patient, "infusion_id": infusion_id or f"{patient}-I1",
            "onset_day": onset_day, "onset_at": onset_at or self.day_start(onset_day),
            "peak_grade": peak_grade, "peak_day": peak_day, "peak_at": self.day_start(peak_day),
            "resolved_at": resolved_at, "resolved_day": resolved_day,
            "ferritin_window_end_at": None if resolved_at is None else resolved_at + timedelta(hours=lag),
            "had_crs": True, "rules_version": self.rules.version})

    def crs_day(self, patient: str, day: int, grade: int, hypoxia_grade: int = 0,
                source: str = "derived", infusion_id: str | None = None) -> None:
        self._stand_in_rows["derived.crs_daily"].append({
            "patient_id": patient, "infusion_id": infusion_id or f"{patient}-I1", "day": day,
            "day_start_at": self.day_start(day), "day_end_at": self.day_start(day + 1),
            "grade": grade, "grade_source": source, "febrile": grade > 0,
            "hypotension_grade": 0, "hypoxia_grade": hypoxia_grade,
            "rules_version": self.rules.version})

    def stand_in(self, table: str, **row) -> None:
        self._stand_in_rows[table].append(row)

    def _write_stand_ins(self) -> None:
        for table, columns in STAND_INS.items():
            self.con.execute(f"CREATE OR REPLACE TABLE {table} ({columns})")
            for row in self._stand_in_rows[table]:
                self._insert(table, row)

    # --- build -------------------------------------------------------------------------------------
    def context(self, as_of: datetime | None = None):
        return build_context(self.rules, as_of=as_of or datetime(2027, 1, 1, tzinfo=timezone.utc),
                             as_loaded=False, site_tz=self.site_tz)

    def build(self, *steps: str, as_of: datetime | None = None) -> "Case":
        """Run the base derived steps, write the stand-ins, then `steps` (default: all of ours)."""
        ctx = self.context(as_of)
        write_reference_tables(self.con, self.rules)
        for step in BASE_STEPS:
            run_step(self.con, step, ctx)
        self._write_stand_ins()
        for step in steps or CRITERIA_STEPS:
            run_step(self.con, step, ctx)
        return self

    def rows(self, sql: str, params: list | None = None) -> list[dict]:
        cursor = self.con.execute(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r)) for r in cursor.fetchall()]

    def one(self, sql: str, params: list | None = None) -> dict:
        rows = self.rows(sql, params)
        assert len(rows) == 1, rows
        return rows[0]

    def windows(self, criteria_set: str) -> list[dict]:
        rows = self.rows(f"SELECT * FROM flags.windows_{criteria_set} ORDER BY patient_id, onset_at")
        return rows
