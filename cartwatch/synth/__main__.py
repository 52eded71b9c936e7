"""`python -m cartwatch.synth --patients 28 --seed 20261122 --out data/sample --readme --formats csv,hl7,fhir`"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from cartwatch.synth import DEFAULT_START, FORMAT_WRITERS, generate
from cartwatch.synth.readme import render
from transforms.rules import load_rules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cartwatch.synth", description=__doc__)
    parser.add_argument("--patients", type=int, default=28)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START,
                        help="first possible infusion date (default %(default)s)")
    parser.add_argument("--readme", action="store_true", help="also write README.md telling each story")
    parser.add_argument("--formats", type=_formats, default=("csv",),
                        help="comma-separated wire formats to write: csv (always), hl7 (hl7/), "
                             "fhir (fhir/); default csv")
    args = parser.parse_args(argv)
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
