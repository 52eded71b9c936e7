"""The nightly flow and the backfill flow: run records, digests, failures, and that running the
nightly job night by night and one backfill over the same nights store identical results."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

import flows.backfill
import flows.nightly
from cartwatch.store import open_store
from flows.backfill import backfill
from flows.nightly import StepFailed, nightly
from opsdata import at, dump

NIGHTS = [date(2026, 3, 12) + timedelta(days=k) for k in range(5)]


def overrides(cohort_db, tmp_path) -> dict:
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    return {"db_path": str(cohort_db), "inbox": str(inbox), "digest_dir": str(tmp_path / "digest")}


def stream_rows(con, table: str, stream: str) -> list:
    con.execute(f"CREATE OR REPLACE TEMP TABLE cmp AS SELECT * EXCLUDE (stream) FROM {table} WHERE stream = ?", [stream])
    return dump(con, "temp.cmp") if False else sorted(
        con.execute("SELECT * FROM cmp").fetchall(), key=repr)


def digests(con, stream: str) -> list:
    out = []
    for as_of, doc, state in con.execute("SELECT as_of, digest, state FROM flags.digest_by_night WHERE stream = ? "
                                         "ORDER BY as_of", [stream]).fetchall():
        doc = json.loads(doc)
        doc.pop("stream")
        out.append((as_of, doc, json.loads(state)))
    return out


def test_nightly_runs_and_a_resumed_backfill_store_identical_nights(cohort_db, tmp_path, engine, prefect_harness,
                                                                    monkeypatch):
    params = overrides(cohort_db, tmp_path)
    results = [nightly(as_of=at(night, 2), as_loaded=True, overrides=params) for night in NIGHTS]
    assert [r["counts"]["build"]["mode"] for r in results][:2] == ["full", "incremental"]
    assert sum(r["alerts"] for r in results) >= 2                     # new, then escalated
    for fmt in ("md", "html", "json"):
        assert (tmp_path / "digest" / f"latest.{fmt}").is_file()

    def killed(done, total, night, doc, elapsed):
        if done == 2:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(flows.backfill, "on_night", killed)
    with pytest.raises(BaseException):
        backfill(start=NIGHTS[0], end=NIGHTS[-1], as_loaded=True, overrides=params, workers=2, progress=False)
    monkeypatch.setattr(flows.backfill, "on_night", None)
    resumed = backfill(start=NIGHTS[0], end=NIGHTS[-1], as_loaded=True, overrides=params, workers=2, progress=False)
    assert (resumed["nights"], resumed["nights_run"]) == (5, 3)

    con = open_store(cohort_db)
    stream = resumed["stream"]
    assert con.execute("SELECT count(*) FROM meta.backfill_nights WHERE backfill_id = ?",
                       [resumed["backfill_id"]]).fetchone()[0] == 5
    for table in ("flags.windows_by_night", "flags.daily_by_night"):
        assert stream_rows(con, table, "nightly") == stream_rows(con, table, stream), table
    nightly_docs, backfill_docs = digests(con, "nightly"), digests(con, stream)
    assert len(nightly_docs) == 5 and nightly_docs == backfill_docs
    sections = [d["counts"] for _, d, _ in nightly_docs]
    assert any(c["new"] for c in sections) and any(c["escalated"] for c in sections)
    runs = con.execute("SELECT kind, outcome, files, counts FROM meta.runs ORDER BY started_at").fetchall()
    assert [r[:2] for r in runs] == [("nightly", "ok")] * 5 + [("backfill", "failed"), ("backfill", "ok")]
    assert json.loads(runs[5][3])["step"] == "night 2026-03-13 stored"      # the failed one: how far it got
    assert json.loads(runs[1][3])["build"]["mode"] == "incremental"


def test_a_failing_step_is_recorded_and_reported(cohort_db, tmp_path, engine, prefect_harness, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("cannot evaluate patient P001")

    monkeypatch.setattr(flows.nightly, "evaluate", broken)
    params = overrides(cohort_db, tmp_path)
    with pytest.raises(StepFailed):
        nightly(as_of=at(NIGHTS[0], 2), overrides=params)
    con = open_store(cohort_db)
    outcome, counts, error = con.execute("SELECT outcome, counts, error FROM meta.runs").fetchone()
    assert outcome == "failed" and json.loads(counts)["step"] == "evaluate"
    report = (tmp_path / "digest" / "failures.log").read_text()
    assert "step=evaluate" in report and "RuntimeError" in report
    assert "P001" not in report and "P001" not in error              # no patient identifier leaves


def test_serve_builds_a_nightly_deployment_on_the_site_zone_schedule(tmp_path):
    from cartwatch.settings import load_settings
    from flows.serve import deployments, describe

    settings = load_settings(db_path=str(tmp_path / "x.duckdb"), site_tz="Europe/Madrid")
    deps = deployments(settings, {"db_path": str(tmp_path / "x.duckdb")})
    nightly_dep = deps[0]
    schedule = nightly_dep.schedules[0].schedule
    assert (schedule.cron, schedule.timezone) == ("0 2 * * *", "Europe/Madrid")
    assert nightly_dep.parameters == {"overrides": {"db_path": str(tmp_path / "x.duckdb")}}
    assert describe(deps)[1].endswith("on demand")
