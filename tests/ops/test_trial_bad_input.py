"""Bad input met in a new user's trial of explain, report, export and digest: where a command is told
to write (`--out`: a folder, a place nobody may write, a missing database) and a cohort's infusion
dates reversed. Each is one line and exit status 2, before any database is opened, whoever runs it
(root passes every permission-bit check, so the unwritable place is one that refuses root too: /sys)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.cli import main

COMMANDS = {
    "explain": ["explain", "CW-0001", "--format", "html", "--out"],
    "report": ["report", "--out"],
    "export": ["export", "windows", "--out"],
    "digest": ["digest", "--format", "html", "--out"],
}
EXTENSION = {"explain": "html", "report": "html", "export": "csv", "digest": "html"}
SYSFS = Path("/sys")
needs_sysfs = pytest.mark.skipif(not (SYSFS / "kernel").is_dir(), reason="no sysfs on this machine")


def run(argv: list[str], capsys) -> tuple[int, str]:
    status = main(argv)
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return status, err.rstrip("\n")


@needs_sysfs
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_out_folder_nobody_may_write_is_bad_input(command, tmp_path, capsys):
    out = SYSFS / f"cartwatch-trial.{EXTENSION[command]}"
    status, line = run(COMMANDS[command] + [str(out), "--db", str(tmp_path / "none.duckdb")], capsys)
    assert (status, line) == (2, f"cartwatch: --out {out}: folder /sys: cannot be written (permission denied)")


@needs_sysfs
def test_an_out_folder_that_cannot_be_created_is_bad_input(tmp_path, capsys):
    out = SYSFS / "cartwatch-trial" / "w.csv"
    status, line = run(["export", "windows", "--out", str(out), "--db", str(tmp_path / "none.duckdb")], capsys)
    assert (status, line) == (2, f"cartwatch: --out {out}: folder {out.parent}: cannot be created in /sys "
                                  "(permission denied)")
    assert not out.parent.exists()


def test_report_out_a_folder_says_so(tmp_path, capsys):
    status, line = run(["report", "--out", str(tmp_path), "--db", str(tmp_path / "none.duckdb")], capsys)
    assert (status, line) == (2, f"cartwatch: --out {tmp_path}: is a folder, not a file")


def test_a_writable_out_leaves_no_trace_of_the_check(tmp_path, capsys):
    """The check writes a file and removes it: the folder is as it was, and the run goes on to the
    database (missing here), named for every reading command, without leaving a lock file for it."""
    outs, db = tmp_path / "outs", tmp_path / "db" / "none.duckdb"
    outs.mkdir()
    db.parent.mkdir()
    for command in sorted(COMMANDS):
        status, line = run(COMMANDS[command] + [str(outs / f"x.{EXTENSION[command]}"), "--db", str(db)], capsys)
        assert (status, line) == (2, f"cartwatch: database {db}: no such file (digest, "
                                     "export, explain and report read an existing database: run `cartwatch "
                                     "nightly` or `cartwatch ingest` first, or fix --db)")
    assert list(outs.iterdir()) == []
    assert list(db.parent.iterdir()) == []       # nor a lock file beside the mistyped database


@pytest.mark.parametrize("command", [["report", "--out", "r.html"], ["backfill", "--start", "2026-03-01",
                                                                      "--end", "2026-03-02"]])
def test_infusion_dates_reversed_are_said_so(command, tmp_path, capsys):
    """report and backfill choose the cohort alike; reversed dates were an empty cohort ('no
    infusion matches the cohort filters'), which does not say what to fix."""
    argv = [*command, "--infused-from", "2026-10-01", "--infused-to", "2026-01-01",
            "--db", str(tmp_path / "none.duckdb")]
    status, line = run([a if a != "r.html" else str(tmp_path / a) for a in argv], capsys)
    assert (status, line) == (2, "cartwatch: --infused-to: 2026-01-01 is before --infused-from 2026-10-01")
