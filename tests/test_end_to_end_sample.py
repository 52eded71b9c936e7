"""The nightly flow end to end on data/sample/ under Prefect's test harness: every archetype of
the synthetic cohort gets the flags its ground truth expects, and nothing is lost on the way."""

from __future__ import annotations

import csv
from datetime import datetime

import duckdb
import pytest

from sample_paths import SAMPLE

AS_OF = datetime.fromisoformat((SAMPLE / "AS_OF").read_text().strip().replace("Z", "+00:00"))
STATUS_RANK = {"none": 0, "watch": 1, "suspected": 2, "criteria_met": 3}


def ground_truth() -> list[dict]:
    with open(SAMPLE / "ground_truth.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def nightly_run(prefect_harness, tmp_path_factory):
    from flows.nightly import nightly

    out = tmp_path_factory.mktemp("nightly")
    result = nightly(as_of=AS_OF, overrides={
        "db_path": str(out / "cartwatch.duckdb"), "inbox": str(SAMPLE), "digest_dir": str(out / "digest")})
    con = duckdb.connect(str(out / "cartwatch.duckdb"), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    yield result, con
    con.close()


def _episode(con, infusion_id: str) -> dict:
    windows = con.execute(
        "SELECT status, onset_day, late_onset FROM flags.windows WHERE criteria_set = 'astct_iec_hs_2023' "
        "AND infusion_id = ? ORDER BY onset_at", [infusion_id]).fetchall()
    crs = con.execute("SELECT onset_day, peak_grade, peak_day, resolved_day FROM derived.crs_episodes "
                      "WHERE infusion_id = ?", [infusion_id]).fetchall()
    highest = max((w[0] for w in windows), key=STATUS_RANK.get, default="none")
    alert = [w for w in windows if w[0] in ("suspected", "criteria_met")]
    return {"status": highest, "onset_day": alert[0][1] if alert else None,
            "late_onset": bool(alert and alert[0][2]), "crs": crs[0] if crs else None}


@pytest.mark.parametrize("truth", ground_truth(), ids=lambda t: f"{t['infusion_id']}-{t['archetype']}")
def test_each_archetype_gets_its_expected_flags(nightly_run, truth):
    _, con = nightly_run
    got = _episode(con, truth["infusion_id"])
    expected_onset = int(truth["iec_hs_onset_day"]) if truth["iec_hs_onset_day"] else None
    assert (got["status"], got["onset_day"], got["late_onset"]) == (
        truth["iec_hs_status"], expected_onset, truth["late_onset"] == "true")
    as_int = lambda v: int(v) if v else None  # noqa: E731
    expected_crs = tuple(as_int(truth[k]) for k in ("crs_onset_day", "crs_peak_grade", "crs_peak_day",
                                                     "crs_resolution_day"))
    if expected_crs[0] is not None:
        assert got["crs"] == expected_crs


def test_every_row_read_is_accounted_for(nightly_run):
    result, con = nightly_run
    files = {f["source_file"].rsplit("/", 1)[-1]: f for f in result["files"] if f["status"] == "loaded"}
    assert all(f["read"] == f["accepted"] + f["duplicate"] + f["quarantined"] for f in files.values())
    expected_quarantined = sum(int(t["quarantined_rows"]) for t in ground_truth())
    assert files["labs.csv"]["quarantined"] == expected_quarantined
    assert files["labs_resend.csv"]["duplicate"] == files["labs_resend.csv"]["read"]
    stored = con.execute("SELECT count(*) FROM quarantine.rows").fetchall()[0][0]
    assert stored == sum(f["quarantined"] for f in files.values())


def test_run_is_recorded_and_digest_written(nightly_run):
    result, con = nightly_run
    outcome, files = con.execute("SELECT outcome, files FROM meta.runs WHERE run_id = ?",
                                 [result["run_id"]]).fetchall()[0]
    assert outcome == "ok" and files == len(result["files"])
    digest = open(result["digest"]["md"], encoding="utf-8").read()
    expected_alerts = {t["patient_id"] for t in ground_truth() if t["iec_hs_status"] in ("suspected", "criteria_met")}
    assert all(pid in digest for pid in expected_alerts)
    assert con.execute("SELECT DISTINCT rules_version FROM flags.windows").fetchall() == [("2026.12.0",)]
