"""Ingest and build throughput on a synthetic cohort (a benchmark, not a test).

    .venv/bin/python benchmarks/bench_ingest.py --patients 200

Writes the cohort with the synth generator into a temporary folder, loads it into a fresh DuckDB
file with `cartwatch.ingest.ingest_paths` (parse, normalize, validate, dedupe, write) and then
rebuilds every derived and flags table as of the end of the data. Prints rows read, seconds and
rows/s for each stage.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from cartwatch.build import build
from cartwatch.ingest import ingest_paths
from cartwatch.store import open_store
from cartwatch.synth import generate
from transforms.rules import load_rules


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--patients", type=int, default=200)
    args.add_argument("--seed", type=int, default=1)
    args.add_argument("--feeds", help="an existing folder of feed files instead of a new cohort")
    opts = args.parse_args()
    rules = load_rules()
    with tempfile.TemporaryDirectory() as tmp:
        feeds = Path(opts.feeds) if opts.feeds else Path(tmp) / "feeds"
        if not opts.feeds:
            started = time.perf_counter()
            generate(patients=opts.patients, seed=opts.seed, out_dir=feeds)
            print(f"generate  {opts.patients} patients: {time.perf_counter() - started:.1f} s")
        con = open_store(Path(tmp) / "bench.duckdb")
        now = datetime.now(timezone.utc)
        from expectations.validate import _validation_definitions
        _validation_definitions()  # GX import and context: a once-per-process cost, not per row
        started = time.perf_counter()
        reports = ingest_paths(con, [feeds], rules, site_tz="America/New_York", now=now)
        seconds = time.perf_counter() - started
        rows = sum(r.read for r in reports)
        print(f"ingest    {rows} rows in {seconds:.1f} s: {rows / seconds:,.0f} rows/s "
              f"({sum(r.accepted for r in reports)} accepted, {sum(r.quarantined for r in reports)} quarantined)")
        started = time.perf_counter()
        build(con, rules, as_of=now, as_loaded=False, site_tz="America/New_York")
        seconds = time.perf_counter() - started
        labs = con.execute("SELECT count(*) FROM derived.timeline").fetchall()[0][0]
        print(f"build     {labs} timeline rows in {seconds:.1f} s")
        con.close()


if __name__ == "__main__":
    main()
