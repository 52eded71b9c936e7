"""Issue 9, row by row: what a new user met, and the exact line and exit status they now get.

Exit status (cartwatch/cli.py): 0 done, 1 a run failed, 2 bad input, 3 database busy, 4 some files
not loaded. Every failure is one line on standard error; `--debug` adds the traceback.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from flows.cli import main
from opsdata import utc
from sample_paths import REPO, SAMPLE

AS_OF = "2026-03-20T02:00:00-04:00"


def cli(*argv: str, env: dict | None = None, timeout: float = 120) -> tuple[int, str, str, float]:
    """`python -m flows.cli ...` in a fresh process: status, stdout, stderr, seconds."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "flows.cli", *argv], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **(env or {})}, timeout=timeout)
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


def one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err.rstrip("\n")


@pytest.fixture
def evaluated(cohort_db, rules, engine):
    """The cohort evaluated once, as a nightly run would leave it."""
    from cartwatch.incremental import evaluate
    from cartwatch.store import open_store

    con = open_store(cohort_db)
    evaluate(con, rules, as_of=utc(2026, 3, 20, 6), as_loaded=False, site_tz="America/New_York")
    con.close()
    return cohort_db


# ---------------------------------------------------------------------------------------------
# make demo: the temporary server's start-up budget (the load test is tests/ops/test_demo_under_load.py)


def test_the_temporary_server_gets_the_start_up_budget_of_the_settings(monkeypatch, tmp_path):
    from cartwatch.prefect_env import choose_server
    from cartwatch.settings import load_settings

    for name in ("PREFECT_HOME", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "PREFECT_API_URL",
                 "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"):
        monkeypatch.setenv(name, "x")          # restored after the test
    monkeypatch.delenv("PREFECT_API_URL")
    settings = load_settings(prefect_home=str(tmp_path / "prefect"))
    assert choose_server(settings) == "a temporary Prefect server (start-up budget 600 s)"
    assert os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "600"
    assert os.environ["PREFECT_HOME"] == str(tmp_path / "prefect")
    assert "PREFECT_API_URL" not in os.environ


def test_a_prefect_server_that_does_not_start_in_time_is_one_line(monkeypatch, tmp_path, capsys):
    import flows.cli
    import flows.nightly

    def late(**kwargs):
        raise RuntimeError("Timed out while attempting to connect to ephemeral Prefect API server.")

    monkeypatch.setattr(flows.cli, "start_prefect", lambda *a, **k: "a temporary Prefect server")
    monkeypatch.setattr(flows.nightly, "nightly", late)
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
    (tmp_path / "inbox").mkdir()
    status = main(["nightly", "--db", str(tmp_path / "db.duckdb"), "--inbox", str(tmp_path / "inbox"),
                   "--digest-dir", str(tmp_path / "digest")])
    assert status == 1
    assert one_line(capsys.readouterr().err) == ("cartwatch: Prefect's temporary server did not start in time "
                                                 "(setting prefect_startup_seconds, now 300 s)")


def test_a_prefect_api_url_that_does_not_answer_is_refused_before_anything_starts(tmp_path):
    (tmp_path / "inbox").mkdir()
    status, _, err, _ = cli("nightly", "--db", str(tmp_path / "db.duckdb"), "--inbox", str(tmp_path / "inbox"),
                            "--digest-dir", str(tmp_path / "d"), env={"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert status == 2
    assert one_line(err) == "cartwatch: PREFECT_API_URL http://127.0.0.1:9/api: no Prefect server answers there"


# ---------------------------------------------------------------------------------------------
# nightly --inbox /missing, backfill with its dates reversed: at once, one line, no Prefect


def test_a_missing_inbox_is_one_line_before_prefect_is_imported(tmp_path):
    status, out, err, seconds = cli("nightly", "--inbox", "/missing", "--db", str(tmp_path / "db.duckdb"))
    assert (status, out) == (2, "")
    assert one_line(err) == "cartwatch: inbox /missing: no such folder"
    assert seconds < 10          # about 0.2 s on an idle machine; generous for a loaded one
    assert not (tmp_path / "db.duckdb").exists()


def test_checks_import_neither_prefect_nor_great_expectations(tmp_path):
    code = ("import sys; from flows.cli import main; "
            f"status = main(['nightly', '--inbox', '/missing', '--db', {str(tmp_path / 'x.duckdb')!r}]); "
            "print(status, 'prefect' in sys.modules, 'great_expectations' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.stdout.split() == ["2", "False", "False"]


def test_backfill_with_its_dates_reversed_is_one_line(tmp_path):
    status, _, err, _ = cli("backfill", "--start", "2026-07-10", "--end", "2026-07-01",
                            "--db", str(tmp_path / "db.duckdb"))
    assert status == 2
    assert one_line(err) == "cartwatch: --end: 2026-07-01 is before --start 2026-07-10"


def test_debug_shows_the_traceback(tmp_path):
    status, _, err, _ = cli("nightly", "--inbox", "/missing", "--db", str(tmp_path / "db.duckdb"), "--debug")
    assert status == 2
    assert "Traceback (most recent call last)" in err
    assert err.rstrip("\n").splitlines()[-1] == "cartwatch: inbox /missing: no such folder"


@pytest.mark.parametrize("argv, line", [
    (["nightly", "--as-of", "someday"], "cartwatch: --as-of: unparseable timestamp 'someday' (ISO 8601: "
                                        "2026-07-07, or 2026-07-07T12:00 in the site zone, or with Z or +02:00)"),
    (["explain", "CW-0001", "--as-of", "2026-07-07 12:00 PST"],
     "cartwatch: --as-of: unparseable timestamp '2026-07-07 12:00 PST' (ISO 8601: 2026-07-07, or "
     "2026-07-07T12:00 in the site zone, or with Z or +02:00)"),
    (["backfill", "--start", "2026-07-01", "--end", "2026-07-xx"], "cartwatch: --end: '2026-07-xx' is not a date (YYYY-MM-DD)"),
    (["backfill", "--start", "2026-07-01", "--end", "2026-07-02", "--patients", "/no/ids.txt"],
     "cartwatch: --patients /no/ids.txt: no such file"),
    (["serve", "--cron", "0 2 * *"],
     "cartwatch: --cron '0 2 * *': needs 5 fields (minute hour day-of-month month day-of-week), got 4"),
    (["nightly", "--rules", "/no/rules.yaml"], "cartwatch: rules file: /no/rules.yaml: rules file not found"),
    (["nightly", "--bogus"], "cartwatch: unrecognized arguments: --bogus (see cartwatch --help)"),
])
def test_other_bad_input_is_one_line(tmp_path, capsys, argv, line):
    try:
        status = main(argv + ["--db", str(tmp_path / "db.duckdb")])
    except SystemExit as exc:          # argparse's own errors
        status = exc.code
    assert status == 2
    assert one_line(capsys.readouterr().err) == line


# ---------------------------------------------------------------------------------------------
# two jobs at once on one database


def _holder(code: str, db: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code, str(db)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_job_waits_then_names_the_job_holding_the_database(tmp_path):
    db = tmp_path / "db.duckdb"
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    holder = _holder("import sys, time; from cartwatch.store import job_lock; "
                     "held = job_lock(sys.argv[1], 'nightly', 0); held.__enter__(); print('held', flush=True); time.sleep(120)", db)
    try:
        job = json.loads(Path(str(db) + ".lock").read_text())
        started = time.monotonic()
        status, _, err, _ = cli("nightly", "--db", str(db), "--inbox", str(inbox), "--digest-dir", str(tmp_path / "d"),
                                env={"CARTWATCH_LOCK_WAIT_SECONDS": "2"})
        assert time.monotonic() - started >= 2
    finally:
        holder.kill()
        holder.wait()
    assert status == 3
    assert one_line(err) == (f"cartwatch: database {db}: held by another cartwatch job: nightly (pid {holder.pid}, "
                             f"started {job['started_at']}); waited 2 s (setting lock_wait_seconds)")


def test_a_job_waits_for_the_other_to_finish(tmp_path, rules):
    from cartwatch.store import job_lock, open_store

    db = tmp_path / "db.duckdb"
    open_store(db).close()
    holder = _holder("import sys, time; from cartwatch.store import job_lock; "
                     "held = job_lock(sys.argv[1], 'ingest', 0); held.__enter__(); print('held', flush=True); time.sleep(1.5)", db)
    started = time.monotonic()
    with job_lock(db, "digest", 30):
        waited = time.monotonic() - started
    holder.wait()
    assert 0.5 < waited < 30


def test_a_database_held_by_another_program_is_named(tmp_path):
    from cartwatch.store import open_store

    db = tmp_path / "db.duckdb"
    open_store(db).close()
    holder = _holder("import sys, time, duckdb; con = duckdb.connect(sys.argv[1]); print('held', flush=True); "
                     "time.sleep(120)", db)
    try:
        status, _, err, _ = cli("digest", "--db", str(db))
    finally:
        holder.kill()
        holder.wait()
    assert status == 3
    assert one_line(err) == f"cartwatch: database {db}: held by another process (pid {holder.pid}), not a cartwatch job"


# ---------------------------------------------------------------------------------------------
# digest --db typo.duckdb, --config missing.toml, a misspelt section


def test_reading_commands_never_create_a_database(tmp_path, capsys):
    db = tmp_path / "typo.duckdb"
    for argv in (["digest"], ["export", "windows", "--out", str(tmp_path / "w.csv")]):
        assert main(argv + ["--db", str(db)]) == 2
        assert one_line(capsys.readouterr().err) == (
            f"cartwatch: database {db}: no such file (digest, export, explain and report read an existing database: "
            "run `cartwatch nightly` or `cartwatch ingest` first, or fix --db)")
    assert not db.exists()


def test_a_file_that_is_not_a_database_is_one_line(tmp_path, capsys):
    db = tmp_path / "notes.duckdb"
    db.write_text("these are my notes, not a database\n")
    assert main(["digest", "--db", str(db)]) == 2
    assert one_line(capsys.readouterr().err) == f"cartwatch: database {db}: not a DuckDB database file"


@pytest.mark.parametrize("text, line", [
    (None, "cartwatch: settings file {config}: no such file"),
    ("[cartwach]\ndb_path = 'x.duckdb'\n",
     "cartwatch: settings file {config}: unknown section [cartwach]; settings go under [cartwatch]"),
    ("[cartwatch]\ndb_pth = 'x.duckdb'\n",
     "cartwatch: settings file {config}: unknown setting 'db_pth' in [cartwatch] (did you mean 'db_path'?)"),
    ("[cartwatch]\nmask_ids = 'ture'\n",
     "cartwatch: settings file {config}: setting 'mask_ids': 'ture' is not true or false"),
])
def test_config_problems_are_one_line(tmp_path, capsys, text, line):
    config = tmp_path / "missing.toml"
    if text is not None:
        config.write_text(text)
    assert main(["digest", "--config", str(config)]) == 2
    assert one_line(capsys.readouterr().err) == line.format(config=config)


# ---------------------------------------------------------------------------------------------
# ingest of files that are not feeds: exit 4, the rest loads, the digest names them


@pytest.fixture
def odd_inbox(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a_nofeed.csv").write_text("foo,bar\n1,2\n")
    (inbox / "b_binary.csv").write_bytes(b"patient_id\xff\xfe\x00\x01\n")
    (inbox / "c_empty.csv").write_bytes(b"")
    (inbox / "d_infusions.csv").write_text("patient_id,infused_at,product,infusion_id\n"
                                           "P1,2026-06-01T14:00:00-04:00,axi-cel,I1\n")
    return inbox


def test_ingest_exits_4_when_files_are_not_loaded_and_loads_the_rest(odd_inbox, tmp_path, capsys):
    db = tmp_path / "db.duckdb"
    assert main(["ingest", str(odd_inbox), "--db", str(db)]) == 4
    captured = capsys.readouterr()
    assert one_line(captured.err) == (
        "cartwatch: 3 of 4 files not loaded: a_nofeed.csv skipped (header matches no feed: foo, bar); "
        "b_binary.csv skipped (header is not readable text); "
        "c_empty.csv skipped (no rows: the file is empty)")
    infusions = next(line for line in captured.out.splitlines() if "d_infusions.csv" in line).split()
    assert infusions[1:] == ["loaded", "1", "1", "0", "0"]


def test_the_digest_lists_files_not_loaded_with_their_reasons(odd_inbox, tmp_path, rules):
    from cartwatch.digest import make_digest, render
    from cartwatch.ingest import ingest_paths
    from cartwatch.store import open_store

    (odd_inbox / "e_labs.csv").write_text("patient_id,collected_at,loinc,value,unit\n"
                                          "P1,2026-06-02T08:00:00Z,2276-4,pending,ng/mL\n")
    con = open_store(tmp_path / "db.duckdb")
    loaded_at = datetime(2026, 6, 3, 6, tzinfo=timezone.utc)
    ingest_paths(con, [odd_inbox], rules, site_tz="America/New_York", now=loaded_at, loaded_at=loaded_at)
    doc = make_digest(con, rules, as_of=loaded_at, as_loaded=False, stream="nightly", site_tz="America/New_York",
                      persist=False)
    assert doc["data_quality"]["not_loaded"] == [
        {"source_file": "a_nofeed.csv", "problem": "skipped", "reason": "header matches no feed: foo, bar"},
        {"source_file": "b_binary.csv", "problem": "skipped",
         "reason": "header is not readable text"},
        {"source_file": "c_empty.csv", "problem": "skipped", "reason": "no rows: the file is empty"},
        {"source_file": "e_labs.csv", "problem": "rejected", "reason": "every row quarantined (1)"}]
    md = render(doc, "md")
    assert "Files not loaded (4):" in md
    assert "- a_nofeed.csv: skipped (header matches no feed: foo, bar)" in md
    assert 'id=not-loaded' in render(doc, "html")


# ---------------------------------------------------------------------------------------------
# masking everywhere


def test_export_masks_ids(evaluated, tmp_path, capsys):
    from cartwatch.store import open_store

    con = open_store(evaluated)
    patients = {p for (p,) in con.execute("SELECT DISTINCT patient_id FROM flags.windows").fetchall()}
    con.close()
    assert patients
    out = tmp_path / "windows.csv"
    assert main(["export", "windows", "--mask-ids", "--out", str(out), "--db", str(evaluated)]) == 0
    text = out.read_text()
    assert not any(p in text for p in patients)
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(r["patient_id"].startswith("pt-") for r in rows)


def test_a_boolean_typo_is_an_error_not_off(tmp_path):
    status, _, err, _ = cli("digest", "--db", str(tmp_path / "db.duckdb"), env={"CARTWATCH_MASK_IDS": "ture"})
    assert status == 2
    assert one_line(err) == "cartwatch: CARTWATCH_MASK_IDS: 'ture' is not true or false"


def test_the_prefect_artifact_and_messages_are_masked_by_default(evaluated, rules, tmp_path, monkeypatch):
    import flows.nightly
    from cartwatch import notify
    from cartwatch.digest import make_digest
    from cartwatch.settings import load_settings
    from cartwatch.store import open_store

    con = open_store(evaluated)
    doc = make_digest(con, rules, as_of=utc(2026, 3, 20, 6), as_loaded=False, stream="nightly",
                      site_tz="America/New_York", persist=False)
    patients = {w["patient_id"] for s in doc["sections"].values() for w in s}
    con.close()
    assert patients
    published, sent = [], []
    monkeypatch.setattr(flows.nightly, "create_markdown_artifact", lambda text, **kw: published.append(text))
    monkeypatch.setattr(notify, "send", lambda settings, message: sent.append(message) or True)
    settings = load_settings(digest_dir=str(tmp_path / "digest"), notify_url="json://localhost")
    paths = flows.nightly.write_digest.fn(settings, doc, utc(2026, 3, 20, 6))
    flows.nightly.deliver.fn(settings, doc, paths["html"])
    assert published and not any(p in published[0] for p in patients)
    assert sent and not any(p in sent[0].body for p in patients)
    assert any(p in paths["md"].read_text() for p in patients)          # the local file, unmasked by default


# ---------------------------------------------------------------------------------------------
# a rules file with a changed value says so on every row and in the digest


@pytest.fixture
def changed_rules(tmp_path):
    text = (REPO / "transforms" / "clinical_rules.yaml").read_text()
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("iec_hs.re_rise_factor:"))
    value = next(i for i in range(at, at + 10) if lines[i].strip().startswith("value:"))
    assert lines[value].split(":")[1].strip() == "2"
    lines[value] = lines[value].replace("2", "20")
    path = tmp_path / "rules.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_released_rules_file_has_its_declared_version(rules):
    assert rules.released and rules.version == rules.declared_version == "2026.12.0"


def test_a_changed_rules_file_is_versioned_by_its_content(changed_rules, evaluated, tmp_path, capsys):
    from transforms.rules import load_rules

    custom = load_rules(changed_rules)
    assert not custom.released
    assert custom.version == f"2026.12.0+{custom.content_hash[:8]}"
    out = tmp_path / "windows.json"
    assert main(["export", "windows", "--rules", str(changed_rules), "--as-of", AS_OF, "--out", str(out),
                 "--db", str(evaluated)]) == 0
    rows = json.loads(out.read_text())
    assert rows and {r["rules_version"] for r in rows} == {custom.version}
    capsys.readouterr()
    assert main(["digest", "--rules", str(changed_rules), "--as-of", AS_OF, "--db", str(evaluated)]) == 0
    assert (f"Rules version {custom.version} (rules content {custom.content_hash[:8]}, not the released 2026.12.0)"
            in capsys.readouterr().out)
    # --as-of evaluated in a scratch database: the store keeps the nightly's evaluation, made with the
    # released file, and reading it with the changed one is refused
    assert main(["digest", "--rules", str(changed_rules), "--db", str(evaluated)]) == 2
    assert f"is rules version {custom.version}, the stored evaluation was made with 2026.12.0 " in \
        capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# backfill results readable; digest and export read, they do not rebuild


def _state(db: Path) -> tuple:
    from cartwatch.store import open_store

    con = open_store(db)
    row = con.execute("SELECT as_of, stamp, built_at FROM meta.build_state").fetchall()[0]
    con.close()
    return row


def test_digest_and_export_without_as_of_read_the_last_evaluation(evaluated, tmp_path, capsys):
    before = _state(evaluated)
    assert main(["digest", "--db", str(evaluated), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["as_of"] == "2026-03-20T06:00:00Z"
    assert main(["export", "flags", "--db", str(evaluated), "--out", str(tmp_path / "f.csv")]) == 0
    assert _state(evaluated) == before


def test_nothing_evaluated_yet_is_one_line(cohort_db, capsys):
    assert main(["digest", "--db", str(cohort_db)]) == 2
    assert one_line(capsys.readouterr().err) == ("cartwatch: nothing evaluated in this database yet: run "
                                                 "`cartwatch nightly`, or pass --as-of to evaluate now")


def test_backfill_nights_are_readable_by_digest_and_export(cohort_db, tmp_path, engine, prefect_harness, capsys):
    from datetime import date

    from cartwatch.store import open_store
    from flows.backfill import backfill

    params = {"db_path": str(cohort_db), "digest_dir": str(tmp_path / "digest")}
    result = backfill(start=date(2026, 3, 14), end=date(2026, 3, 16), overrides=params, workers=1, progress=False,
                      as_of=utc(2026, 3, 30))
    stream = result["stream"]
    con = open_store(cohort_db)
    stored = json.loads(con.execute("SELECT digest FROM flags.digest_by_night WHERE stream = ? AND night = ?",
                                    [stream, date(2026, 3, 15)]).fetchall()[0][0])
    windows = con.execute("SELECT count(*) FROM flags.windows_by_night WHERE stream = ? AND night = ?",
                          [stream, date(2026, 3, 15)]).fetchall()[0][0]
    params_json = json.loads(con.execute("SELECT params FROM meta.backfills WHERE backfill_id = ?",
                                         [result["backfill_id"]]).fetchall()[0][0])
    con.close()
    assert params_json["known_by"] == "2026-03-30T00:00:00+00:00"
    assert main(["digest", "--db", str(cohort_db), "--stream", stream, "--night", "2026-03-15", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown.pop("pager") and shown == stored
    bare_id = stream.split(":", 1)[1]       # the id alone, as `backfill` prints it, also works
    out = tmp_path / "w.json"
    assert main(["export", "windows", "--db", str(cohort_db), "--stream", bare_id, "--night", "2026-03-15",
                 "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())) == windows
    capsys.readouterr()
    assert main(["digest", "--db", str(cohort_db), "--stream", "backfill:nope"]) == 2
    assert one_line(capsys.readouterr().err) == (f"cartwatch: --stream 'backfill:nope': no such stream in this "
                                                 f"database (stored: {stream})")
    assert main(["export", "timeline", "--db", str(cohort_db), "--stream", stream, "--out", str(out)]) == 2
    assert one_line(capsys.readouterr().err) == ("cartwatch: export timeline: not stored per night; --stream and "
                                                 "--night apply to windows and flags")


def test_backfill_as_of_keeps_only_rows_known_by_then(cohort_db, rules):
    from cartwatch import backfill as bf
    from cartwatch.settings import load_settings
    from cartwatch.store import open_store

    con = open_store(cohort_db)
    patients = bf.cohort(con, site_tz="America/New_York")
    settings = load_settings()
    everything = bf.read_sources(con, patients, rules, settings, False)
    cutoff = utc(2026, 3, 10)
    known = bf.read_sources(con, patients, rules, settings, False, known_by=cutoff)
    labs = known.tables["stg.lab_results"].to_pylist()
    con.close()
    assert 0 < len(labs) < everything.tables["stg.lab_results"].num_rows
    assert all((r["resulted_at"] or r["observed_at"]) <= cutoff for r in labs)


# ---------------------------------------------------------------------------------------------
# export: the format follows the file name


def test_export_quarantine_to_parquet_writes_parquet(cohort_db, tmp_path, capsys):
    import pyarrow.parquet as pq

    from cartwatch.export import EXPORT_COLUMNS

    out = tmp_path / "q.parquet"
    assert main(["export", "quarantine", "--out", str(out), "--db", str(cohort_db)]) == 0
    assert tuple(pq.read_table(out).column_names) == EXPORT_COLUMNS["quarantine"]
    assert main(["export", "quarantine", "--format", "csv", "--out", str(out), "--db", str(cohort_db)]) == 2
    assert one_line(capsys.readouterr().err) == f"cartwatch: --out {out}: the extension says parquet but --format says csv"


# ---------------------------------------------------------------------------------------------
# progress, --version


def test_progress_lines_and_quiet_logs(tmp_path):
    labs = tmp_path / "labs.csv"
    labs.write_text((SAMPLE / "infusions.csv").read_text())
    status, _, err, _ = cli("ingest", str(labs), "--db", str(tmp_path / "a.duckdb"))
    assert (status, err) == (0, "")                     # not a terminal: nothing but the table
    status, _, err, _ = cli("ingest", str(labs), "--db", str(tmp_path / "b.duckdb"), "--progress", "lines")
    assert status == 0
    lines = err.splitlines()
    assert lines[0].startswith("ingest [") and "file 1/1 labs.csv: reading" in lines[0]
    assert "file 1/1 labs.csv: loaded, 29 rows; 29 rows so far" in lines[1]


def test_version():
    status, out, _, _ = cli("--version")
    assert status == 0 and out.strip() == "cartwatch 0.2.0.dev0"


@pytest.mark.slow
def test_a_failing_nightly_step_is_one_line_and_the_temporary_server_stops(tmp_path):
    """A run that fails after Prefect started: one line (no Prefect tracebacks, no DuckDB teardown dump)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "infusions.csv").write_text((SAMPLE / "infusions.csv").read_text())
    script = tmp_path / "fail.py"
    script.write_text(
        "import sys\n"
        "import flows.cli as cli\n"
        "original = cli.start_prefect\n"
        "def patched(*a, **k):\n"
        "    where = original(*a, **k)\n"
        "    import flows.nightly\n"
        "    def broken(*a, **k):\n"
        "        raise RuntimeError('cannot evaluate patient CW-0001')\n"
        "    flows.nightly.evaluate = broken\n"
        "    return where\n"
        "cli.start_prefect = patched\n"
        f"sys.argv = ['cartwatch', 'nightly', '--db', {str(tmp_path / 'db.duckdb')!r}, '--inbox', {str(inbox)!r},"
        f" '--digest-dir', {str(tmp_path / 'digest')!r}]\n"
        "cli.console()\n")
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=600)
    assert done.returncode == 1
    assert one_line(done.stderr) == "cartwatch: run failed: step 'evaluate' failed: RuntimeError: cannot evaluate patient …"
    assert "step=evaluate" in (tmp_path / "digest" / "failures.log").read_text()


def test_nightly_reports_its_steps_and_files_for_progress(cohort_db, tmp_path, engine, prefect_harness, monkeypatch):
    import flows.nightly
    from cartwatch.progress import Progress

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "infusions.csv").write_text("patient_id,infused_at,product,infusion_id\n"
                                         "P900,2026-03-01T14:00:00-05:00,axi-cel,I900\n")
    lines = tmp_path / "progress.txt"
    with open(lines, "w") as stream:
        progress = Progress("lines", stream=stream, label="nightly")
        monkeypatch.setattr(flows.nightly, "on_step", lambda step: progress.step(f"step {step}"))
        monkeypatch.setattr(flows.nightly, "on_file", progress.file)
        flows.nightly.nightly(as_of=utc(2026, 3, 20, 6), overrides={
            "db_path": str(cohort_db), "inbox": str(inbox), "digest_dir": str(tmp_path / "digest")})
        progress.close()
    shown = [line.split("] ", 1)[1] for line in lines.read_text().splitlines()]
    assert [s for s in shown if s.startswith("step ")] == ["step ingest", "step evaluate", "step digest",
                                                            "step write", "step deliver", "step save"]
    assert "file 1/1 infusions.csv: loaded, 1 rows; 1 rows so far" in shown


def test_what_the_program_writes_is_owner_only_whatever_the_umask(tmp_path):
    """Issue 12 F11: the database, exports and folders it creates were 0644/0755 under umask 022."""
    import stat
    out = tmp_path / "out"
    done = subprocess.run(
        ["sh", "-c", f"umask 022 && {sys.executable} -m flows.cli ingest --db {out}/db/c.duckdb "
                     f"{SAMPLE / 'infusions.csv'} && {sys.executable} -m flows.cli export quarantine "
                     f"--db {out}/db/c.duckdb --out {out}/q.csv"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for path, mode in ((out / "db", 0o700), (out / "db" / "c.duckdb", 0o600), (out / "q.csv", 0o600)):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
