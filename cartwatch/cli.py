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

from cartwatch.settings import Settings, SettingsError, load_settings
from transforms.timestamps import TimestampError, parse_timestamp, zone


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


def settings_from_args(args: argparse.Namespace) -> Settings:
    return load_settings(config_file=args.config, db_path=args.db,
                         inbox=getattr(args, "inbox", None), site_tz=args.site_tz,
                         digest_dir=getattr(args, "digest_dir", None), rules_path=args.rules,
                         mask_ids=True if getattr(args, "mask_ids", False) else None)


def cmd_ingest(args) -> int:
    from cartwatch.ingest import format_reports, ingest_paths
    from cartwatch.runs import utc_now
    from cartwatch.store import open_store
    from transforms.rules import load_rules

    settings = settings_from_args(args)
    con = open_store(settings.db_path)
    try:
        reports = ingest_paths(con, [Path(p) for p in args.paths], load_rules(settings.rules_path),
                               site_tz=settings.site_tz, now=utc_now())
    except FileNotFoundError as exc:
        raise SystemExit(f"cartwatch: {exc}") from None
    print(format_reports(reports))
    return 0


def cmd_export(args) -> int:
    from cartwatch.build import build
    from cartwatch.export import ExportError, export_table
    from cartwatch.runs import utc_now
    from cartwatch.store import open_store
    from transforms.rules import load_rules

    settings = settings_from_args(args)
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

    settings = settings_from_args(args)
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


def parse_date(text: str | None, option: str):
    from datetime import date

    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise SystemExit(f"cartwatch: {option}: {text!r} is not a date (YYYY-MM-DD)") from None


def cmd_synth(args) -> int:
    from cartwatch.synth.__main__ import main as synth_main

    argv = ["--patients", str(args.patients), "--seed", str(args.seed), "--out", args.out]
    argv += ["--start", args.start] if args.start else []
    argv += ["--formats", args.formats] if args.formats else []
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
    p.set_defaults(run=None)
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
    p.add_argument("--workers", type=int, help="parallel nights (default: CPU count, at most 4)")
    p.add_argument("--digest-dir", dest="digest_dir", help="where failure reports are written")
    p.set_defaults(run=None)
    p = sub.add_parser("serve", help="run the Prefect deployments on their schedules")
    _common(p)
    p.add_argument("--inbox", help="folder of incoming feed files")
    p.add_argument("--digest-dir", dest="digest_dir", help="where digests are written")
    p.add_argument("--cron", help="nightly schedule, in the site time zone (default: 0 2 * * *)")
    p.add_argument("--dry-run", dest="dry_run", action="store_true", help="print the deployments and exit")
    p.set_defaults(run=None)
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
    p.set_defaults(run=cmd_synth)
    return top


def main(argv: list[str] | None = None, flow_commands: dict | None = None) -> int:
    """Run one sub-command. The ones that run a Prefect flow (nightly, backfill, serve) are given
    by the caller, flows/cli.py (the `cartwatch` program): the flows call this package, not the
    other way round."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    run = args.run or (flow_commands or {}).get(args.command)
    if run is None:
        raise SystemExit(f"cartwatch: {args.command} runs a Prefect flow: use the cartwatch program "
                         "(python -m flows.cli)")
    try:
        return run(args)
    except SettingsError as exc:
        raise SystemExit(f"cartwatch: {exc}") from None
    except Exception as exc:  # one line for the user; the traceback is for --debug runs
        if os.environ.get("CARTWATCH_DEBUG"):
            raise
        raise SystemExit(f"cartwatch: {type(exc).__name__}: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())
