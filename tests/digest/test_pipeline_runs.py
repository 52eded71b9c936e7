"""The digest says when the pipeline itself failed: a run marked killed or recorded failed since the
previous digest is a line of the data-quality section (md, html, json), with nothing identifying."""

from __future__ import annotations

import html
import json
from datetime import date

from cartwatch.digest import make_digest, render
from cartwatch.incremental import evaluate
from cartwatch.runs import mark_dead_runs, record_failed_start, start_run
from cartwatch.store import open_store
from opsdata import at, utc

NY = "America/New_York"
NIGHT1, NIGHT2 = date(2026, 3, 14), date(2026, 3, 15)
# a reason as an exception can word it: a file name and an id that identify a patient
RAW_ERROR = "step 'ingest' failed: FileNotFoundError: [Errno 2] No such file: 'inbox/ZZ-9911_results.csv' (ZZ-9911)"
KILLED = "the nightly run of 2026-03-15 02:00 EDT was killed at step 'evaluate'; its alerts are shown again below"
FAILED = ("the nightly of 2026-03-15 failed at step 'ingest': FileNotFoundError: [Errno …] No such file: … (…)")
FAILED_MD = FAILED.replace("[", "\\[").replace("]", "\\]")         # Markdown escapes brackets
BACKFILL = ("the backfill run of 2026-03-15 02:10 EDT was killed at step 'night 2026-03-12 stored'; the nights it "
            "stored are kept; the same backfill command finishes the rest")
EARLIER = "the nightly of 2026-03-14 failed at step 'prefect start-up': PrefectServerError: no answer in … s"


def run_row(con, run_id: str, started_at, **counts) -> None:
    con.execute("UPDATE meta.runs SET started_at = ?, counts = json_merge_patch(counts, ?) WHERE run_id = ?",
                [started_at, json.dumps(counts), run_id])


def failed_run(con, as_of, started_at, step: str, error: str) -> None:
    run_row(con, record_failed_start(con, "nightly", as_of, "x", step, error), started_at)


def killed_run(con, as_of, started_at, step: str, kind: str = "nightly") -> None:
    run_id = start_run(con, kind, as_of, "x")
    run_row(con, run_id, started_at, pid=0, step=step)      # pid 0: another (dead) process's run
    assert [run.run_id for run in mark_dead_runs(con)] == [run_id]


def digest_of(con, rules, night: date, saved_at, stream: str = "nightly") -> dict:
    evaluate(con, rules, as_of=at(night, 2), as_loaded=False, site_tz=NY)
    return make_digest(con, rules, as_of=at(night, 2), as_loaded=False, stream=stream, site_tz=NY,
                       created_at=saved_at)


def test_a_killed_or_failed_run_shows_in_the_next_digest_only(cohort_db, rules, engine):
    con = open_store(cohort_db)
    failed_run(con, None, utc(2026, 3, 14, 6, 5), "prefect start-up", "PrefectServerError: no answer in 30 s")
    first = digest_of(con, rules, NIGHT1, saved_at=utc(2026, 3, 14, 7, 0))
    assert [r["text"] for r in first["data_quality"]["pipeline_runs"]] == [EARLIER]

    killed_run(con, at(NIGHT2, 2), utc(2026, 3, 15, 6, 0), "evaluate")        # 02:00 EDT
    failed_run(con, at(NIGHT2, 2), utc(2026, 3, 15, 6, 20), "ingest", RAW_ERROR)
    killed_run(con, at(date(2026, 3, 13), 2), utc(2026, 3, 15, 6, 10), "night 2026-03-12 stored", "backfill")
    second = digest_of(con, rules, NIGHT2, saved_at=utc(2026, 3, 15, 7, 0))
    runs = second["data_quality"]["pipeline_runs"]
    assert [r["text"] for r in runs] == [KILLED, BACKFILL, FAILED]   # the earlier failure was reported already
    assert [(r["kind"], r["outcome"], r["step"], r["night"]) for r in runs] == [
        ("nightly", "killed", "evaluate", "2026-03-15"),
        ("backfill", "killed", "night 2026-03-12 stored", "2026-03-13"),
        ("nightly", "failed", "ingest", "2026-03-15")]
    # a backfill night is a replay: the pipeline's failures are not its news
    assert digest_of(con, rules, NIGHT2, None, stream="backfill:b1")["data_quality"]["pipeline_runs"] == []
    third = digest_of(con, rules, date(2026, 3, 16), saved_at=utc(2026, 3, 16, 7, 0))
    assert third["data_quality"]["pipeline_runs"] == []
    con.close()

    for mask_ids in (False, True):
        md, page, doc = (render(second, fmt, mask_ids=mask_ids) for fmt in ("md", "html", "json"))
        for text in (md, page, doc):
            assert "ZZ-9911" not in text and "_results" not in text     # nothing identifying, masked or not
        assert f"- {KILLED}\n- {BACKFILL}\n- {FAILED_MD}\n" in md
        assert md.index(KILLED) < md.index("## Patients")               # near the top, before the cards
        assert f"{html.escape(KILLED)}; {html.escape(BACKFILL)}; {html.escape(FAILED)}</li>" in page
        assert page.index("id=pipeline-runs") < page.index('id="patients"')
        assert [r["text"] for r in json.loads(doc)["data_quality"]["pipeline_runs"]] == [KILLED, BACKFILL, FAILED]
    assert render(third, "md").count("No pipeline run killed or failed since the previous digest.") == 1
