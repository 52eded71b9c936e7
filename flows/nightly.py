"""The scheduled nightly job: ingest new files, re-evaluate what changed, write and send the digest,
then save what it reported.

The reporting state (which windows were already reported, flags.digest_by_night) is saved only
after the digest is written and sent: a run killed in between shows the same alerts again the next
time, never loses them. A run found unfinished when a run starts (its process killed) is marked
`killed` in meta.runs and reported like a failure.

Reads like its table of contents; the work is in cartwatch/ and transforms/. Only the I/O tasks
retry (loading files, delivering the digest), and only on I/O errors: a wrong lab value is never
retried. A failure records the failing step in meta.runs and, through the flow's `on_failure` hook,
reaches the configured notifier (failures.log beside the digests, and apprise when configured).
Logs carry file names, counts and run ids, never a patient identifier.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
import typing
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Callable

import pyarrow as pa
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from cartwatch import notify
from cartwatch.backfill import night_results, store_night_results
from cartwatch.digest import Draft, draft_digest, night_of, pager_lines, render, save_digest
from cartwatch.digest.ids import masked
from cartwatch.incremental import BuildReport, evaluate
from cartwatch.ingest import ingest_paths, not_loaded
from cartwatch.loader import FileReport
from cartwatch.runs import DeadRun, finish_run, mark_dead_runs, mark_step, start_run, utc_now
from cartwatch.settings import Settings, load_settings
from cartwatch.store import job_lock, open_store, transaction
from flows.prefect_record import KeepsOriginalHere, artifact_text, scrub_errors
from transforms.rules import Rules, load_rules
from transforms.timestamps import zone

STREAM = "nightly"
FORMATS = ("md", "html", "json")
log = logging.getLogger("cartwatch.nightly")
# progress on a terminal (the command line sets these; a served run leaves them None)
on_step: Callable[[str], None] | None = None
on_file: Callable[[int, list[Path], FileReport | None], None] | None = None


class StepFailed(KeepsOriginalHere, RuntimeError):
    """A nightly step failed; `step` names it for the run record and the failure report."""

    def __init__(self, step: str, cause: BaseException):
        cause = getattr(cause, "original", cause)
        super().__init__(f"step '{step}' failed: {type(cause).__name__}: {notify.scrub(str(cause))}")
        self.step = step
        self.original = cause           # for --debug, in this process only


def settings_from(overrides: dict | None) -> Settings:
    """Settings from the flow's parameters: {'config': file, 'db_path': ..., ...} (all optional)."""
    overrides = dict(overrides or {})
    return load_settings(config_file=overrides.pop("config", None), **overrides)


def overrides_from_args(args) -> dict[str, str]:
    """The command line's settings options as flow parameters (JSON: strings only)."""
    names = {"config": "config", "db": "db_path", "inbox": "inbox", "site_tz": "site_tz",
             "digest_dir": "digest_dir", "rules": "rules_path"}
    out = {key: str(getattr(args, attr)) for attr, key in names.items() if getattr(args, attr, None)}
    if getattr(args, "mask_ids", False):
        out["mask_ids"] = "true"
    return out


def holds_database(kind: str):
    """The decorated flow holds its database (store.job_lock) for its whole run: a second job waits
    up to `lock_wait_seconds`, then fails naming this one. Re-entrant: the command line already
    holds it when it runs the flow in its own process; a served run takes it here."""
    def wrap(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def holding(*args, **kwargs):
            settings = settings_from(signature.bind_partial(*args, **kwargs).arguments.get("overrides"))
            with job_lock(settings.db_path, kind, settings.lock_wait_seconds):
                return fn(*args, **kwargs)

        # Prefect validates parameters against the signature; give it the types resolved in the flow's
        # own module (this wrapper's module may not import them)
        hints = typing.get_type_hints(fn)
        holding.__signature__ = signature.replace(
            parameters=[p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()],
            return_annotation=hints.get("return", signature.return_annotation))
        return holding
    return wrap


def _step(con, run_id: str, name: str) -> None:
    mark_step(con, run_id, name)
    if on_step is not None:
        on_step(name)


def _retry_on_io_error(task, task_run, state) -> bool:
    try:
        state.result()
    except OSError:          # includes ConnectionError (notify.DeliveryError) and file errors
        return True
    except Exception:
        return False
    return False


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=_retry_on_io_error, cache_policy=NO_CACHE)
@scrub_errors
def ingest_inbox(con, inbox: Path, rules: Rules, site_tz: str, run_id: str,
                 loaded_at: datetime) -> list[FileReport]:
    return ingest_paths(con, [inbox], rules, site_tz=site_tz, now=utc_now(), run_id=run_id,
                        loaded_at=loaded_at, on_file=on_file)


@task(cache_policy=NO_CACHE)
@scrub_errors
def evaluate_layers(con, rules: Rules, as_of: datetime, as_loaded: bool, site_tz: str, full: bool) -> BuildReport:
    return evaluate(con, rules, as_of=as_of, as_loaded=as_loaded, site_tz=site_tz, full=full)


@dataclass
class Night:
    """This night's windows and flags and its digest, not saved yet (see `save_night`)."""

    night: date
    windows: pa.Table
    daily: pa.Table
    draft: Draft


@task(cache_policy=NO_CACHE)
@scrub_errors
def compose_night(con, rules: Rules, settings: Settings, as_of: datetime, as_loaded: bool) -> Night:
    """This night's windows and flags, and its digest against the stream's state (nothing written)."""
    windows, daily = night_results(con)
    draft = draft_digest(con, rules, as_of=as_of, as_loaded=as_loaded, stream=STREAM, site_tz=settings.site_tz)
    return Night(night_of(as_of, settings.site_tz), windows, daily, draft)


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=_retry_on_io_error, cache_policy=NO_CACHE)
@scrub_errors
def write_digest(settings: Settings, doc: dict, as_of: datetime) -> dict[str, Path]:
    texts = {fmt: render(doc, fmt, mask_ids=settings.mask_ids) for fmt in FORMATS}
    local = as_of.astimezone(zone(settings.site_tz))
    paths = notify.write_digest_files(settings.digest_dir, f"{local:%Y-%m-%dT%H%M}", texts)
    # the artifact is stored in Prefect's database (and copied into its events): counts unless asked
    create_markdown_artifact(artifact_text(doc, settings), key="cartwatch-digest",
                             description=f"cartwatch digest as of {doc['as_of']}")
    return paths


@task(retries=2, retry_delay_seconds=30, retry_condition_fn=_retry_on_io_error, cache_policy=NO_CACHE)
@scrub_errors
def deliver(settings: Settings, doc: dict, path: Path) -> bool:
    shown = doc if settings.notify_unmasked and not settings.mask_ids else masked(doc, True)
    return notify.send(settings, notify.digest_message(shown, pager_lines(shown), path))


@task(cache_policy=NO_CACHE)
@scrub_errors
def save_night(con, night: Night, as_of: datetime) -> None:
    """The night's results and the digest's reporting state, in one transaction, after the digest
    was written and sent: a run killed before this commit reports the same windows again next time
    (shown twice rather than never)."""
    with transaction(con):
        store_night_results(con, STREAM, night.night, as_of, night.windows, night.daily)
        save_digest(con, night.draft, created_at=utc_now())


def file_counts(reports: list[FileReport]) -> dict:
    keys = ("read", "accepted", "duplicate", "quarantined")
    return {k: sum(getattr(r, k) for r in reports) for k in keys} | {
        "files_loaded": sum(r.status == "loaded" for r in reports),
        "files_not_loaded": sum(not_loaded(r) is not None for r in reports)}


def report_failure(flow, flow_run, state) -> None:
    """on_failure hook: the failing step and the error, through the configured notifier."""
    try:
        error = state.result(raise_on_failure=False)
    except Exception as exc:            # the result itself may be unreadable
        error = exc
    step = getattr(error, "step", "setup")
    try:
        settings = settings_from(flow_run.parameters.get("overrides"))
    except Exception:
        settings = load_settings()
    notify.report_failure(settings, run=f"{flow.name} {flow_run.name}", step=step,
                          error=error if isinstance(error, BaseException) else str(state.message))


@flow(name="cartwatch-nightly", log_prints=False, on_failure=[report_failure])
@holds_database("nightly")
def nightly(as_of: datetime | None = None, as_loaded: bool = False, full: bool = False,
            overrides: dict[str, str] | None = None) -> dict:
    """Ingest new files, evaluate as of `as_of` (default now), write and send the digest, record the run."""
    started = time.perf_counter()
    settings = settings_from(overrides)
    rules = load_rules(settings.rules_path)
    as_of = as_of or utc_now()
    logger = get_run_logger()
    con = open_store(settings.db_path)
    dead = mark_dead_runs(con)
    run_id = start_run(con, "nightly", as_of, rules.version)
    report_dead_runs(settings, dead)
    step, reports, timings = "ingest", [], {}
    try:
        t = time.perf_counter()
        _step(con, run_id, "ingest")
        reports = ingest_inbox(con, settings.inbox, rules, settings.site_tz, run_id, as_of)
        timings["ingest"], t, step = time.perf_counter() - t, time.perf_counter(), "evaluate"
        _step(con, run_id, "evaluate")
        build = evaluate_layers(con, rules, as_of, as_loaded, settings.site_tz, full)
        timings["evaluate"], t, step = time.perf_counter() - t, time.perf_counter(), "digest"
        _step(con, run_id, "digest")
        night = compose_night(con, rules, settings, as_of, as_loaded)
        doc = night.draft.doc
        timings["digest"], t, step = time.perf_counter() - t, time.perf_counter(), "write"
        _step(con, run_id, "write")
        # quote(): Prefect would otherwise walk the whole document (every open window's evidence)
        # looking for futures in each task's parameters: about 5 s a task on a 1,000-patient history
        paths = write_digest(settings, quote(doc), as_of)
        timings["write"], t, step = time.perf_counter() - t, time.perf_counter(), "deliver"
        _step(con, run_id, "deliver")
        sent = deliver(settings, quote(doc), paths["html"])
        timings["deliver"], t, step = time.perf_counter() - t, time.perf_counter(), "save"
        _step(con, run_id, "save")
        save_night(con, quote(night), as_of)
        timings["save"] = time.perf_counter() - t
    except Exception as exc:
        failure = StepFailed(step, exc)
        finish_run(con, run_id, outcome="failed", files=len(reports),
                   counts=file_counts(reports) | {"step": step}, error=str(failure))
        con.close()
        raise failure from None        # Prefect logs the traceback it sees: the scrubbed one only
    counts = file_counts(reports) | {
        "build": {"mode": build.mode, "reason": build.reason, "patients": build.patients,
                  "seconds": round(build.seconds, 3)},
        "alerts": doc["alerts"], "sections": doc["counts"], "notified": sent,
        "seconds": {k: round(v, 3) for k, v in timings.items()}, "step": "done",
        "killed_runs": [run.run_id for run in dead]}
    finish_run(con, run_id, outcome="ok", files=len(reports), counts=counts)
    con.close()
    logger.info("nightly %s: %d files (%d new), build %s (%s), %d alerts, %.1f s", run_id, len(reports),
                counts["files_loaded"], build.mode, build.reason, doc["alerts"], time.perf_counter() - started)
    return {"run_id": run_id, "digest": {k: str(v) for k, v in paths.items()}, "counts": counts,
            "files": [r.__dict__ for r in reports], "alerts": doc["alerts"],
            "killed_runs": [run.describe() for run in dead]}


def report_dead_runs(settings: Settings, dead: list[DeadRun]) -> None:
    """A run found killed goes to failures.log and the notifier, like a failed one."""
    for run in dead:
        notify.report_failure(settings, run=f"{run.kind} {run.run_id}", step=run.step,
                              error="killed: no outcome recorded (the process ended without finishing)")


if __name__ == "__main__":
    print(nightly())
