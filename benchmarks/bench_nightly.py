"""Time `cartwatch nightly` on a cohort's history: the first run, one new day, and no new file.

    .venv/bin/python benchmarks/bench_nightly.py --cohort var/cohorts/p1000-s3 [--code /tmp/old-checkout]

The cohort's feeds are split at the day before its AS_OF (benchmarks/compare_exports.py): the
history is ingested once (cached), then three nightly runs, each a fresh process as the scheduler
starts them:

1. first run as of the split, empty inbox: full build, and a digest in which all the history is new;
2. the last day's files in the inbox, as of AS_OF: one new day of results;
3. the same inbox a day later: no new file.

Each line gives the wall time and peak RSS of the process (`/usr/bin/time -v`, Prefect's
temporary server and the imports included) and the flow's own step times (meta.runs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from compare_exports import as_of_of, ingested_store, split_feeds  # noqa: E402
from transforms.rules import load_rules  # noqa: E402

ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING",
       "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}


def run_nightly(db: Path, inbox: Path, digest: Path, as_of, code: Path) -> dict:
    """One `cartwatch nightly` process, on the code tree `code` (this one, or an older checkout)."""
    entry = "flows.cli" if (code / "flows" / "cli.py").exists() else "cartwatch.cli"
    command = ["/usr/bin/time", "-v", sys.executable, "-m", entry, "nightly", "--db", str(db),
               "--inbox", str(inbox), "--digest-dir", str(digest), "--as-of", as_of.isoformat()]
    env = {**os.environ, **ENV, "PREFECT_HOME": str(db.parent / "prefect"), "PYTHONPATH": str(code)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False, cwd=code)
    if done.returncode:
        raise SystemExit(f"nightly failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    seconds = (int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3)))
    return {"wall_s": round(seconds, 1), "peak_rss_mb": rss // 1024, "output": done.stdout.strip()}


def flow_times(db: Path) -> list[dict]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT counts FROM meta.runs WHERE kind = 'nightly' ORDER BY started_at").fetchall()
    con.close()
    return [json.loads(c) for (c,) in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cohort", type=Path, required=True)
    parser.add_argument("--code", type=Path, default=REPO, help="code tree to run (e.g. an older checkout)")
    args = parser.parse_args(argv)
    as_of = as_of_of(args.cohort)
    cut = as_of - timedelta(days=1)
    work = REPO / "var" / "bench-nightly" / f"{args.cohort.name}-{args.code.resolve().name}"
    shutil.rmtree(work, ignore_errors=True)
    history, new = split_feeds(args.cohort, f"{cut:%Y-%m-%d}", work / "split")
    db = work / "store.duckdb"
    shutil.copyfile(ingested_store(f"{args.cohort.name}-history", [history], load_rules(), False), db)
    (work / "empty").mkdir()
    runs = [("first run (full build, whole history new)", work / "empty", cut),
            ("one new day", new, as_of), ("no new file, a day later", new, as_of + timedelta(days=1))]
    results = [(label, run_nightly(db, inbox, work / "digest", at, args.code.resolve())) for label, inbox, at in runs]
    for (label, r), counts in zip(results, flow_times(db)):
        steps = ", ".join(f"{k} {v:.2f}" for k, v in counts["seconds"].items())
        print(f"{label}: {r['wall_s']} s wall, {r['peak_rss_mb']} MB peak; build {counts['build']['mode']} "
              f"({counts['build']['patients']} patients); flow steps (s): {steps}; {counts['alerts']} alerts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
