"""Backfill flows: one flow run, nights committed in order by the flow's process, the store's one writer.

`backfill`: one task per night on a thread pool; workers evaluate nights in parallel, each in its
own in-memory DuckDB (cartwatch/backfill.py); at most 2 x workers nights are in flight, so memory
stays bounded on long ranges.

`backfill_partitioned` (`cartwatch backfill --dask` / `--dask-address`): one task per partition of
patients on Prefect's Dask task runner, a local cluster or a running Dask scheduler; the flow writes
each partition's stg rows as Parquet into a folder every worker can read and write, each worker
evaluates every night of its partition and writes the nights' results there as Parquet, and the flow
process loads them into DuckDB night after night. Either way the digest chain (each night starts from
the previous night's state) and the completion records stay in order, and a killed run resumes.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from contextlib import suppress
from collections import deque
from datetime import date, datetime
from datetime import timedelta
from typing import Callable

import duckdb
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait as wait_for
from prefect.task_runners import ThreadPoolTaskRunner

from cartwatch import backfill as bf
from cartwatch.runs import finish_run, mark_dead_runs, mark_step, start_run
from cartwatch.store import let_waiting_jobs_in, open_store
from flows.nightly import holds_database, report_dead_runs, report_failure, settings_from
from flows.prefect_record import error_kind, scrub_errors, scrubbed
from transforms.rules import load_rules

_SOURCES: dict[str, bf.Sources] = {}     # token -> the cohort's rows (kept out of task parameters)
# called after each committed night with (done, total, night, digest, elapsed seconds); tests replace it
on_night: Callable[[int, int, date, dict, float], None] | None = None


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@task(cache_policy=NO_CACHE)
@scrub_errors
def evaluate_night(token: str, night: date, as_of) -> bf.NightResult | None:
    sources = _SOURCES[token]
    return None if sources.cancelled else bf.evaluate_night(sources, night, as_of)


def print_progress(done: int, total: int, night: date, doc: dict, elapsed: float) -> None:
    eta = elapsed / done * (total - done) if done else 0.0
    print(f"night {done}/{total} {night}: {doc['alerts']} alerts, new {doc['counts']['new']}, "
          f"escalated {doc['counts']['escalated']} ({elapsed:.1f} s, about {eta:.0f} s left)", flush=True)


def _open_backfill(overrides: dict[str, str] | None, patients: str | list[str] | None, **cohort):
    """Settings, rules, the database, the plan and the run record of a backfill; `patients` is a
    list or the name of a patients file (read here, so ids stay out of the run's parameters)."""
    settings = settings_from(overrides)
    rules = load_rules(settings.rules_path)
    if isinstance(patients, str):
        patients = bf.read_patients_file(patients)
    con = open_store(settings.db_path)
    dead = mark_dead_runs(con)
    report_dead_runs(settings, dead)
    plan = bf.make_plan(con, rules, settings, patients=patients, **cohort)
    return settings, rules, con, plan, start_run(con, "backfill", plan.nights[-1][1], rules.version)


@flow(name="cartwatch-backfill", log_prints=False, on_failure=[report_failure],
      task_runner=ThreadPoolTaskRunner(max_workers=default_workers()))
@holds_database("backfill")
def backfill(start: date, end: date, patients: list[str] | None = None, product: str | None = None,
             infused_from: date | None = None, infused_to: date | None = None, as_loaded: bool = False,
             overrides: dict[str, str] | None = None, workers: int | None = None,
             progress: bool = True, patients_file: str | None = None, as_of: datetime | None = None) -> dict:
    """Evaluate the cohort as of each night from start to end; resumes a killed run of the same backfill.

    `patients_file` rather than `patients` keeps patient ids out of the run's parameters (Prefect stores
    and shows them); `as_of` limits every night to the rows known by then."""
    started = time.perf_counter()
    logger = get_run_logger()
    settings, rules, con, plan, run_id = _open_backfill(
        overrides, patients_file or patients, start=start, end=end, product=product, infused_from=infused_from,
        infused_to=infused_to, as_loaded=as_loaded, known_by=as_of)
    todo = plan.remaining
    logger.info("backfill %s: %d nights (%d already done), %d patients", plan.backfill_id, len(plan.nights),
                len(plan.nights) - len(todo), len(plan.patients))
    sources = bf.read_sources(con, plan.patients, rules, settings, as_loaded, known_by=as_of)
    _SOURCES[sources.token] = sources
    ahead = 2 * (workers or default_workers())
    queue, pending, alerts = deque(todo), deque(), 0
    try:
        while queue or pending:
            while queue and len(pending) < ahead:
                night, as_of = queue.popleft()
                pending.append(evaluate_night.submit(sources.token, night, as_of))
            result = pending.popleft().result()
            doc = bf.commit_night(con, plan, result, rules, settings)
            mark_step(con, run_id, f"night {result.night} stored")
            alerts += doc["alerts"]
            done = len(plan.nights) - len(plan.remaining)
            if progress:
                print_progress(done, len(plan.nights), result.night, doc, time.perf_counter() - started)
            if on_night is not None:
                on_night(done, len(plan.nights), result.night, doc, time.perf_counter() - started)
            # a nightly (or any job) waiting for the database runs now, between two nights: no lost night
            con = let_waiting_jobs_in(con, settings.db_path, "backfill", settings.lock_wait_seconds)
    except BaseException as exc:
        sources.cancelled = True          # nights not started yet return at once
        for future in pending:
            future.wait()
        record_failure(con, run_id, {"backfill_id": plan.backfill_id, "nights_done": len(plan.done)}, exc)
        raise scrubbed(exc) from None     # Prefect keeps the message and traceback it sees
    finally:
        _SOURCES.pop(sources.token, None)
        sources.close()
    counts = {"backfill_id": plan.backfill_id, "stream": plan.stream, "nights": len(plan.nights),
              "nights_run": len(todo), "patients": len(plan.patients), "alerts": alerts,
              "seconds": round(time.perf_counter() - started, 3)}
    finish_run(con, run_id, outcome="ok", files=0, counts=counts)
    con.close()
    logger.info("backfill %s: %d nights run in %.1f s", plan.backfill_id, len(todo), counts["seconds"])
    return counts | {"run_id": run_id}


def record_failure(con, run_id: str, counts: dict, exc: BaseException) -> None:
    """The failed run's record, when the database is still this run's (it is not after the lock was
    handed to another job and could not be taken back: the next run then marks this one killed)."""
    try:
        finish_run(con, run_id, outcome="failed", counts=counts, error=error_kind(exc))
    except duckdb.ConnectionException:
        return
    con.close()


def with_workers(workers: int | None):
    """The backfill flow with a thread pool of the given size."""
    if not workers:
        return backfill
    return backfill.with_options(task_runner=ThreadPoolTaskRunner(max_workers=workers))


# ---------------------------------------------------------------------------------------------
# on Dask: patient partitions

DEFAULT_PARTITION_SIZE = 500    # patients a partition: enough work per task to dwarf its start-up
HANDOVER_POLL_SECONDS = 2       # how often the flow looks for a job waiting for the database meanwhile


@task(cache_policy=NO_CACHE)
@scrub_errors
def evaluate_partition(folder: str, nights: list) -> dict:
    return bf.evaluate_partition(folder, nights)


def local_cluster(**kwargs):
    """A distributed.LocalCluster whose workers report to this flow's Prefect API.

    Without PREFECT_API_URL a Prefect process starts a temporary server of its own; every worker
    process would start one too (seconds each, and runs split over several servers). Called by the
    Dask task runner at the first submit, when the flow's API is up: the workers get its address.
    """
    from distributed import LocalCluster
    from prefect.client.orchestration import get_client

    env = dict(kwargs.pop("env", None) or {})
    env.setdefault("PREFECT_API_URL", os.environ.get("PREFECT_API_URL") or str(get_client(sync_client=True).api_url))
    logging.getLogger("distributed").setLevel(logging.WARNING)    # no per-connection INFO lines
    return LocalCluster(env=env, silence_logs=logging.WARNING, **kwargs)


def dask_runner(address: str | None = None, workers: int | None = None):
    """Prefect's Dask task runner: on the scheduler at `address`, else on a local cluster of
    `workers` single-threaded worker processes."""
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_class=local_cluster,
                          cluster_kwargs={"n_workers": workers or default_workers(), "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None})


@flow(name="cartwatch-backfill-dask", log_prints=False, on_failure=[report_failure])
@holds_database("backfill")
def backfill_partitioned(start: date, end: date, patients: list[str] | None = None, product: str | None = None,
                         infused_from: date | None = None, infused_to: date | None = None,
                         as_loaded: bool = False, overrides: dict[str, str] | None = None,
                         partition_dir: str | None = None, partition_size: int = DEFAULT_PARTITION_SIZE,
                         keep_partitions: bool = False, progress: bool = True,
                         patients_file: str | None = None) -> dict:
    """The backfill with patient partitions evaluated by the flow's task runner (Dask); same result
    as `backfill`. The partition folder is removed at the end unless `keep_partitions`; a failed run
    leaves it, and the same backfill run again resumes from the nights its workers wrote.
    `patients_file` keeps patient ids out of the run's parameters, as for `backfill`."""
    started = time.perf_counter()
    logger = get_run_logger()
    settings, rules, con, plan, run_id = _open_backfill(
        overrides, patients_file or patients, start=start, end=end, product=product, infused_from=infused_from,
        infused_to=infused_to, as_loaded=as_loaded)
    todo, alerts = plan.remaining, 0
    root = bf.partition_root(settings, plan, partition_dir)
    try:
        parts = bf.write_partitions(con, plan, rules, settings, root, partition_size)
        logger.info("backfill %s: %d nights (%d already done), %d patients in %d partitions under %s",
                    plan.backfill_id, len(plan.nights), len(plan.nights) - len(todo), len(plan.patients),
                    len(parts), root)
        futures = [evaluate_partition.submit(part.folder, todo) for part in parts] if todo else []
        not_done = list(futures)
        while not_done:       # the workers need no database: a waiting job may have it meanwhile
            not_done = list(wait_for(not_done, timeout=HANDOVER_POLL_SECONDS).not_done)
            con = let_waiting_jobs_in(con, settings.db_path, "backfill", settings.lock_wait_seconds)
        evaluated = [future.result() for future in futures]
        per_night = (time.perf_counter() - started) / max(len(todo), 1)
        for night, as_of in todo:
            result = bf.read_partitioned_night(parts, night, as_of)
            result.seconds = per_night
            doc = bf.commit_night(con, plan, result, rules, settings)
            mark_step(con, run_id, f"night {night} stored")
            alerts += doc["alerts"]
            done = len(plan.nights) - len(plan.remaining)
            if progress:
                print_progress(done, len(plan.nights), night, doc, time.perf_counter() - started)
            if on_night is not None:
                on_night(done, len(plan.nights), night, doc, time.perf_counter() - started)
            con = let_waiting_jobs_in(con, settings.db_path, "backfill", settings.lock_wait_seconds)
    except BaseException as exc:
        record_failure(con, run_id, {"backfill_id": plan.backfill_id, "nights_done": len(plan.done),
                                     "partitions": str(root)}, exc)
        raise scrubbed(exc) from None
    counts = {"backfill_id": plan.backfill_id, "stream": plan.stream, "nights": len(plan.nights),
              "nights_run": len(todo), "patients": len(plan.patients), "alerts": alerts,
              "partitions": len(parts), "partition_seconds": [e["seconds"] for e in evaluated],
              "seconds": round(time.perf_counter() - started, 3)}
    finish_run(con, run_id, outcome="ok", files=0, counts=counts)
    con.close()
    if not keep_partitions:
        shutil.rmtree(root, ignore_errors=True)
        with suppress(OSError):         # the folder of partitions, when no other backfill uses it
            root.parent.rmdir()
    logger.info("backfill %s: %d nights run in %.1f s on %d partitions", plan.backfill_id, len(todo),
                counts["seconds"], len(parts))
    return counts | {"run_id": run_id}


def on_dask(address: str | None = None, workers: int | None = None):
    """The partitioned backfill flow on a Dask scheduler (`address`) or a local cluster."""
    return backfill_partitioned.with_options(task_runner=dask_runner(address, workers))


if __name__ == "__main__":
    print(backfill(start=date.today() - timedelta(days=7), end=date.today()))
