"""The scheduled nightly job: ingest new files, re-evaluate what changed, write and send the digest.

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
from datetime import datetime
from pathlib import Path
from typing import Callable

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from cartwatch import notify
from cartwatch.backfill import night_results, store_night_results
from cartwatch.digest import make_digest, night_of, pager_lines, render
from cartwatch.digest.ids import masked
from cartwatch.incremental import BuildReport, evaluate
from cartwatch.ingest import ingest_paths, not_loaded
from cartwatch.loader import FileReport
from cartwatch.runs import finish_run, start_run, utc_now
from cartwatch.settings import Settings, load_settings
from cartwatch.store import job_lock, open_store, transaction
from transforms.rules import Rules, load_rules
from transforms.timestamps import zone

STREAM = "nightly"
FORMATS = ("md", "html", "json")
log = logging.getLogger("cartwatch.nightly")
# progress on a terminal (the command line sets these; a served run leaves them None)
on_step: Callable[[str], None] | None = None
on_file: Callable[[int, list[Path], FileReport | None], None] | None = None


class StepFailed(RuntimeError):
    """A nightly step failed; `step` names it for the run record and the failure report."""

    def __init__(self, step: str, cause: BaseException):
        super().__init__(f"step '{step}' failed: {type(cause).__name__}: {notify.scrub(str(cause))}")
        self.step = step


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


def _step(name: str) -> None:
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
def ingest_inbox(con, inbox: Path, rules: Rules, site_tz: str, run_id: str,
                 loaded_at: datetime) -> list[FileReport]:
    return ingest_paths(con, [inbox], rules, site_tz=site_tz, now=utc_now(), run_id=run_id,
                        loaded_at=loaded_at, on_file=on_file)


@task(cache_policy=NO_CACHE)
def evaluate_layers(con, rules: Rules, as_of: datetime, as_loaded: bool, site_tz: str, full: bool) -> BuildReport:
    return evaluate(con, rules, as_of=as_of, as_loaded=as_loaded, site_tz=site_tz, full=full)


@task(cache_policy=NO_CACHE)
def record_night(con, rules: Rules, settings: Settings, as_of: datetime, as_loaded: bool) -> dict:
    """This night's windows and flags, and its digest against the stream's state, in one transaction."""
    night = night_of(as_of, settings.site_tz)
    windows, daily = night_results(con)
    with transaction(con):
        store_night_results(con, STREAM, night, as_of, windows, daily)
        return make_digest(con, rules, as_of=as_of, as_loaded=as_loaded, stream=STREAM,
                           site_tz=settings.site_tz, created_at=utc_now())


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=_retry_on_io_error, cache_policy=NO_CACHE)
def write_digest(settings: Settings, doc: dict, as_of: datetime) -> dict[str, Path]:
    texts = {fmt: render(doc, fmt, mask_ids=settings.mask_ids) for fmt in FORMATS}
    local = as_of.astimezone(zone(settings.site_tz))
    paths = notify.write_digest_files(settings.digest_dir, f"{local:%Y-%m-%dT%H%M}", texts)
    # the artifact is stored in Prefect's database and shown in its UI: masked unless asked otherwise
    artifact = render(doc, "md", mask_ids=not settings.artifact_unmasked or settings.mask_ids)
    create_markdown_artifact(artifact, key="cartwatch-digest",
                             description=f"cartwatch digest as of {doc['as_of']}")
    return paths


@task(retries=2, retry_delay_seconds=30, retry_condition_fn=_retry_on_io_error, cache_policy=NO_CACHE)
def deliver(settings: Settings, doc: dict, path: Path) -> bool:
    shown = doc if settings.notify_unmasked and not settings.mask_ids else masked(doc, True)
    return notify.send(settings, notify.digest_message(shown, pager_lines(shown), path))


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
    run_id = start_run(con, "nightly", as_of, rules.version)
    step, reports, timings = "ingest", [], {}
    try:
        t = time.perf_counter()
        _step("ingest")
        reports = ingest_inbox(con, settings.inbox, rules, settings.site_tz, run_id, as_of)
        timings["ingest"], t, step = time.perf_counter() - t, time.perf_counter(), "evaluate"
        _step("evaluate")
        build = evaluate_layers(con, rules, as_of, as_loaded, settings.site_tz, full)
        timings["evaluate"], t, step = time.perf_counter() - t, time.perf_counter(), "digest"
        _step("digest")
        doc = record_night(con, rules, settings, as_of, as_loaded)
        timings["digest"], t, step = time.perf_counter() - t, time.perf_counter(), "write"
        _step("write")
        # quote(): Prefect would otherwise walk the whole document (every open window's evidence)
        # looking for futures in each task's parameters: about 5 s a task on a 1,000-patient history
        paths = write_digest(settings, quote(doc), as_of)
        timings["write"], t, step = time.perf_counter() - t, time.perf_counter(), "deliver"
        _step("deliver")
        sent = deliver(settings, quote(doc), paths["html"])
        timings["deliver"] = time.perf_counter() - t
    except Exception as exc:
        finish_run(con, run_id, outcome="failed", files=len(reports),
                   counts=file_counts(reports) | {"step": step}, error=str(StepFailed(step, exc)))
        con.close()
        raise StepFailed(step, exc) from exc
    counts = file_counts(reports) | {
        "build": {"mode": build.mode, "reason": build.reason, "patients": build.patients,
                  "seconds": round(build.seconds, 3)},
        "alerts": doc["alerts"], "sections": doc["counts"], "notified": sent,
        "seconds": {k: round(v, 3) for k, v in timings.items()}}
    finish_run(con, run_id, outcome="ok", files=len(reports), counts=counts)
    con.close()
    logger.info("nightly %s: %d files (%d new), build %s (%s), %d alerts, %.1f s", run_id, len(reports),
                counts["files_loaded"], build.mode, build.reason, doc["alerts"], time.perf_counter() - started)
    return {"run_id": run_id, "digest": {k: str(v) for k, v in paths.items()}, "counts": counts,
            "files": [r.__dict__ for r in reports], "alerts": doc["alerts"]}


if __name__ == "__main__":
    print(nightly())
