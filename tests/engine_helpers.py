"""Tiny scenarios for the clinical engine: rows straight into the stg tables of an in-memory store,
then `cartwatch.build.build` as of a moment. Times are written in the site's local time
("2026-03-10 08:00") and stored as UTC, as the normalizers would store them.

    s = Scenario()
    s.infusion("P1", "2026-03-01 10:00")
    s.vital("P1", "temperature", "2026-03-03 08:00", 38.6)
    s.lab("P1", "ferritin", "2026-03-03 06:00", 900)
    s.build("2026-04-01 00:00")
    s.rows("SELECT day, grade FROM derived.crs_daily")
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count
from zoneinfo import ZoneInfo

from cartwatch.build import build
from cartwatch.store import open_store
from transforms.rules import Rules, load_rules

NY = "America/New_York"


class Scenario:
    def __init__(self, site_tz: str = NY, rules: Rules | None = None, con=None):
        self.site_tz = site_tz
        self.rules = rules or load_rules()
        self.con = con or open_store(":memory:")
        self._seq = count(1)

    # --- time -----------------------------------------------------------------------------------
    def t(self, text: str | datetime, tz: str | None = None) -> datetime:
        """A local time in the site zone (or `tz`) as an aware datetime; aware input is kept."""
        if isinstance(text, datetime):
            return text if text.tzinfo else text.replace(tzinfo=ZoneInfo(tz or self.site_tz))
        return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz or self.site_tz))

    def _lineage(self, loaded_at: datetime) -> list:
        n = next(self._seq)
        return [loaded_at, "test.csv", n, "csv", "sha-test", n]

    # --- rows -----------------------------------------------------------------------------------
    def infusion(self, patient: str, at: str, infusion_id: str | None = None, product: str = "axi-cel",
                 tz: str | None = None) -> str:
        infusion_id = infusion_id or f"{patient}-I{next(self._seq)}"
        when = self.t(at, tz)
        self.con.execute("INSERT INTO stg.infusions VALUES (?, ?, ?, ?, NULL, NULL, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [f"inf-{infusion_id}", patient, infusion_id, product, tz, when, *self._lineage(when)])
        return infusion_id

    def lab(self, patient: str, analyte: str, at: str, value: float | None, *, resulted_at: str | None = None,
            ref_low: float | None = None, ref_high: float | None = None, status: str = "F",
            accession: str | None = None, loaded_at: str | None = None) -> None:
        a = self.rules.analyte(analyte)
        when = self.t(at)
        resulted = self.t(resulted_at) if resulted_at else None
        loaded = self.t(loaded_at) if loaded_at else (resulted or when)
        n = next(self._seq)
        self.con.execute(
            "INSERT INTO stg.lab_results VALUES (?, ?, ?, ?, NULL, NULL, ?, NULL, ?, NULL, NULL, ?, ?, ?, ?, NULL, "
            "?, ?, ?, ?, ?, ?, ?, ?)",
            [f"lab-{n}", patient, analyte, a.loinc[0] if a.loinc else None, value, a.canonical_unit, ref_low,
             ref_high, status, accession or f"ACC{n}", when, resulted, *self._lineage(loaded)])

    def vital(self, patient: str, kind: str, at: str, value: float | str) -> None:
        when = self.t(at)
        number, text = (None, value) if isinstance(value, str) else (float(value), None)
        unit = self.rules.vitals[kind]["canonical_unit"] or None
        self.con.execute("INSERT INTO stg.vitals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [f"vit-{next(self._seq)}", patient, kind, number, text, unit, when, *self._lineage(when)])

    def event(self, patient: str, event_type: str, at: str, value: float | str | None = None) -> None:
        when = self.t(at)
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if isinstance(value, bool):
            number = 1.0 if value else 0.0
        text = value if isinstance(value, str) else None
        self.con.execute("INSERT INTO stg.events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [f"evt-{next(self._seq)}", patient, event_type, number, text, when, *self._lineage(when)])

    def daily_vitals(self, patient: str, start: str, days: int, temp: float = 37.0, sbp: float = 120,
                     spo2: float = 97) -> None:
        """Normal vitals at 08:00 each day for `days` days from `start` (a local date)."""
        first = datetime.fromisoformat(start)
        for i in range(days):
            at = (first + timedelta(days=i)).replace(hour=8).isoformat(sep=" ")
            self.vital(patient, "temperature", at, temp)
            self.vital(patient, "sbp", at, sbp)
            self.vital(patient, "spo2", at, spo2)

    # --- build and read ---------------------------------------------------------------------------
    def build(self, as_of: str | datetime, rules: Rules | None = None) -> None:
        build(self.con, rules or self.rules, as_of=self.t(as_of), as_loaded=False, site_tz=self.site_tz)

    def rows(self, sql: str, params: list | None = None) -> list[dict]:
        cur = self.con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def one(self, sql: str, params: list | None = None) -> dict:
        found = self.rows(sql, params)
        assert len(found) == 1, found
        return found[0]

    def grades(self, patient: str) -> dict[int, tuple[int, str]]:
        return {r["day"]: (r["grade"], r["grade_source"]) for r in self.rows(
            "SELECT day, grade, grade_source FROM derived.crs_daily WHERE patient_id = ? ORDER BY day", [patient])}

    def ferritin(self, patient: str) -> list[dict]:
        return self.rows("SELECT * FROM derived.ferritin_trajectory WHERE patient_id = ? ORDER BY observed_at",
                         [patient])

    def windows(self, patient: str) -> list[dict]:
        """The patient's IEC-HS windows; evidence as a list of dicts (structured until the export)."""
        return self.rows("SELECT * FROM flags.windows_astct_iec_hs_2023 WHERE patient_id = ? ORDER BY onset_at",
                         [patient])
