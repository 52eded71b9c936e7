"""cartwatch: CAR-T toxicity monitoring, CRS and IEC-HS early warning from hospital lab feeds.

The command line of docs/contract.md. Every command checks its input first (settings, paths,
dates, the rules file, the database) without importing Prefect or Great Expectations; a problem
is one line on standard error, `cartwatch: <thing>: <reason>`, and a non-zero exit status:

  0  done
  1  a run failed (the failing step is named; `--debug` shows the traceback)
  2  bad input: an option, a setting, a path, a date, the rules file or the database file
  3  the database is held by another cartwatch job (or process) beyond `lock_wait_seconds`
  4  ingest finished, but some files were skipped (empty ones too) or had every row rejected
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

from cartwatch.preflight import InputError
from cartwatch.settings import Settings, SettingsError, load_settings

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_BUSY, EXIT_NOT_LOADED = 0, 1, 2, 3, 4
OWNER_ONLY_UMASK = 0o077     # files 0600, folders 0700


def version() -> str:
    try:
        from importlib.metadata import version as dist_version

        return dist_version("cartwatch")
    except Exception:
        return "unknown"


def eprint(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def as_input(exc: Exception) -> InputError:
    """An error whose message reads `<thing>: <reason>`, as bad input."""
    thing, _, reason = str(exc).partition(": ")
    return InputError(thing, reason) if reason else InputError("input", thing)


def settings_from_args(args: argparse.Namespace) -> Settings:
    return load_settings(config_file=args.config, db_path=args.db,
                         inbox=getattr(args, "inbox", None), site_tz=args.site_tz,
                         digest_dir=getattr(args, "digest_dir", None), rules_path=args.rules,
                         mask_ids=True if getattr(args, "mask_ids", False) else None)


def parse_as_of(text: str | None, site_tz: str, option: str = "--as-of"):
    """An ISO timestamp (naive: site zone); a bare date means 00:00 of that date in the site zone."""
    from cartwatch import preflight

    return preflight.timestamp(text, option, site_tz)


def database_lock(settings: Settings, kind: str):
    from cartwatch.store import describe_job, job_lock

    def waiting(holder: dict | None) -> None:      # said on a terminal; a log gets only the outcome
        if sys.stderr.isatty():
            eprint(f"cartwatch: database {settings.db_path} is held by {describe_job(holder)}; "
                   f"waiting up to {settings.lock_wait_seconds} s")

    if kind in READING:      # a mistyped --db is refused before its lock file is made beside it
        from cartwatch.store import check_database

        check_database(settings.db_path, create=False)
    return job_lock(settings.db_path, kind, settings.lock_wait_seconds, on_wait=waiting)


READING = {"export", "digest", "report", "explain"}      # jobs that read an existing database


def progress_for(args, label: str):
    from cartwatch.progress import Progress

    return Progress(getattr(args, "progress", "auto"), label=label)


def start_prefect(settings: Settings, debug: bool, console: str = "CRITICAL", temporary: bool = True) -> str:
    """Point Prefect at its server (before it is imported); CRITICAL keeps its console quiet.

    With no server to use, a temporary one is started here when `temporary` (prefect_env says why
    cartwatch starts it rather than Prefect); a start that times out is a failed run (exit 1), any
    other server problem is bad input."""
    from cartwatch.prefect_env import PrefectServerError, PrefectStartTimeout, choose_server, start_temporary_server

    try:
        where = choose_server(settings, "DEBUG" if debug else console)
        if temporary and "PREFECT_API_URL" not in os.environ:
            server = start_temporary_server(settings)
            where = f"a temporary Prefect server at {server.api_url}"
        return where
    except PrefectStartTimeout:
        raise
    except PrefectServerError as exc:
        raise as_input(exc) from None


# ---------------------------------------------------------------------------------------------
# commands


def cmd_ingest(args) -> int:
    from cartwatch import preflight

    settings = settings_from_args(args)
    paths = preflight.feed_paths(args.paths)
    rules = preflight.rules(settings.rules_path)
    with database_lock(settings, "ingest"):
        from cartwatch.ingest import format_reports, ingest_paths, not_loaded
        from cartwatch.runs import utc_now
        from cartwatch.store import open_store

        con = open_store(settings.db_path)
        try:
            with progress_for(args, "ingest") as progress:
                reports = ingest_paths(con, paths, rules, site_tz=settings.site_tz, now=utc_now(),
                                       on_file=progress.file if progress.enabled else None)
        finally:
            con.close()
    print(format_reports(reports))
    bad = [(r, why) for r in reports if (why := not_loaded(r))]
    if bad:
        eprint(f"cartwatch: {len(bad)} of {len(reports)} files not loaded: "
               + "; ".join(f"{Path(r.source_file).name} {why}" for r, why in bad))
        return EXIT_NOT_LOADED
    return EXIT_OK


def _read_options(args, settings: Settings):
    """--as-of, --since, --stream, --night of digest and export, checked together."""
    from cartwatch import preflight

    as_of = parse_as_of(args.as_of, settings.site_tz)
    since = parse_as_of(getattr(args, "since", None), settings.site_tz, "--since")
    night = preflight.day(args.night, "--night")
    stored = args.stream is not None or night is not None
    if stored and as_of is not None:
        raise InputError("--as-of", "reads a new evaluation; --stream and --night read a stored one (use one)")
    if stored and since is not None:
        raise InputError("--since", "applies to a new digest; a stored night's digest has its own")
    if as_of is not None and since is not None and since >= as_of:
        raise InputError("--since", "must be before --as-of")
    return as_of, since, night, stored


def _check_rules_of_tables(con, rules) -> None:
    """Reading the last evaluation: the rules file given must be the one it was made with."""
    from cartwatch.store import scalar

    stored = scalar(con, "SELECT any_value(rules_version) FROM flags.daily") if _has_table(con, "flags.daily") else None
    if stored is not None and stored != rules.version:
        raise InputError("rules file", f"{rules.path} is rules version {rules.version}, the stored evaluation "
                         f"was made with {stored} (pass --as-of to evaluate with this file, or --rules for that one)")


def _check_rules_of_night(con, rules, night) -> None:
    """Reporting on a stored night: the rules file given must be the one the night was made with."""
    from cartwatch.store import scalar

    stored = scalar(con, "SELECT any_value(rules_version) FROM flags.daily_by_night WHERE stream = ? AND as_of = ?",
                    [night.stream, night.as_of])
    if stored is not None and stored != rules.version:
        raise InputError("rules file", f"{rules.path} is rules version {rules.version}, the night {night.night} of "
                         f"'{night.stream}' was made with {stored} (pass --rules for that one)")


@contextmanager
def reading_store(settings: Settings, rules, as_of, as_loaded: bool):
    """The connection a reading command reads: the store (its last evaluation and stored nights), or,
    with --as-of, a scratch database holding the evaluation as of then (cartwatch/scratch.py), so
    the store keeps the nightly's evaluation for every other reader."""
    from cartwatch.scratch import scratch_evaluation
    from cartwatch.store import open_store

    con = open_store(settings.db_path, create=False)     # checks and migrates the store either way
    if as_of is not None:
        con.close()
        with scratch_evaluation(settings.db_path, rules, as_of=as_of, as_loaded=as_loaded,
                                site_tz=settings.site_tz) as scratch:
            yield scratch
        return
    try:
        yield con
    finally:
        con.close()


def _has_table(con, qualified: str) -> bool:
    from cartwatch.store import table_columns
    return bool(table_columns(con, qualified))


def cmd_export(args) -> int:
    from cartwatch import preflight
    from cartwatch.export import ExportError, export_format

    settings = settings_from_args(args)
    out = Path(args.out)
    try:
        fmt = export_format(out, args.format)
    except ExportError as exc:
        raise as_input(exc) from None
    preflight.output_file(out, "--out")
    as_of, _, night, stored = _read_options(args, settings)
    if stored and args.table not in ("windows", "flags"):
        raise InputError(f"export {args.table}", "not stored per night; --stream and --night apply to windows and flags")
    rules = preflight.rules(settings.rules_path)
    with database_lock(settings, "export"):
        from cartwatch.export import export_table
        from cartwatch.streams import find_night

        evaluated_at = as_of if args.table != "quarantine" else None
        with reading_store(settings, rules, evaluated_at, args.as_loaded) as con:
            which = None
            if stored:
                which = find_night(con, args.stream, night)
            elif evaluated_at is None and args.table != "quarantine":
                _check_rules_of_tables(con, rules)
            try:
                rows = export_table(con, args.table, fmt, out, mask_ids=settings.mask_ids, night=which)
            except ExportError as exc:
                raise as_input(exc) from None
    where = f" ({which.stream}, night {which.night})" if which else ""
    print(f"{args.table}{where}: {rows} rows -> {out} ({fmt}{', ids masked' if settings.mask_ids else ''})")
    return EXIT_OK


def cmd_digest(args) -> int:
    from cartwatch import preflight

    settings = settings_from_args(args)
    as_of, since, night, stored = _read_options(args, settings)
    if args.out:
        preflight.output_file(Path(args.out), "--out")
    rules = preflight.rules(settings.rules_path)
    with database_lock(settings, "digest"):
        with reading_store(settings, rules, as_of, args.as_loaded) as con:
            from cartwatch.digest import make_digest, render
            from cartwatch.streams import find_night, last_evaluation, stored_document

            if stored:
                doc = stored_document(con, find_night(con, args.stream, night))
            else:
                if as_of is not None:
                    as_loaded = args.as_loaded
                else:
                    as_of, as_loaded = last_evaluation(con)
                    _check_rules_of_tables(con, rules)
                    if since is not None and since >= as_of:
                        raise InputError("--since", f"must be before the stored evaluation's as-of ({as_of.isoformat()})")
                # against the nightly digests' state: "new" means not reported by a nightly run (before --since)
                doc = make_digest(con, rules, as_of=as_of, as_loaded=as_loaded, stream="nightly",
                                  site_tz=settings.site_tz, since=since, persist=False)
    text = render(doc, args.format, mask_ids=settings.mask_ids)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"digest as of {doc['as_of']} ({doc.get('stream', 'nightly')}): {doc['alerts']} alerts -> {args.out}"
              + (" (ids masked)" if settings.mask_ids else ""))   # as export and report say it
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cohort_filters(args) -> dict:
    """The cohort options of backfill and report, checked: patients file, product, infusion dates."""
    from cartwatch import preflight

    infused_from, infused_to = preflight.day(args.infused_from, "--infused-from"), preflight.day(args.infused_to,
                                                                                                "--infused-to")
    if infused_from and infused_to and infused_to < infused_from:     # else an empty cohort, said less clearly
        raise InputError("--infused-to", f"{infused_to} is before --infused-from {infused_from}")
    return {"patients_file": str(preflight.input_file(args.patients, "--patients")) if args.patients else None,
            "product": args.product, "infused_from": infused_from, "infused_to": infused_to}


REPORT_FORMATS = {".html": "html", ".htm": "html", ".json": "json"}


def cmd_report(args) -> int:
    from cartwatch import preflight

    settings = settings_from_args(args)
    out = Path(args.out)
    fmt = args.format or REPORT_FORMATS.get(out.suffix.lower())
    if out.is_dir():     # said before the extension: a folder's name has none to fix
        preflight.output_file(out, "--out")
    if fmt is None or (args.format and REPORT_FORMATS.get(out.suffix.lower(), fmt) != fmt):
        raise InputError(f"--out {out}", "name it .html or .json (or pass a --format that agrees with it)")
    preflight.output_file(out, "--out")
    as_of, _, night, stored = _read_options(args, settings)
    filters = cohort_filters(args)
    rules = preflight.rules(settings.rules_path)
    from cartwatch.backfill import BackfillError, cohort_infusions, read_patients_file

    try:
        patients = read_patients_file(filters["patients_file"]) if filters["patients_file"] else None
    except BackfillError as exc:
        raise as_input(exc) from None
    with database_lock(settings, "report"):
        from cartwatch.report import ReportError, make_report, render
        from cartwatch.streams import find_night, last_evaluation

        with reading_store(settings, rules, as_of, args.as_loaded) as con:
            which = None
            if stored:
                which = find_night(con, args.stream, night)
                _check_rules_of_night(con, rules, which)
                as_of = which.as_of
            elif as_of is None:
                as_of, _ = last_evaluation(con)
                _check_rules_of_tables(con, rules)
            members = cohort_infusions(con, site_tz=settings.site_tz, patients=patients, product=filters["product"],
                                       infused_from=filters["infused_from"], infused_to=filters["infused_to"])
            shown = {"patients": len(patients) if patients is not None else None, "product": filters["product"],
                     "infused_from": filters["infused_from"] and filters["infused_from"].isoformat(),
                     "infused_to": filters["infused_to"] and filters["infused_to"].isoformat()}
            try:
                doc = make_report(con, rules, members, as_of=as_of, cohort_filters=shown, night=which,
                                  site_tz=settings.site_tz)
            except ReportError as exc:
                raise as_input(exc) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(doc, fmt, mask_ids=settings.mask_ids), encoding="utf-8")
    where = f" ({which.stream}, night {which.night})" if which else ""
    print(f"report as of {doc['as_of']}{where}: {doc['cohort']['infusions']} infusions of {doc['cohort']['patients']} "
          f"patients -> {out} ({fmt}{', ids masked' if settings.mask_ids else ''})")
    return EXIT_OK


def _cohort_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--patients", help="file of patient ids, one a line")
    parser.add_argument("--product", help="only infusions of this product")
    parser.add_argument("--infused-from", dest="infused_from", help="only infusions on or after this date")
    parser.add_argument("--infused-to", dest="infused_to", help="only infusions on or before this date")


def _needs_flows(args) -> int:
    raise InputError(args.command, "runs a Prefect flow: use the cartwatch program (python -m flows.cli)")


def cmd_synth(args) -> int:
    from cartwatch.synth.__main__ import main as synth_main

    argv = ["--patients", str(args.patients), "--seed", str(args.seed), "--out", args.out]
    argv += ["--start", args.start] if args.start else []
    argv += ["--formats", args.formats] if args.formats else []
    argv += ["--cohort"] if args.cohort else []
    argv += ["--next-day", args.next_day] if args.next_day else []
    return synth_main(argv + (["--readme"] if args.readme else []))


# ---------------------------------------------------------------------------------------------
# arguments


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (exit 2) instead of a usage dump."""

    def error(self, message: str):
        self.exit(EXIT_INPUT, f"cartwatch: {message} (see {self.prog} --help)\n")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="DuckDB file (default: the settings' database)")
    parser.add_argument("--config", help="settings file (TOML, [cartwatch] table; docs/cartwatch.toml)")
    parser.add_argument("--site-tz", dest="site_tz", help="IANA time zone for naive times")
    parser.add_argument("--rules", help="clinical rules file (default: transforms/clinical_rules.yaml)")
    parser.add_argument("--mask-ids", action="store_true",
                        help="pseudonymize patient and infusion ids (and source file names) in what is written "
                             "(digest, export, explain, report)")
    parser.add_argument("--debug", action="store_true", help="on failure, show the traceback")


def _as_of(parser: argparse.ArgumentParser, what: str = "evaluate with only what was known then") -> None:
    parser.add_argument("--as-of", dest="as_of", help=f"{what} (ISO 8601; a date is 00:00 in the site zone)")
    parser.add_argument("--as-loaded", dest="as_loaded", action="store_true",
                        help="also require rows to have been loaded by --as-of (replays nightly runs)")


def _stored(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stream", help="read a stored night: 'nightly' or 'backfill:<id>' (as backfill prints it)")
    parser.add_argument("--night", help="the stored night to read (YYYY-MM-DD; default: the stream's latest)")


def _progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress", choices=("auto", "lines", "none"), default="auto",
                        help="auto: a live line on a terminal, nothing otherwise; lines: a line per step; none")


def parser(commands: dict | None = None) -> argparse.ArgumentParser:
    """The command line; `commands` runs the sub-commands that start a Prefect flow (nightly,
    backfill, serve: flows/cli.py), since the flows call this package and not the other way round."""
    commands = commands or {}
    top = Parser(prog="cartwatch", description=__doc__.split("\n")[0],
                 epilog="Exit status: 0 done, 1 a run failed, 2 bad input, 3 database busy, "
                        "4 some files not loaded (ingest).")
    top.add_argument("--version", action="version", version=f"cartwatch {version()}")
    top.add_argument("--debug", dest="debug_top", action="store_true", help="on failure, show the traceback")
    sub = top.add_subparsers(dest="command", required=True, parser_class=Parser)
    p = sub.add_parser("ingest", help="load feed files or folders")
    _common(p)
    _progress_option(p)
    p.add_argument("paths", nargs="+")
    p.set_defaults(run=cmd_ingest)
    p = sub.add_parser("nightly", help="the scheduled job: ingest the inbox, evaluate, write the digest")
    _common(p)
    _as_of(p, "run as if at this moment: evaluate with what was known then, stamp loads with it")
    _progress_option(p)
    p.add_argument("--inbox", help="folder of incoming feed files")
    p.add_argument("--digest-dir", dest="digest_dir", help="where digests are written")
    p.add_argument("--full", action="store_true", help="re-evaluate every patient (default: only what changed)")
    p.set_defaults(run=commands.get("nightly", _needs_flows))
    p = sub.add_parser("digest", help="the on-call alert digest (of the last evaluation, or a stored night)")
    _common(p)
    _as_of(p, "evaluate as of this moment first (default: read the last evaluation, no rebuild)")
    _stored(p)
    p.add_argument("--since", help="alerts new since this time (default: since the last nightly digest)")
    p.add_argument("--format", choices=("md", "html", "json"), default="md")
    p.add_argument("--out", help="file to write (default: standard output)")
    p.set_defaults(run=cmd_digest)
    p = sub.add_parser("backfill", help="re-evaluate a cohort as of each night in a range, in parallel")
    _common(p)
    _progress_option(p)
    p.add_argument("--start", required=True, help="first night (YYYY-MM-DD)")
    p.add_argument("--end", required=True, help="last night (YYYY-MM-DD)")
    p.add_argument("--as-of", dest="as_of", help="use only rows known by this moment (ISO 8601), for every night")
    _cohort_options(p)
    p.add_argument("--as-loaded", dest="as_loaded", action="store_true",
                   help="each night sees only rows loaded by then (replays the nightly runs)")
    p.add_argument("--workers", type=int, help="parallel nights (default: CPU count, at most 4); "
                                                "with --dask, the local cluster's worker processes")
    p.add_argument("--dask", action="store_true",
                   help="evaluate patient partitions on Prefect's Dask task runner (a local cluster)")
    p.add_argument("--dask-address", dest="dask_address",
                   help="the same on a running Dask scheduler (tcp://host:8786); see README")
    p.add_argument("--partition-dir", dest="partition_dir",
                   help="with --dask: folder for the partitions' Parquet files, readable and writable by "
                        "every worker (default: beside the database)")
    p.add_argument("--partition-size", dest="partition_size", type=int,
                   help="with --dask: patients a partition (default 500)")
    p.add_argument("--digest-dir", dest="digest_dir", help="where failure reports are written")
    p.set_defaults(run=commands.get("backfill", _needs_flows))
    p = sub.add_parser("serve", help="run the nightly job on its schedule (a Prefect server and runner)")
    _common(p)
    p.add_argument("--inbox", help="folder of incoming feed files")
    p.add_argument("--digest-dir", dest="digest_dir", help="where digests are written")
    p.add_argument("--cron", help="nightly schedule, in the site time zone (default: setting nightly_cron)")
    p.add_argument("--dry-run", dest="dry_run", action="store_true", help="print the deployments and exit")
    p.set_defaults(run=commands.get("serve", _needs_flows))
    p = sub.add_parser("export", help="tables for other tools (docs/contract.md)")
    _common(p)
    _as_of(p, "evaluate as of this moment first (default: read the last evaluation, no rebuild)")
    _stored(p)
    p.add_argument("table", choices=("windows", "timeline", "flags", "quarantine"))
    p.add_argument("--format", choices=("csv", "parquet", "json", "fhir"),
                   help="default: from --out's extension (.csv, .parquet, .json, .ndjson); "
                        "fhir (windows only): FHIR R4 NDJSON, DetectedIssue + Observation + Patient")
    p.add_argument("--out", required=True)
    p.set_defaults(run=cmd_export)
    p = sub.add_parser("report", help="the cohort report: flags per criteria set, onsets, incidence, agreement")
    _common(p)
    _as_of(p, "evaluate as of this moment first (default: read the last evaluation, no rebuild)")
    _stored(p)
    _cohort_options(p)
    p.add_argument("--format", choices=("html", "json"), help="default: from --out's extension (.html, .json)")
    p.add_argument("--out", required=True, help="the report file (.html or .json)")
    p.set_defaults(run=cmd_report)
    from cartwatch.explain.command import add_explain

    add_explain(sub, _common, _as_of)
    p = sub.add_parser("synth", help="write a synthetic cohort (all four CSV feeds + ground truth)")
    p.add_argument("--patients", type=int, default=28, help="default: the committed sample's 28")
    p.add_argument("--seed", type=int, default=20261122)
    p.add_argument("--out", required=True)
    p.add_argument("--start", help="first possible infusion date (YYYY-MM-DD)")
    p.add_argument("--readme", action="store_true", help="also write README.md telling each story")
    p.add_argument("--formats", help="comma-separated: csv (always), hl7, fhir")
    p.add_argument("--cohort", action="store_true",
                   help="a large benchmark cohort (vectorized: 10,000 patients in seconds; CSV, no ground truth)")
    p.add_argument("--next-day", dest="next_day",
                   help="with --cohort: folder for the following day's new results (a nightly inbox file)")
    p.add_argument("--debug", action="store_true", help="on failure, show the traceback")
    p.set_defaults(run=cmd_synth)
    return top


def _exit_status(exc: BaseException) -> tuple[int, str]:
    """The exit status and the one line for an exception that ends a command."""
    from cartwatch.prefect_env import PrefectServerError, PrefectStartTimeout

    store = sys.modules.get("cartwatch.store")
    rules = sys.modules.get("transforms.rules")
    streams = sys.modules.get("cartwatch.streams")
    backfill = sys.modules.get("cartwatch.backfill")
    if isinstance(exc, PrefectStartTimeout):
        return EXIT_FAILED, _late_prefect()
    if isinstance(exc, (InputError, SettingsError, PrefectServerError)):
        return EXIT_INPUT, str(exc)
    if store is not None and isinstance(exc, store.JobBusy):
        return EXIT_BUSY, str(exc)
    if store is not None and isinstance(exc, store.StoreError):
        return EXIT_INPUT, str(exc)
    if rules is not None and isinstance(exc, rules.RulesError):
        return EXIT_INPUT, f"rules file: {exc}"
    if streams is not None and isinstance(exc, streams.StreamError):
        return EXIT_INPUT, str(exc)
    if backfill is not None and isinstance(exc, backfill.BackfillError):
        return EXIT_INPUT, f"backfill: {exc}"
    text = " ".join(str(exc).split())
    if "ephemeral Prefect API server" in text:      # Prefect's own (a Dask worker's, say)
        return EXIT_FAILED, _late_prefect()
    if getattr(exc, "step", None):
        return EXIT_FAILED, f"run failed: {text}"
    if getattr(exc, "kind", None):           # scrubbed before reaching Prefect: it names its type
        return EXIT_FAILED, f"failed: {text}"
    return EXIT_FAILED, f"failed: {type(exc).__name__}: {text}"


def _late_prefect() -> str:
    return ("Prefect's temporary server did not start in time (setting prefect_startup_seconds, "
            f"now {os.environ.get('PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS', '?')} s)")


def main(argv: list[str] | None = None, commands: dict | None = None) -> int:
    args = parser(commands).parse_args(argv)
    args.debug = bool(getattr(args, "debug", False) or getattr(args, "debug_top", False)
                      or os.environ.get("CARTWATCH_DEBUG"))
    try:
        return args.run(args)
    except KeyboardInterrupt:
        eprint("cartwatch: interrupted")
        return 130
    except Exception as exc:   # one line for the user; the traceback with --debug
        if args.debug:
            traceback.print_exc()
            if getattr(exc, "original", None) is not None:    # what was scrubbed before reaching Prefect
                traceback.print_exception(exc.original)
        status, line = _exit_status(exc)
        if "\n" in line:
            line = " ".join(line.split())
        eprint(f"cartwatch: {line}")
        return status


def console(commands: dict | None = None) -> None:
    """The `cartwatch` script (flows/cli.py passes the flow commands). After a run that imported
    Prefect, end without the interpreter's module teardown: exit handlers run (Prefect stops its
    temporary server, logs are flushed), but the teardown would only add DuckDB's 'nanobind: leaked
    instances' dump after the one line.

    Everything the program writes (the database, digests, exports, failures.log, Prefect's own
    database in var/prefect) holds patient data: owner-only, whatever the caller's umask."""
    os.umask(OWNER_ONLY_UMASK)
    status = main(None, commands)
    if "prefect" not in sys.modules:
        sys.exit(status)
    import atexit
    import threading

    threading._shutdown()        # what interpreter exit does first: joins threads, drains Prefect's log worker
    atexit._run_exitfuncs()      # then exit handlers: Prefect stops its temporary server
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    console()
