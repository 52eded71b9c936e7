"""`cartwatch`, the program: the command line of cartwatch/cli.py with the three sub-commands that
run a Prefect flow (nightly, backfill, serve). They live here because the flows call the package,
not the other way round; every check before Prefect starts is the package's (cartwatch/preflight.py).

Prefect is imported only by these three, after its environment is set: `cartwatch ingest` or
`export` never pay for it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from cartwatch import cli
from cartwatch.cli import (EXIT_OK, as_input, cohort_filters, database_lock, eprint, parse_as_of, progress_for,
                           settings_from_args, start_prefect)
from cartwatch.preflight import InputError
from cartwatch.settings import Settings, SettingsError, cron_problem


def cmd_nightly(args) -> int:
    from cartwatch import preflight

    settings = settings_from_args(args)
    as_of = parse_as_of(args.as_of, settings.site_tz)
    preflight.folder(settings.inbox, "inbox")
    preflight.output_folder(settings.digest_dir, "digest_dir")
    preflight.rules(settings.rules_path)
    preflight.notifier(settings)
    with database_lock(settings, "nightly"), progress_for(args, "nightly") as progress, \
            failures_recorded(settings, "nightly", as_of):
        preflight.database(settings.db_path, create=True)
        where = start_prefect(settings, args.debug)
        progress.step(f"starting Prefect ({where})")
        import flows.nightly as nightly_flow

        if progress.enabled:
            nightly_flow.on_step = lambda step: progress.step(f"step {step}")
            nightly_flow.on_file = progress.file
        try:
            result = nightly_flow.nightly(as_of=as_of, as_loaded=args.as_loaded, full=args.full,
                                          overrides=nightly_flow.overrides_from_args(args))
        finally:
            nightly_flow.on_step = nightly_flow.on_file = None
    for line in result.get("killed_runs", []):
        print(f"earlier run not finished: {line}")
    c = result["counts"]
    print(f"nightly run {result['run_id']}: {len(result['files'])} files, {c['files_loaded']} new; "
          f"rows read {c['read']}, accepted {c['accepted']}, duplicate {c['duplicate']}, "
          f"quarantined {c['quarantined']}")
    if c.get("files_not_loaded"):
        print(f"files not loaded: {c['files_not_loaded']} (listed in the digest's data quality)")
    print(f"evaluation: {c['build']['mode']} ({c['build']['reason']}), {c['build']['seconds']:.2f} s; "
          f"{result['alerts']} alerts")
    print(f"digest: {result['digest']['md']} (+ .html, .json)")
    return EXIT_OK



def cmd_backfill(args) -> int:
    from cartwatch import preflight

    settings = settings_from_args(args)
    start, end = preflight.day(args.start, "--start"), preflight.day(args.end, "--end")
    if end < start:
        raise InputError("--end", f"{end} is before --start {start}")
    as_of = parse_as_of(args.as_of, settings.site_tz)
    filters = cohort_filters(args)
    infused_from, infused_to, patients_file = filters["infused_from"], filters["infused_to"], filters["patients_file"]
    if args.workers is not None and args.workers < 1:
        raise InputError("--workers", f"{args.workers} is not a positive number")
    preflight.output_folder(settings.digest_dir, "digest_dir")
    rules = preflight.rules(settings.rules_path)
    on_dask = args.dask or args.dask_address
    if (args.partition_dir or args.partition_size) and not on_dask:
        raise InputError("--partition-dir", "--partition-dir and --partition-size need --dask or --dask-address")
    if on_dask and as_of is not None:
        raise InputError("--as-of", "not supported with --dask yet: run the backfill without --dask")
    with database_lock(settings, "backfill"), progress_for(args, "backfill") as progress, \
            failures_recorded(settings, "backfill", as_of):
        _check_backfill(settings, rules, patients_file, args, infused_from, infused_to)
        where = start_prefect(settings, args.debug)
        progress.step(f"starting Prefect ({where})")
        import flows.backfill as backfill_flow
        from flows.nightly import overrides_from_args

        if progress.live:      # a live line; `--progress lines` keeps the flow's own line per night
            backfill_flow.on_night = lambda done, total, night, doc, elapsed: progress.step(
                f"night {done}/{total} {night}: {doc['alerts']} alerts"
                + (f", about {elapsed / done * (total - done):.0f} s left" if done < total else ""))
        common = dict(start=start, end=end, patients_file=patients_file, product=args.product,
                      infused_from=infused_from, infused_to=infused_to, as_loaded=args.as_loaded,
                      overrides=overrides_from_args(args), progress=progress.lines)
        try:
            if on_dask:
                result = backfill_flow.on_dask(args.dask_address, args.workers)(
                    **common, partition_dir=args.partition_dir,
                    partition_size=args.partition_size or backfill_flow.DEFAULT_PARTITION_SIZE)
            else:
                result = backfill_flow.with_workers(args.workers)(**common, as_of=as_of, workers=args.workers)
        finally:
            backfill_flow.on_night = None
    print(f"backfill {result['backfill_id']}: {result['nights']} nights ({result['nights_run']} run now), "
          f"{result['patients']} patients, {result['alerts']} alerts, {result['seconds']:.1f} s; "
          f"results under stream '{result['stream']}': cartwatch digest --stream {result['stream']} "
          f"--night {end}; cartwatch export windows --stream {result['stream']} --night {end} --out FILE")
    return EXIT_OK


@contextmanager
def failures_recorded(settings: Settings, kind: str, as_of):
    """A run that fails before its flow records it (Prefect's server did not start, the flow could
    not begin) still gets its meta.runs row (outcome failed) and its failures.log line and report.
    Bad input (exit status 2) is a refused command, not a failed run: not recorded."""
    from cartwatch.runs import utc_now

    began = utc_now()
    try:
        yield
    except Exception as exc:
        if not isinstance(exc, (InputError, SettingsError)) and not getattr(exc, "step", None):
            _record_failed_start(settings, kind, as_of, began, exc)
        raise


def _record_failed_start(settings: Settings, kind: str, as_of, began, exc: Exception) -> None:
    from cartwatch import notify
    from cartwatch.prefect_env import PrefectServerError
    from cartwatch.runs import record_failed_start
    from cartwatch.store import open_store
    from transforms.rules import load_rules

    step = "prefect start-up" if isinstance(exc, PrefectServerError) or "Prefect API server" in str(exc) else "start"
    error = f"{type(exc).__name__}: {notify.scrub(str(exc))}"
    con = open_store(settings.db_path)
    try:
        recorded = con.execute("SELECT count(*) FROM meta.runs WHERE kind = ? AND started_at >= ? AND "
                               "counts->>'pid' = ?", [kind, began, str(os.getpid())]).fetchall()[0][0]
        if not recorded:       # else the flow recorded it, and its failure hook reported it
            run_id = record_failed_start(con, kind, as_of, load_rules(settings.rules_path).version, step, error)
    finally:
        con.close()
    if not recorded:
        notify.report_failure(settings, run=f"{kind} {run_id}", step=step, error=exc)


def _check_backfill(settings: Settings, rules, patients_file, args, infused_from, infused_to) -> None:
    """The schedule gives a nightly time, and the cohort is not empty (before Prefect starts)."""
    from cartwatch.backfill import BackfillError, cohort, nightly_cron, nightly_time, read_patients_file
    from cartwatch.store import open_store

    try:
        nightly_time(nightly_cron(settings))
        patients = read_patients_file(patients_file) if patients_file else None
    except BackfillError as exc:
        raise as_input(exc) from None
    con = open_store(settings.db_path, create=False)
    try:
        members = cohort(con, site_tz=settings.site_tz, patients=patients, product=args.product,
                         infused_from=infused_from, infused_to=infused_to)
    finally:
        con.close()
    if not members:
        raise InputError("backfill", "no patient with an infusion matches the cohort filters")


def cmd_serve(args) -> int:
    from cartwatch import preflight
    from cartwatch.store import job_lock

    settings = settings_from_args(args)
    cron = args.cron or settings.nightly_cron
    problem = cron_problem(cron)
    if problem:
        raise InputError(f"--cron {cron!r}", problem)
    preflight.folder(settings.inbox, "inbox")
    preflight.output_folder(settings.digest_dir, "digest_dir")
    preflight.rules(settings.rules_path)
    preflight.notifier(settings)
    from cartwatch.store import check_database

    check_database(settings.db_path, create=True)
    if args.dry_run:
        start_prefect(settings, args.debug, temporary=False)
        from flows.nightly import overrides_from_args
        from flows.serve import deployments, describe

        print("\n".join(describe(deployments(settings, overrides_from_args(args), cron))))
        return EXIT_OK
    with job_lock(settings.prefect_home / "serve", "serve", 0, what="Prefect home"):
        return _serve(settings, args, cron)


def _serve(settings: Settings, args, cron: str) -> int:
    from cartwatch.prefect_env import PrefectServer, PrefectServerError, base_environment, health

    console = "DEBUG" if args.debug else "INFO"
    server = None
    url = settings.prefect_api_url or os.environ.get("PREFECT_API_URL", "")
    if url:
        where = start_prefect(settings, args.debug, console)
        eprint(f"cartwatch serve: using {where}")
    else:
        base_environment(settings, console)
        server = PrefectServer(settings.prefect_home, settings.prefect_port, settings.prefect_startup_seconds)
        eprint(f"cartwatch serve: starting a Prefect server on {server.url} (state in {settings.prefect_home}, "
               f"log {server.log_path}); up to {settings.prefect_startup_seconds} s")
        try:
            server.start()
        except PrefectServerError as exc:
            raise as_input(exc) from None
        os.environ["PREFECT_API_URL"] = server.api_url
        eprint(f"cartwatch serve: Prefect UI at {server.url} (runs, logs, the digest artifact)")
    try:
        from flows.nightly import overrides_from_args
        from flows.serve import serve

        status = serve(settings, overrides_from_args(args), cron, announce=lambda m: eprint(f"cartwatch serve: {m}"))
    finally:
        if server is not None:
            server.stop()
    eprint("cartwatch serve: stopped" + ("" if server is None or not health(server.api_url, 1) else
                                          " (the Prefect server did not stop)"))
    return status


FLOW_COMMANDS = {"nightly": cmd_nightly, "backfill": cmd_backfill, "serve": cmd_serve}


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, FLOW_COMMANDS)


def console() -> None:
    cli.console(FLOW_COMMANDS)


if __name__ == "__main__":
    console()
