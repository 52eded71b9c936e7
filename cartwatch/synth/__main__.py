"""`python -m cartwatch.synth --patients 28 --seed 20261122 --out data/sample --readme`"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from cartwatch.synth import DEFAULT_START, generate
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
    args = parser.parse_args(argv)
    truth = generate(args.patients, args.seed, args.out, start=args.start)
    if args.readme:
        command = (f".venv/bin/python -m cartwatch.synth --patients {args.patients} --seed {args.seed} "
                   f"--out {args.out} --start {args.start} --readme")
        (args.out / "README.md").write_text(render(truth, command, load_rules()), encoding="utf-8")
    print(f"wrote {args.patients} patients (seed {args.seed}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
