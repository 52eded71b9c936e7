"""With the real clinical engine on data/sample: nightly runs night by night and one backfill over
the same nights store identical windows, daily flags and digests. (A backfill killed with SIGKILL
resuming to the same result is part of tests/ops/test_crash_safety.py, with ingest and nightly.)"""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta

import duckdb

from opsdata import at
from sample_paths import SAMPLE

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
