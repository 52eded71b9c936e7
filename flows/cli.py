"""`cartwatch`, the command line of CONTRACT 2: the package's sub-commands (cartwatch/cli.py) and
the three that run a Prefect flow (nightly, backfill, serve), which live here because the flows
call the package and not the other way round.

Prefect is imported only by those three, after its environment is set: `cartwatch ingest` or
`export` never pay for it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cartwatch import cli
from cartwatch.settings import REPO_ROOT


def prefect_environment() -> None:
    """Quiet, local Prefect: no telemetry, state kept beside the database, not in $HOME."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_HOME", str(REPO_ROOT / "var" / "prefect"))
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def cmd_nightly(args) -> int:
    prefect_environment()
    from flows.nightly import nightly, overrides_from_args

    settings = cli.settings_from_args(args)
    result = nightly(as_of=cli.parse_as_of(args.as_of, settings.site_tz), as_loaded=args.as_loaded,
                     full=args.full, overrides=overrides_from_args(args))
    c = result["counts"]
    print(f"nightly run {result['run_id']}: {len(result['files'])} files, {c['files_loaded']} new; "
          f"rows read {c['read']}, accepted {c['accepted']}, duplicate {c['duplicate']}, "
          f"quarantined {c['quarantined']}")
    print(f"evaluation: {c['build']['mode']} ({c['build']['reason']}), {c['build']['seconds']:.2f} s; "
          f"{result['alerts']} alerts")
    print(f"digest: {result['digest']['md']} (+ .html, .json)")
    return 0


def cmd_backfill(args) -> int:
    prefect_environment()
    from cartwatch.backfill import BackfillError, read_patients_file
    from flows.backfill import with_workers
    from flows.nightly import overrides_from_args

    cli.settings_from_args(args)     # refuse bad settings before Prefect starts
    start, end = cli.parse_date(args.start, "--start"), cli.parse_date(args.end, "--end")
    try:
        patients = read_patients_file(args.patients) if args.patients else None
        result = with_workers(args.workers)(
            start=start, end=end, patients=patients, product=args.product,
            infused_from=cli.parse_date(args.infused_from, "--infused-from"),
            infused_to=cli.parse_date(args.infused_to, "--infused-to"),
            as_loaded=args.as_loaded, overrides=overrides_from_args(args), workers=args.workers)
    except BackfillError as exc:
        raise SystemExit(f"cartwatch: {exc}") from None
    print(f"backfill {result['backfill_id']}: {result['nights']} nights ({result['nights_run']} run now), "
          f"{result['patients']} patients, {result['alerts']} alerts, {result['seconds']:.1f} s; "
          f"results under stream '{result['stream']}'")
    return 0


def cmd_serve(args) -> int:
    prefect_environment()
    from flows.nightly import overrides_from_args
    from flows.serve import deployments, describe, serve

    settings = cli.settings_from_args(args)
    if args.dry_run:
        print("\n".join(describe(deployments(settings, overrides_from_args(args), args.cron))))
        return 0
    serve(settings, overrides_from_args(args), args.cron)
    return 0


FLOW_COMMANDS = {"nightly": cmd_nightly, "backfill": cmd_backfill, "serve": cmd_serve}


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, FLOW_COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
