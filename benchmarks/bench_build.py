"""Time the evaluation (derived and flags layers) on an ingested cohort, apart from its ingest.

    .venv/bin/python benchmarks/bench_build.py --cohort var/cohorts/p1000-s3          # full build
    /usr/bin/time -v .venv/bin/python benchmarks/bench_build.py --cohort ... --nightly   # + one new day

The cohort folder is made by `cartwatch synth` (it holds AS_OF). Its ingested store is cached
beside the compare stores (var/compare/stores/); each run works on a copy. --nightly splits the
feeds at the day before AS_OF (as benchmarks/compare_exports.py does), evaluates the history, then
times the incremental evaluation after the last day's files and a second run with no new file.
--profile writes a pyinstrument HTML report of the timed part (pyinstrument must be installed).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from compare_exports import (SITE_TZ, as_of_of, ingested_store, split_feeds,  # noqa: E402
                             working_copy)
from cartwatch.build import build  # noqa: E402
from cartwatch.incremental import evaluate  # noqa: E402
from cartwatch.ingest import ingest_paths  # noqa: E402
from cartwatch.store import open_store  # noqa: E402
from transforms.rules import load_rules  # noqa: E402


def timed(label: str, fn, profile: Path | None = None):
    profiler = None
    if profile:
        from pyinstrument import Profiler
        profiler = Profiler()
        profiler.start()
    started = time.perf_counter()
    result = fn()
    print(f"{label}: {time.perf_counter() - started:.2f} s {getattr(result, 'mode', '')} "
          f"{getattr(result, 'reason', '')}", flush=True)
    if profiler:
        profiler.stop()
        profile.write_text(profiler.output_html())
        print(profiler.output_text(unicode=False, color=False, show_all=False)[:6000])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cohort", type=Path, required=True)
    parser.add_argument("--nightly", action="store_true")
    parser.add_argument("--profile", type=Path, help="HTML report of the timed build")
    args = parser.parse_args(argv)
    rules, name, as_of = load_rules(), args.cohort.name, as_of_of(args.cohort)
    work = REPO / "var" / "bench-build"
    if not args.nightly:
        con = open_store(working_copy(ingested_store(name, [args.cohort], rules, False), work))
        timed("full build", lambda: build(con, rules, as_of=as_of, as_loaded=False, site_tz=SITE_TZ),
              args.profile)
        return 0
    cut = as_of - timedelta(days=1)
    history, new = split_feeds(args.cohort, f"{cut:%Y-%m-%d}", work / "split" / name)
    con = open_store(working_copy(ingested_store(f"{name}-history", [history], rules, False), work))
    timed("first evaluation (full)", lambda: evaluate(con, rules, as_of=cut, as_loaded=False, site_tz=SITE_TZ))
    ingest_paths(con, [new], rules, site_tz=SITE_TZ, now=datetime.now(timezone.utc))
    timed("one new day", lambda: evaluate(con, rules, as_of=as_of, as_loaded=False, site_tz=SITE_TZ),
          args.profile)
    timed("no new file", lambda: evaluate(con, rules, as_of=as_of, as_loaded=False, site_tz=SITE_TZ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
