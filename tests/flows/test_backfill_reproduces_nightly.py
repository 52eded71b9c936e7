"""With the real clinical engine on data/sample: nightly runs night by night and one backfill over
the same nights store identical windows, daily flags and digests; and a backfill killed with
SIGKILL in the middle resumes where it stopped and ends identical to an uninterrupted one."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import date, timedelta

import duckdb
import pytest

from opsdata import at
from sample_paths import REPO, SAMPLE

# Nights around the sample's IEC-HS onsets in October (CW-0002, CW-0003, CW-0024-I2, CW-0025).
NIGHTS = [date(2026, 9, 29) + timedelta(days=k) for k in range(4)]


def sample_inbox(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("labs.csv", "vitals.csv", "infusions.csv", "events.csv"):
        shutil.copy(SAMPLE / name, inbox / name)
    return inbox


def night_rows(con, table: str, stream: str) -> list:
    rows = con.execute(f"SELECT * EXCLUDE (stream) FROM {table} WHERE stream = ?", [stream]).fetchall()
    return sorted(rows, key=repr)


def digests(con, stream: str) -> list:
    docs = []
    for as_of, doc in con.execute("SELECT as_of, digest FROM flags.digest_by_night WHERE stream = ? "
                                  "ORDER BY as_of", [stream]).fetchall():
        doc = json.loads(doc)
        doc.pop("stream")
        docs.append((as_of, doc))
    return docs


def test_backfill_reproduces_the_nightly_runs_with_the_real_engine(tmp_path, prefect_harness):
    from flows.backfill import backfill
    from flows.nightly import nightly

    params = {"db_path": str(tmp_path / "db.duckdb"), "inbox": str(sample_inbox(tmp_path)),
              "digest_dir": str(tmp_path / "digest")}
    for night in NIGHTS:
        nightly(as_of=at(night, 2), as_loaded=True, overrides=params)
    result = backfill(start=NIGHTS[0], end=NIGHTS[-1], as_loaded=True, overrides=params, workers=2,
                      progress=False)
    con = duckdb.connect(params["db_path"], read_only=True)
    for table in ("flags.windows_by_night", "flags.daily_by_night"):
        nightly_rows = night_rows(con, table, "nightly")
        assert nightly_rows and nightly_rows == night_rows(con, table, result["stream"]), table
    nightly_docs = digests(con, "nightly")
    assert len(nightly_docs) == len(NIGHTS) and nightly_docs == digests(con, result["stream"])
    alerts = sum(d["alerts"] for _, d in nightly_docs)
    assert alerts > 0          # the chosen nights do hold alerts
    con.close()


def _backfill_command(db: str, nights: list[date]) -> list[str]:
    return [sys.executable, "-m", "flows.cli", "backfill", "--db", db, "--start", nights[0].isoformat(),
            "--end", nights[-1].isoformat(), "--workers", "1", "--digest-dir", os.path.dirname(db),
            "--progress", "lines"]


def _stored_nights(db: str, table: str) -> list:
    con = duckdb.connect(db, read_only=True)
    rows = sorted(con.execute(f"SELECT * EXCLUDE (stream) FROM {table}").fetchall(), key=repr)
    con.close()
    return rows


@pytest.mark.slow
def test_backfill_killed_with_sigkill_resumes_to_the_same_result(tmp_path):
    nights = [date(2026, 9, 25) + timedelta(days=k) for k in range(12)]
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    dbs = {}
    for name in ("clean", "killed"):
        db = str(tmp_path / name / "db.duckdb")
        os.makedirs(os.path.dirname(db))
        subprocess.run([sys.executable, "-m", "flows.cli", "ingest", str(SAMPLE / "labs.csv"),
                        str(SAMPLE / "vitals.csv"), str(SAMPLE / "infusions.csv"), str(SAMPLE / "events.csv"),
                        "--db", db], check=True, capture_output=True, cwd=REPO, env=env)
        dbs[name] = db
    subprocess.run(_backfill_command(dbs["clean"], nights), check=True, capture_output=True, cwd=REPO, env=env)
    victim = subprocess.Popen(_backfill_command(dbs["killed"], nights), cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stored = 0
    for line in victim.stdout:            # `night k/12 ...` is printed once night k is stored
        stored += line.startswith("night ")
        if stored == 3:
            break
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    done = subprocess.run(_backfill_command(dbs["killed"], nights), check=True, capture_output=True,
                          cwd=REPO, env=env, text=True)
    run_now = int(re.search(r"12 nights \((\d+) run now\)", done.stdout).group(1))
    assert 1 <= run_now <= 9               # it resumed: the nights stored before the kill are kept
    for table in ("flags.windows_by_night", "flags.daily_by_night"):
        assert _stored_nights(dbs["killed"], table) == _stored_nights(dbs["clean"], table), table
