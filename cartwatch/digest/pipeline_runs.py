"""The pipeline's own failures since the previous digest, as the on-call clinician reads them.

A nightly run killed before it saved its digest reported nothing (its alerts come again in the
next digest); a failed one reported nothing either. Both are in meta.runs (runs.py); the digest
of the nightly stream says so in its data-quality section, one line a run:

- "the nightly run of 2026-12-01 02:00 EST was killed at step 'evaluate'; its alerts are shown
  again below"
- "the nightly of 2026-12-01 failed at step 'ingest': OSError: …"

Only the nightly stream (and `cartwatch digest`, which reads against it) shows them: a backfill
night is a replay, not a report someone waited for. "Since the previous digest" is by wall clock:
runs started after the stream's previous digest was saved. A run killed after saving its digest
had sent it, and is not listed. Reasons are one scrubbed line (notify.scrub: no quoted text, no
token with a digit), so nothing in them identifies a patient; steps are names the code gives
(`evaluate`, `night 2026-03-14 stored`), shown as they are.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from cartwatch.notify import scrub
from cartwatch.runs import runs_gone_wrong
from transforms.timestamps import zone

SHOWN_STREAMS = ("nightly",)
RUN_KINDS = ("nightly", "backfill")
REASON_CHARS = 160        # a failure reason is cut here (one line in the digest)
STEP_PREFIX = "failed: "  # StepFailed's text repeats the step: "step 'ingest' failed: OSError: ..."


def pipeline_runs(con: duckdb.DuckDBPyConnection, stream: str, previous_digest_at: datetime | None,
                  site_tz: str) -> list[dict]:
    """Killed and failed runs since the stream's previous digest was saved, each with its line."""
    if stream not in SHOWN_STREAMS:
        return []
    tz = zone(site_tz)
    out = []
    for run in runs_gone_wrong(con, RUN_KINDS, previous_digest_at):
        started = run["started_at"].astimezone(tz)
        night = (run["as_of"] or run["started_at"]).astimezone(tz).date()
        item = {"kind": run["kind"], "outcome": run["outcome"], "step": one_line(run["step"]),
                "started_at": f"{started:%Y-%m-%d %H:%M %Z}", "night": night.isoformat()}
        if run["outcome"] == "killed":
            item["text"] = (f"the {item['kind']} run of {item['started_at']} was killed at step '{item['step']}'; "
                            + after_kill(item["kind"]))
        else:
            item["reason"] = failure_reason(run["error"])
            item["text"] = f"the {item['kind']} of {item['night']} failed at step '{item['step']}': {item['reason']}"
        out.append(item)
    return out


def after_kill(kind: str) -> str:
    if kind == "nightly":
        return "its alerts are shown again below"
    return "the nights it stored are kept; the same backfill command finishes the rest"


def failure_reason(error: str | None) -> str:
    """The recorded error as one scrubbed line, without the step it repeats."""
    text = one_line(error or "no reason recorded")
    if text.startswith("step '") and STEP_PREFIX in text:
        text = text.split(STEP_PREFIX, 1)[1]
    text = scrub(text)
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 1] + "…"


def one_line(text: str) -> str:
    return " ".join(str(text).split())
