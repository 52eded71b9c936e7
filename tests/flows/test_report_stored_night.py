"""`report` and `export windows --format fhir` read what a stored night said (`--stream`, `--night`),
on a small backfill: the report's cohort and flags are the night's stored rows, the FHIR file is
the one an evaluation made as of that night writes."""

from __future__ import annotations

import json
from datetime import date

from cartwatch.store import open_store
from flows.backfill import backfill
from flows.cli import main
from sample_paths import REPO

NIGHTS = (date(2026, 3, 14), date(2026, 3, 15))
READ = "2026-03-14"


def night_as_of(db, stream: str, night: str) -> str:
    con = open_store(db)
    (as_of,) = con.execute("SELECT as_of FROM flags.digest_by_night WHERE stream = ? AND night = ?",
                           [stream, date.fromisoformat(night)]).fetchall()[0]
    con.close()
    return as_of.isoformat()


def stored(db, stream: str, night: str) -> tuple[int, dict[str, int], int]:
    """From the night's stored rows: infusions evaluated, infusions flagged per set, windows."""
    con = open_store(db)
    key = [stream, date.fromisoformat(night)]
    (evaluated,) = con.execute("SELECT count(DISTINCT (patient_id, infusion_id)) FROM flags.daily_by_night "
                               "WHERE stream = ? AND night = ?", key).fetchall()[0]
    flagged = dict(con.execute("SELECT criteria_set, count(DISTINCT (patient_id, infusion_id)) FROM "
                               "flags.windows_by_night WHERE stream = ? AND night = ? AND status IN "
                               "('suspected', 'criteria_met', 'met') GROUP BY ALL", key).fetchall())
    (windows,) = con.execute("SELECT count(*) FROM flags.windows_by_night WHERE stream = ? AND night = ?",
                             key).fetchall()[0]
    con.close()
    return evaluated, flagged, windows


def run(*argv: str) -> None:
    assert main(list(argv)) == 0, argv


def report_flagged(doc: dict) -> dict[str, int]:
    return {r["criteria_set"]: r["flagged"] for r in doc["flagged"] if r["by"] == "overall" and r["flagged"]}


def test_report_and_fhir_export_of_a_stored_night_say_what_that_night_stored(cohort_db, tmp_path, engine,
                                                                            prefect_harness, capsys):
    params = {"db_path": str(cohort_db), "digest_dir": str(tmp_path / "digest")}
    stream = backfill(start=NIGHTS[0], end=NIGHTS[1], overrides=params, workers=1, progress=False)["stream"]
    db = str(cohort_db)

    for night, argv in ((READ, ("--night", READ)), (NIGHTS[1].isoformat(), ())):   # no --night: the latest
        out = tmp_path / f"report-{night}.json"
        run("report", "--db", db, "--stream", stream, *argv, "--out", str(out))
        assert f"report as of {night_as_of(cohort_db, stream, night)} ({stream}, night {night}): " \
            in capsys.readouterr().out
        doc = json.loads(out.read_text())
        evaluated, flagged, _ = stored(cohort_db, stream, night)
        assert doc["stored_night"] == {"stream": stream, "night": night} and doc["report_version"] == 2
        assert doc["as_of"] == night_as_of(cohort_db, stream, night)
        assert (doc["cohort"]["infusions"], report_flagged(doc)) == (evaluated, flagged)
        assert flagged                                          # the night has something to report

    # the night was made with the released rules: a report with another rules file is refused
    other = tmp_path / "rules.yaml"
    other.write_text((REPO / "transforms" / "clinical_rules.yaml").read_text()
                     .replace('rules_version: "2026.12.0"', 'rules_version: "2099.1.0"'))
    refused = ["report", "--db", db, "--stream", stream, "--rules", str(other), "--out", str(tmp_path / "r.json")]
    assert main(refused) == 2
    assert capsys.readouterr().err.startswith(f"cartwatch: rules file: {other} is rules version 2099.1.0+")

    # FHIR of the stored night: one DetectedIssue per stored window, and the same file as the
    # export of an evaluation made now as of that night (the stand-in engine the backfill ran)
    night_file, fresh_file = tmp_path / "night.ndjson", tmp_path / "fresh.ndjson"
    run("export", "windows", "--db", db, "--stream", stream, "--night", READ, "--format", "fhir",
        "--out", str(night_file))
    run("export", "windows", "--db", db, "--as-of", night_as_of(cohort_db, stream, READ), "--format", "fhir",
        "--out", str(fresh_file))
    resources = [json.loads(line) for line in night_file.read_text().splitlines()]
    assert sum(r["resourceType"] == "DetectedIssue" for r in resources) == stored(cohort_db, stream, READ)[2] > 0
    assert night_file.read_bytes() == fresh_file.read_bytes()
