"""`python -m cartwatch.synth --patients 28 --seed 20261122 --out data/sample --readme --formats csv,hl7,fhir`

With `--cohort`, a large benchmark cohort instead (cartwatch/synth/bulk.py): no ground truth, about a
million rows a second, e.g. `--cohort --patients 10000 --seed 1 --out var/cohort-10k --next-day var/inbox`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from cartwatch.synth import DEFAULT_START, FORMAT_WRITERS, bulk, generate
from cartwatch.synth.readme import render
from transforms.rules import load_rules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cartwatch.synth", description=__doc__)
    parser.add_argument("--patients", type=int, default=28)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--start", type=date.fromisoformat, default=None,
                        help=f"first possible infusion date (default {DEFAULT_START}; "
                             f"with --cohort {bulk.DEFAULT_START})")
    parser.add_argument("--readme", action="store_true", help="also write README.md telling each story")
    parser.add_argument("--formats", type=_formats, default=("csv",),
                        help="comma-separated wire formats to write: csv (always), hl7 (hl7/), "
                             "fhir (fhir/); default csv")
    parser.add_argument("--cohort", action="store_true",
                        help="a large benchmark cohort: vectorized, CSV only, no ground truth")
    parser.add_argument("--next-day", dest="next_day", type=Path,
                        help="with --cohort: write the following day's new results here (a nightly inbox file)")
    parser.add_argument("--span-days", dest="span_days", type=int, default=bulk.DEFAULT_SPAN_DAYS,
                        help="with --cohort: infusions spread over this many days (default %(default)s)")
    args = parser.parse_args(argv)
    if args.cohort:
        return _cohort(parser, args)
    if args.next_day:
        parser.error("--next-day needs --cohort")
    args.start = args.start or DEFAULT_START
    truth = generate(args.patients, args.seed, args.out, start=args.start, formats=args.formats)
    if args.readme:
        command = (f".venv/bin/python -m cartwatch.synth --patients {args.patients} --seed {args.seed} "
                   f"--out {args.out} --start {args.start} --readme")
        if args.formats != ("csv",):
            command += f" --formats {','.join(args.formats)}"
        (args.out / "README.md").write_text(render(truth, command, load_rules(), formats=args.formats,
                                                   out_dir=args.out),
                                            encoding="utf-8")
    print(f"wrote {args.patients} patients (seed {args.seed}) to {args.out}")
    return 0


def _cohort(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.readme or args.formats != ("csv",):
        parser.error("--cohort writes CSV feeds only (no --readme, no --formats)")
    info = bulk.write_cohort(args.patients, args.seed, args.out, next_day_dir=args.next_day,
                             start=args.start or bulk.DEFAULT_START, span_days=args.span_days)
    print(f"wrote a cohort of {args.patients} patients (seed {args.seed}) to {args.out}: {info.rows:,} rows "
          f"in {info.seconds:.1f} s, as of {info.as_of}"
          + (f"; next day: {sum(info.next_day_files.values()):,} rows of {info.active_patients} patients "
             f"in {args.next_day}" if args.next_day else ""))
    return 0


def _formats(text: str) -> tuple[str, ...]:
    """`csv,hl7,fhir` -> ("csv", "hl7", "fhir"): csv first and always, each format once."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - {"csv", *FORMAT_WRITERS})
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown format(s) {', '.join(unknown)}: "
                                         f"csv, {', '.join(FORMAT_WRITERS)}")
    return ("csv", *dict.fromkeys(n for n in names if n != "csv"))


if __name__ == "__main__":
    sys.exit(main())
