"""Seconds per build step (each line of sql/run_order.txt) of a full build of a database as of a moment.

    .venv/bin/python benchmarks/build_steps.py DB --as-of 2026-06-25T06:00:00Z [--site-tz ZONE]

A profiler sees a SQL file's time only as time inside DuckDB's execute, the same call for every
file; this times each step of the build (as `cartwatch.build.build` runs them, in one transaction)
and prints one JSON line: the steps, slowest first, and the total.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cartwatch import build as builder  # noqa: E402
from cartwatch.store import open_store  # noqa: E402
from transforms.rules import load_rules  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db", type=Path)
    ap.add_argument("--as-of", required=True, type=lambda t: datetime.fromisoformat(t.replace("Z", "+00:00")))
    ap.add_argument("--site-tz", default="America/New_York")
    args = ap.parse_args()
    rules = load_rules()
    con = open_store(args.db)
    ctx = builder.build_context(rules, as_of=args.as_of, as_loaded=False, site_tz=args.site_tz)
    timings = []
    started = time.perf_counter()
    con.execute("BEGIN TRANSACTION")       # one transaction, as build() runs
    try:
        builder.write_reference_tables(con, rules)
        for step in builder.steps():
            t = time.perf_counter()
            builder.run_step(con, step, ctx)
            timings.append((step, round(time.perf_counter() - t, 3)))
    finally:
        con.execute("ROLLBACK")            # measure only: the database is left as it was
    total = time.perf_counter() - started
    con.close()
    print(json.dumps({"total_seconds": round(total, 3),
                      "steps": sorted(timings, key=lambda kv: -kv[1])}))


if __name__ == "__main__":
    main()
