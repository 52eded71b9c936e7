"""Issue 12: alerts never lost (F1), a killed run marked and its server gone (F8), a failed start
recorded (F9), nothing identifying in Prefect's database (F12), a backfill that lets the nightly in
(F7)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import date

import pytest

import flows.nightly
from cartwatch import notify
from cartwatch.runs import mark_dead_runs, start_run
from cartwatch.store import open_store
from flows.nightly import StepFailed, nightly
from opsdata import at
from sample_paths import REPO, SAMPLE

NIGHT = date(2026, 4, 1)


def overrides(db, tmp_path, name: str = "run") -> dict:
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    return {"db_path": str(db), "inbox": str(inbox), "digest_dir": str(tmp_path / name / "digest")}


def stored_digests(db) -> list:
    con = open_store(db)
    rows = con.execute("SELECT as_of, alerts FROM flags.digest_by_night ORDER BY as_of").fetchall()
    con.close()
    return rows


# ---------------------------------------------------------------------------------------------
# F1: the reported state is saved only after the digest is written and sent


@pytest.mark.parametrize("dies_at", ["write", "deliver"])
def test_a_nightly_that_dies_before_its_digest_is_out_shows_its_alerts_again(cohort_db, tmp_path, engine,
                                                                            prefect_harness, monkeypatch,
                                                                            dies_at):
    control_db = tmp_path / "control.duckdb"
    shutil.copy(cohort_db, control_db)
    control = nightly(as_of=at(NIGHT, 2), overrides=overrides(control_db, tmp_path, "control"))
    assert control["alerts"] == 3

    def dies(*args, **kwargs):            # not an OSError: no retry, the run stops here
        raise RuntimeError(f"process ended during {dies_at}")

    name = "write_digest_files" if dies_at == "write" else "send"
    working = getattr(notify, name)
    monkeypatch.setattr(notify, name, dies)
    with pytest.raises(StepFailed, match=f"step '{dies_at}'"):
        nightly(as_of=at(NIGHT, 2), overrides=overrides(cohort_db, tmp_path))
    assert stored_digests(cohort_db) == []             # nothing counts as reported yet
    monkeypatch.setattr(notify, name, working)
    again = nightly(as_of=at(NIGHT, 3), overrides=overrides(cohort_db, tmp_path))
    assert again["alerts"] == control["alerts"]        # every alert of the night shown, none lost
    assert [alerts for _, alerts in stored_digests(cohort_db)] == [3]


# ---------------------------------------------------------------------------------------------
# F8: a run that never finished is marked killed at the next start, and reported


def test_a_run_left_without_an_outcome_is_marked_killed_and_reported(cohort_db, tmp_path, engine, prefect_harness):
    con = open_store(cohort_db)
    dead_id = start_run(con, "nightly", at(NIGHT, 2), "x")
    con.execute("UPDATE meta.runs SET counts = json_object('pid', 0, 'host', 'h', 'step', 'evaluate') "
                "WHERE run_id = ?", [dead_id])
    mine = start_run(con, "nightly", at(NIGHT, 2), "x")     # this process's own unfinished run is not dead
    assert [run.run_id for run in mark_dead_runs(con)] == [dead_id]
    con.execute("UPDATE meta.runs SET outcome = NULL WHERE run_id = ?", [dead_id])
    con.execute("DELETE FROM meta.runs WHERE run_id = ?", [mine])
    con.close()

    result = nightly(as_of=at(NIGHT, 3), overrides=overrides(cohort_db, tmp_path))
    (line,) = result["killed_runs"]
    assert line.startswith(f"nightly run {dead_id} started 20")
    assert line.endswith(" was killed during step 'evaluate' (no outcome recorded; marked killed)")
    con = open_store(cohort_db)
    assert con.execute("SELECT outcome FROM meta.runs WHERE run_id = ?", [dead_id]).fetchall() == [("killed",)]
    assert con.execute("SELECT count(*) FROM meta.runs WHERE outcome IS NULL").fetchall() == [(0,)]
    con.close()
    log = (tmp_path / "run" / "digest" / "failures.log").read_text().splitlines()
    assert len(log) == 1 and log[0].endswith(f"nightly {dead_id} step=evaluate killed: no outcome recorded "
                                             "(the process ended without finishing)")
    # and the digest the clinician reads says it, in each format
    said = re.compile(r"the nightly run of \d{4}-\d\d-\d\d \d\d:\d\d E[SD]T was killed at step 'evaluate'; "
                      r"its alerts are shown again below")
    digest = tmp_path / "run" / "digest"
    assert len(said.findall((digest / "latest.md").read_text())) == 1
    assert len(said.findall((digest / "latest.html").read_text().replace("&#x27;", "'"))) == 1
    (shown,) = json.loads((digest / "latest.json").read_text())["data_quality"]["pipeline_runs"]
    assert said.fullmatch(shown["text"]) and shown["outcome"] == "killed"


CHILD = """
import sys, time
import cartwatch.prefect_env as prefect_env
from cartwatch.settings import load_settings

prefect_env.health = lambda url, timeout=10.0: True     # answer at once: the test needs the process only
server = prefect_env.start_temporary_server(load_settings(prefect_home=sys.argv[1]))
print(server.process.pid, flush=True)
time.sleep(120)
"""


def test_the_temporary_prefect_server_stops_when_its_command_is_killed(tmp_path):
    import signal
    import time

    command = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "prefect")], cwd=REPO,
                               stdout=subprocess.PIPE, text=True)
    server = int(command.stdout.readline())
    assert os.path.exists(f"/proc/{server}")
    command.send_signal(signal.SIGKILL)
    command.wait()
    deadline = time.monotonic() + 20
    while running(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(server)


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan waits for the container's init to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# F9: a start that fails (Prefect's server too slow) is recorded and reported


def test_a_prefect_start_that_times_out_is_recorded_and_reported(tmp_path, monkeypatch, capsys):
    import cartwatch.prefect_env as prefect_env
    from cartwatch.cli import main
    from flows.cli import FLOW_COMMANDS

    monkeypatch.setattr(prefect_env, "health", lambda url, timeout=10.0: False)    # a server that never answers
    monkeypatch.setenv("CARTWATCH_PREFECT_STARTUP_SECONDS", "1")
    monkeypatch.setenv("CARTWATCH_PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    for name in ("PREFECT_HOME", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
                 "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"):
        monkeypatch.setenv(name, os.environ.get(name, ""))          # restored after the test
    (tmp_path / "inbox").mkdir()
    db = tmp_path / "db.duckdb"
    status = main(["nightly", "--db", str(db), "--inbox", str(tmp_path / "inbox"), "--digest-dir",
                   str(tmp_path / "digest")], FLOW_COMMANDS)
    assert status == 1
    assert capsys.readouterr().err == ("cartwatch: Prefect's temporary server did not start in time "
                                       "(setting prefect_startup_seconds, now 1 s)\n")
    con = open_store(db)
    (outcome, counts, error), = con.execute("SELECT outcome, counts, error FROM meta.runs").fetchall()
    con.close()
    assert outcome == "failed" and json.loads(counts)["step"] == "prefect start-up"
    assert error.startswith("PrefectStartTimeout: Prefect's temporary server: not answering after …")
    log = (tmp_path / "digest" / "failures.log").read_text()
    assert "step=prefect start-up PrefectStartTimeout" in log
    assert "PREFECT_API_URL" not in os.environ                        # nothing left pointing at it


# ---------------------------------------------------------------------------------------------
# F12: what reaches Prefect's database


def prefect_database_text(path) -> str:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    text = "\n".join(con.iterdump())
    con.close()
    return text


def test_a_failing_task_and_the_artifact_leave_nothing_identifying_in_prefect(cohort_db, tmp_path, engine,
                                                                             prefect_harness, monkeypatch):
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, get_current_settings, temporary_settings

    def broken(*args, **kwargs):
        raise RuntimeError("cannot evaluate patient 'Q7-SECRET' at ferritin 91234")

    working = flows.nightly.evaluate
    monkeypatch.setattr(flows.nightly, "evaluate", broken)
    storage = tmp_path / "results"         # where Prefect pickles the failed flow's exception
    with temporary_settings(updates={PREFECT_LOCAL_STORAGE_PATH: storage}), pytest.raises(StepFailed) as failed:
        nightly(as_of=at(NIGHT, 2), overrides=overrides(cohort_db, tmp_path))
    assert str(failed.value) == "step 'evaluate' failed: RuntimeError: cannot evaluate patient … at ferritin …"
    assert "step 'evaluate' failed" in files_text(storage)
    monkeypatch.setattr(flows.nightly, "evaluate", working)
    result = nightly(as_of=at(NIGHT, 3), overrides=overrides(cohort_db, tmp_path))
    url = get_current_settings().server.database.connection_url.get_secret_value()
    text = prefect_database_text(url.split(":///", 1)[1])
    stored = files_text(storage)
    for secret in ("Q7-SECRET", "ferritin 91234"):
        assert secret not in text and secret not in stored
    assert "RuntimeError: cannot evaluate patient … at ferritin …" in text       # the scrubbed message is there
    artifact = f"| alerts (new or escalated, suspected and up) | {result['alerts']} |"
    assert artifact in text and "P001" not in text                               # counts, no ids


def files_text(folder) -> str:
    """Every file under a folder as text, base64 decoded too (Prefect stores results as base64 pickles)."""
    import base64
    import binascii
    from pathlib import Path

    texts = []
    for path in (p for p in Path(folder).rglob("*") if p.is_file()):
        raw = path.read_bytes()
        try:
            raw += b"\n" + base64.b64decode(raw, validate=False)
        except (binascii.Error, ValueError):
            pass
        texts.append(raw.decode("utf-8", "ignore"))
    return "\n".join(texts)


@pytest.mark.slow
def test_a_nightly_on_the_sample_leaves_no_sample_patient_id_in_prefects_database(tmp_path):
    ids = sorted({line.split(",")[0] for line in (SAMPLE / "infusions.csv").read_text().splitlines()[1:]})
    assert len(ids) == 28
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    subprocess.run([sys.executable, "-m", "flows.cli", "nightly", "--db", str(tmp_path / "db.duckdb"),
                    "--inbox", str(SAMPLE), "--digest-dir", str(tmp_path / "digest"),
                    "--as-of", (SAMPLE / "AS_OF").read_text().strip()], check=True, capture_output=True,
                   cwd=REPO, env=env)
    digest = (tmp_path / "digest" / "latest.md").read_text()
    assert sum(i in digest for i in ids) >= 10          # the local digest does name them
    text = prefect_database_text(tmp_path / "prefect" / "prefect.db")
    assert "cartwatch-digest" in text
    assert [i for i in ids if i in text] == []
    assert [i for i in ids if i in files_text(tmp_path / "prefect")] == []      # its storage and logs too


# ---------------------------------------------------------------------------------------------
# F7: a backfill lets a waiting job in between two nights


def test_a_job_waiting_for_a_backfill_runs_between_two_of_its_nights(cohort_db, tmp_path, engine, prefect_harness,
                                                                     monkeypatch):
    import time
    from datetime import datetime, timezone

    import flows.backfill
    from cartwatch.store import lock_path, waiting_jobs

    out = tmp_path / "quarantine.csv"
    waiter = {}

    def start_an_export_after_the_first_night(done, total, night, doc, elapsed):
        if done != 1:
            return
        waiter["process"] = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "export", "quarantine", "--db", str(cohort_db), "--out", str(out)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while waiting_jobs(cohort_db) != ["export"]:       # it waits for the database, and says so
            assert time.monotonic() < deadline and waiter["process"].poll() is None
            time.sleep(0.05)

    monkeypatch.setattr(flows.backfill, "on_night", start_an_export_after_the_first_night)
    result = flows.backfill.backfill(start=date(2026, 3, 12), end=date(2026, 3, 14),
                                     overrides=overrides(cohort_db, tmp_path), workers=1, progress=False)
    output, _ = waiter["process"].communicate(timeout=60)
    assert waiter["process"].returncode == 0 and output == f"quarantine: 0 rows -> {out} (csv)\n"
    assert (result["nights"], result["nights_run"]) == (3, 3)
    con = open_store(cohort_db)
    committed = [t for (t,) in con.execute("SELECT completed_at FROM meta.backfill_nights WHERE backfill_id = ? "
                                           "ORDER BY night", [result["backfill_id"]]).fetchall()]
    con.close()
    exported = datetime.fromtimestamp(out.stat().st_mtime, timezone.utc)
    assert committed[0] < exported < committed[1]            # the export ran between nights 1 and 2
    assert list(lock_path(cohort_db).parent.glob("*.waiting-*")) == []
