"""Write a large synthetic cohort (the four CSV feeds and its ground truth) and report throughput.

    .venv/bin/python benchmarks/make_cohort.py --patients 5000 --out var/cohort-5000 [--workers 2]

Same generator as data/sample (cartwatch.synth.generate): patients are simulated one by one with
numpy (no per-row Python), the files are formatted with polars, and every patient's expected
verdict is computed. Measured on the 2-core development machine (shared, load ~4), 5000 patients,
3.8 million rows: about 45 s with one worker, about 84,000 rows/s; a second worker helps only on
an idle machine.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

from cartwatch.synth import DEFAULT_START, generate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START)
    parser.add_argument("--workers", type=int, default=1, help="processes building patients")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    truth = generate(args.patients, args.seed, args.out, start=args.start, workers=args.workers)
    seconds = time.perf_counter() - started
    rows = sum(f.rows_read for f in truth.files)
    size = sum(p.stat().st_size for p in args.out.iterdir()) / 1e6
    for f in truth.files:
        print(f"{f.file:<16} {f.rows_read:>10,} rows")
    print(f"{args.patients} patients, {rows:,} rows, {size:,.0f} MB in {seconds:.1f} s: "
          f"{rows / seconds:,.0f} rows/s ({args.workers} worker{'s' if args.workers > 1 else ''})")


if __name__ == "__main__":
    main()
