"""The engine against data/sample's ground truth (written apart from it by cartwatch.synth's oracle):
per episode the CRS course, the IEC-HS status, onset day, criteria-met day and late flag, and per
ferritin result the worsening rules that fired and the status."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cartwatch.store import open_store

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"

RANK = {"none": 0, "watch": 1, "suspected": 2, "criteria_met": 3}
pytestmark = pytest.mark.skipif(not (SAMPLE / "ground_truth.json").is_file(), reason="no sample ground truth")


def _rows(con, sql: str, params: list) -> list[dict]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


@pytest.fixture(scope="module")
def sample(sample_db):
    """The sample evaluated as of its AS_OF (tests/conftest.py: built once per session)."""
    con = open_store(sample_db, create=False)
    yield con
    con.close()


def _truth() -> list[dict]:
    if not (SAMPLE / "ground_truth.json").is_file():
        return []
    return json.loads((SAMPLE / "ground_truth.json").read_text())["episodes"]


@pytest.mark.parametrize("truth", _truth(), ids=lambda t: t["infusion_id"])
def test_episode_verdict_matches_the_ground_truth(sample, truth):
    key = [truth["patient_id"], truth["infusion_id"]]
    windows = _rows(sample, "SELECT * FROM flags.windows_astct_iec_hs_2023 WHERE patient_id = ? AND infusion_id = ? "
                            "ORDER BY onset_at", key)
    iec = [w for w in windows if w["status"] != "watch"]
    met_day = _rows(sample, "SELECT min(day) AS d FROM flags.astct_iec_hs_2023_points WHERE patient_id = ? "
                            "AND infusion_id = ? AND status = 'criteria_met'", key)[0]["d"]
    crs = _rows(sample, "SELECT * FROM derived.crs_episodes WHERE patient_id = ? AND infusion_id = ?", key)[0]
    mine = {
        "crs_onset_day": crs["onset_day"], "crs_peak_grade": crs["peak_grade"] or 0,
        "crs_peak_day": crs["peak_day"], "crs_resolution_day": crs["resolved_day"],
        "iec_hs_status": max((w["status"] for w in windows), key=RANK.get, default="none"),
        "iec_hs_onset_day": iec[0]["onset_day"] if iec else None, "iec_hs_criteria_met_day": met_day,
        "late_onset": bool(iec and iec[0]["late_onset"]),
    }
    expected = {k: truth[k] for k in mine}
    expected["crs_peak_grade"] = expected["crs_peak_grade"] or 0
    assert mine == expected, truth["story"]


@pytest.mark.parametrize("truth", _truth(), ids=lambda t: t["infusion_id"])
def test_every_ferritin_signal_matches_the_ground_truth(sample, truth):
    rows = _rows(sample, "SELECT observed_at, re_rise, rapid_rise, new_high, status FROM derived.ferritin_trajectory "
                         "WHERE patient_id = ? AND infusion_id = ? AND signal IS NOT NULL ORDER BY observed_at",
                 [truth["patient_id"], truth["infusion_id"]])
    mine = [(r["observed_at"].astimezone(timezone.utc),
             sorted(k for k in ("re_rise", "rapid_rise", "new_high") if r[k]), r["status"]) for r in rows]
    expected = [(datetime.fromisoformat(s["at"]).astimezone(timezone.utc), sorted(s["rules"]), s["status"])
                for s in truth["ferritin_signals"]]
    assert mine == expected


def test_ground_truth_csv_lists_the_same_episodes():
    with open(SAMPLE / "ground_truth.csv", newline="") as handle:
        assert [r["infusion_id"] for r in csv.DictReader(handle)] == [t["infusion_id"] for t in _truth()]
