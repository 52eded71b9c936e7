"""cartwatch: CAR-T toxicity monitoring, CRS and IEC-HS early warning from hospital lab feeds.

The command line of CONTRACT 2: every sub-command takes --db and exits non-zero with a one-line
reason on bad input.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import datetime, time, timezone
from pathlib import Path

from cartwatch.settings import REPO_ROOT, Settings, SettingsError, load_settings
from transforms.timestamps import TimestampError, parse_timestamp, zone


def _prefect_environment() -> None:
    """Quiet, local Prefect: no telemetry, state kept beside the database, not in $HOME."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_HOME", str(REPO_ROOT / "var" / "prefect"))
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def parse_as_of(text: str | None, site_tz: str) -> datetime | None:
    """An ISO timestamp (naive: site zone); a bare date means 00:00 of that date in the site zone."""
    if text is None:
        return None
    try:
        at = parse_timestamp(text, site_tz, allow_date_only=True)
    except TimestampError as exc:
        raise SystemExit(f"cartwatch: --as-of: {exc}") from None
    if len(text.strip()) == 10:
        local = datetime.combine(datetime.fromisoformat(text.strip()).date(), time(0), zone(site_tz))
        at = local.astimezone(timezone.utc)
    return at


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(config_file=args.config, db_path=args.db,
                         inbox=getattr(args, "inbox", None), site_tz=args.site_tz,
                         digest_dir=getattr(args, "digest_dir", None), rules_path=args.rules,
                         mask_ids=True if getattr(args, "mask_ids", False) else None)


def cmd_ingest(args) -> int:
    from cartwatch.ingest import format_reports, ingest_paths
    from cartwatch.runs import utc_now
    from cartwatch.store import open_store
    from transforms.rules import load_rules

    settings = _settings(args)
    con = open_store(settings.db_path)
    try:
        reports = ingest_paths(con, [Path(p) for p in args.paths], load_rules(settings.rules_path),
                               site_tz=settings.site_tz, now=utc_now())
    except FileNotFoundError as exc:
        raise SystemExit(f"cartwatch: {exc}") from None
    print(format_reports(reports))
    return 0


def cmd_nightly(args) -> int:
    _prefect_environment()
    from flows.nightly import nightly, overrides_from_args

    settings = _settings(args)
    result = nightly(as_of=parse_as_of(args.as_of, settings.site_tz), as_loaded=args.as_loaded,
                     full=args.full, overrides=overrides_from_args(args))
    c = result["counts"]
    print(f"nightly run {result['run_id']}: {len(result['files'])} files, {c['files_loaded']} new; "
          f"rows read {c['read']}, accepted {c['accepted']}, duplicate {c['duplicate']}, "
          f"quarantined {c['quarantined']}")
    print(f"evaluation: {c['build']['mode']} ({c['build']['reason']}), {c['build']['seconds']:.2f} s; "
          f"{result['alerts']} alerts")
    print(f"digest: {result['digest']['md']} (+ .html, .json)")
    return 0


def cmd_export(args) -> int:
    from cartwatch.build import build
    from cartwatch.export import ExportError, export_table
    from cartwatch.runs import utc_now
    from cartwatch.store import open_store
    from transforms.rules import load_rules

    settings = _settings(args)
    con = open_store(settings.db_path)
    if args.table != "quarantine":
        build(con, load_rules(settings.rules_path),
              as_of=parse_as_of(args.as_of, settings.site_tz) or utc_now(),
              as_loaded=args.as_loaded, site_tz=settings.site_tz)
    try:
        rows = export_table(con, args.table, args.format, Path(args.out))
    except ExportError as exc:
        raise SystemExit(f"cartwatch: {exc}") from None
    print(f"{args.table}: {rows} rows -> {args.out}")
    return 0


def cmd_digest(args) -> int:
    from cartwatch.digest import make_digest, render
    from cartwatch.incremental import evaluate
    from cartwatch.runs import utc_now
    from cartwatch.store import open_store
    from transforms.rules import load_rules

    settings = _settings(args)
    rules = load_rules(settings.rules_path)
    as_of = parse_as_of(args.as_of, settings.site_tz) or utc_now()
    since = parse_as_of(args.since, settings.site_tz)
    if since is not None and since >= as_of:
        raise SystemExit("cartwatch: --since must be before --as-of")
    con = open_store(settings.db_path)
    evaluate(con, rules, as_of=as_of, as_loaded=args.as_loaded, site_tz=settings.site_tz)
    # against the nightly digests' state: "new" means not reported by a nightly run (before --since)
    doc = make_digest(con, rules, as_of=as_of, as_loaded=args.as_loaded, stream="nightly",
                      site_tz=settings.site_tz, since=since, persist=False)
    text = render(doc, args.format, mask_ids=settings.mask_ids)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"digest as of {doc['as_of']}: {doc['alerts']} alerts -> {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _date(text: str | None, option: str):
    from datetime import date

    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise SystemExit(f"cartwatch: {option}: {text!r} is not a date (YYYY-MM-DD)") from None


def cmd_backfill(args) -> int:
    _prefect_environment()
    from cartwatch.backfill import BackfillError, read_patients_file
    from flows.backfill import with_workers
    from flows.nightly import overrides_from_args

    _settings(args)     # refuse bad settings before Prefect starts
    start, end = _date(args.start, "--start"), _date(args.end, "--end")
    if (args.partition_dir or args.partition_size) and not (args.dask or args.dask_address):
        raise SystemExit("cartwatch: --partition-dir and --partition-size need --dask or --dask-address")
    try:
        patients = read_patients_file(args.patients) if args.patients else None
        common = dict(start=start, end=end, patients=patients, product=args.product,
                      infused_from=_date(args.infused_from, "--infused-from"),
                      infused_to=_date(args.infused_to, "--infused-to"),
                      as_loaded=args.as_loaded, overrides=overrides_from_args(args))
        if args.dask or args.dask_address:
            from flows.backfill import DEFAULT_PARTITION_SIZE, on_dask

            result = on_dask(args.dask_address, args.workers)(
                **common, partition_dir=args.partition_dir,
                partition_size=args.partition_size or DEFAULT_PARTITION_SIZE)
        else:
            result = with_workers(args.workers)(**common, workers=args.workers)
    except BackfillError as exc:
        raise SystemExit(f"cartwatch: {exc}") from None
    print(f"backfill {result['backfill_id']}: {result['nights']} nights ({result['nights_run']} run now), "
          f"{result['patients']} patients, {result['alerts']} alerts, {result['seconds']:.1f} s; "
          f"results under stream '{result['stream']}'")
    return 0


def cmd_serve(args) -> int:
    _prefect_environment()
    from flows.nightly import overrides_from_args
    from flows.serve import deployments, describe, serve

    settings = _settings(args)
    if args.dry_run:
        print("\n".join(describe(deployments(settings, overrides_from_args(args), args.cron))))
        return 0
    serve(settings, overrides_from_args(args), args.cron)
    return 0


def cmd_synth(args) -> int:
    from cartwatch.synth.__main__ import main as synth_main

    argv = ["--patients", str(args.patients), "--seed", str(args.seed), "--out", args.out]
    argv += ["--start", args.start] if args.start else []
    argv += ["--formats", args.formats] if args.formats else []
    argv += ["--cohort"] if args.cohort else []
    argv += ["--next-day", args.next_day] if args.next_day else []
    return synth_main(argv + (["--readme"] if args.readme else []))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="DuckDB file (default: the settings' database)")
    parser.add_argument("--config", help="settings file (TOML, [cartwatch] table)")
    parser.add_argument("--site-tz", dest="site_tz", help="IANA time zone for naive times")
    parser.add_argument("--rules", help="clinical rules file (default: transforms/clinical_rules.yaml)")
    parser.add_argument("--mask-ids", action="store_true", help="pseudonymize patient ids in output")


def _as_of(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as-of", dest="as_of", help="evaluate with only what was known then (ISO 8601)")
    parser.add_argument("--as-loaded", dest="as_loaded", action="store_true",
                        help="also require rows to have been loaded by --as-of (replays nightly runs)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="cartwatch", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ingest", help="load feed files or folders")
    _common(p)
    p.add_argument("paths", nargs="+")
    p.set_defaults(run=cmd_ingest)
    p = sub.add_parser("nightly", help="the scheduled job: ingest the inbox, evaluate, write the digest")
    _common(p)
    _as_of(p)
    p.add_argument("--inbox", help="folder of incoming feed files")
    p.add_argument("--digest-dir", dest="digest_dir", help="where digests are written")
    p.add_argument("--full", action="store_true", help="re-evaluate every patient (default: only what changed)")
    p.set_defaults(run=cmd_nightly)
    p = sub.add_parser("digest", help="the on-call alert digest")
    _common(p)
    _as_of(p)
    p.add_argument("--since", help="alerts new since this time (default: since the last nightly digest)")
    p.add_argument("--format", choices=("md", "html", "json"), default="md")
    p.add_argument("--out", help="file to write (default: standard output)")
    p.set_defaults(run=cmd_digest)
    p = sub.add_parser("backfill", help="re-evaluate a cohort as of each night in a range, in parallel")
    _common(p)
    p.add_argument("--start", required=True, help="first night (YYYY-MM-DD)")
    p.add_argument("--end", required=True, help="last night (YYYY-MM-DD)")
    p.add_argument("--patients", help="file of patient ids, one a line")
    p.add_argument("--product", help="only infusions of this product")
    p.add_argument("--infused-from", dest="infused_from", help="only infusions on or after this date")
    p.add_argument("--infused-to", dest="infused_to", help="only infusions on or before this date")
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
    p.set_defaults(run=cmd_backfill)
    p = sub.add_parser("serve", help="run the Prefect deployments on their schedules")
    _common(p)
    p.add_argument("--inbox", help="folder of incoming feed files")
    p.add_argument("--digest-dir", dest="digest_dir", help="where digests are written")
    p.add_argument("--cron", help="nightly schedule, in the site time zone (default: 0 2 * * *)")
    p.add_argument("--dry-run", dest="dry_run", action="store_true", help="print the deployments and exit")
    p.set_defaults(run=cmd_serve)
    p = sub.add_parser("export", help="tables for other tools (CONTRACT 3)")
    _common(p)
    _as_of(p)
    p.add_argument("table", choices=("windows", "timeline", "flags", "quarantine"))
    p.add_argument("--format", choices=("csv", "parquet", "json"), default="csv")
    p.add_argument("--out", required=True)
    p.set_defaults(run=cmd_export)
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
    p.set_defaults(run=cmd_synth)
    return top


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except SettingsError as exc:
        raise SystemExit(f"cartwatch: {exc}") from None
    except Exception as exc:  # one line for the user; the traceback is for --debug runs
        if os.environ.get("CARTWATCH_DEBUG"):
            raise
        raise SystemExit(f"cartwatch: {type(exc).__name__}: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())
