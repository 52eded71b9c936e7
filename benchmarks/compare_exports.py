"""Check that a change of how the engine evaluates does not change what it finds.

    .venv/bin/python benchmarks/compare_exports.py --out var/compare/baseline          # before
    .venv/bin/python benchmarks/compare_exports.py --out var/compare/now --against var/compare/baseline

For each dataset (data/sample/ and synthetic cohorts made with `cartwatch synth`, seeds 1 and 2,
300 patients by default) it writes `export windows` and `export flags` (CSV) in two ways:

- `full/`: everything ingested, one full build as of the dataset's AS_OF (what `cartwatch export`
  does);
- `nightly/`: the feeds split at the day before AS_OF, the history ingested and evaluated as of the
  split, then the last day's files ingested and evaluated incrementally as of AS_OF (what
  `cartwatch nightly` does on the next night). The split store's sources (file:line) differ from the
  full ones, so `nightly/` is compared with its own baseline and with a full rebuild of the same
  store (`nightly_full/`).

With --against, every file must be byte-identical to the baseline's, rows compared as written and,
failing that, sorted (reported as such). Ingested stores are cached under var/compare/stores/ (the
ingest is not what this compares); --reingest rebuilds them.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cartwatch.build import build  # noqa: E402
from cartwatch.export import export_table  # noqa: E402
from cartwatch.incremental import evaluate  # noqa: E402
from cartwatch.ingest import ingest_paths  # noqa: E402
from cartwatch.store import open_store  # noqa: E402
from transforms.rules import load_rules  # noqa: E402

SITE_TZ = "America/New_York"
EXPORTS = ("windows", "flags")
STORES = REPO / "var" / "compare" / "stores"
# the column that places a row in time, per feed file (local date prefix is enough to split by day)
TIME_COLUMN = {"labs.csv": "collected_at", "vitals.csv": "measured_at", "events.csv": "event_at",
               "infusions.csv": "infused_at"}


def as_of_of(folder: Path) -> datetime:
    return datetime.fromisoformat((folder / "AS_OF").read_text().strip().replace("Z", "+00:00"))


def ensure_cohort(name: str) -> Path:
    """`p<N>-s<seed>`: a synthetic cohort under var/cohorts/, generated once."""
    folder = REPO / "var" / "cohorts" / name
    if not (folder / "AS_OF").exists():
        from cartwatch.synth import generate
        patients, seed = name[1:].split("-s")
        generate(int(patients), int(seed), folder)
    return folder


def dataset_folder(name: str) -> Path:
    return REPO / "data" / "sample" if name == "sample" else ensure_cohort(name)


def split_feeds(folder: Path, cut: str, out: Path) -> tuple[Path, Path]:
    """history/ (rows before the local date `cut`) and new/ (from it on), per CSV feed file."""
    history, new = out / "history", out / "new"
    for part in (history, new):
        part.mkdir(parents=True, exist_ok=True)
    for path in sorted(folder.glob("*.csv")):
        if path.name.startswith("ground_truth"):
            continue
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        column = rows[0].index(TIME_COLUMN[path.name]) if path.name in TIME_COLUMN else None
        late = [r for r in rows[1:] if column is not None and r[column][:10] >= cut]
        early = [r for r in rows[1:] if column is None or r[column][:10] < cut]
        for part, part_rows in ((history, early), (new, late)):
            if part_rows:
                with open(part / path.name, "w", newline="", encoding="utf-8") as handle:
                    csv.writer(handle, lineterminator="\n").writerows([rows[0], *part_rows])
    return history, new


def ingested_store(name: str, paths: list[Path], rules, reingest: bool) -> Path:
    """A cached store with `paths` ingested (copied before each use: builds write to it)."""
    db = STORES / f"{name}.duckdb"
    if reingest or not db.exists():
        STORES.mkdir(parents=True, exist_ok=True)
        db.unlink(missing_ok=True)
        con = open_store(db)
        ingest_paths(con, paths, rules, site_tz=SITE_TZ, now=datetime.now(timezone.utc))
        con.close()
    return db


def working_copy(db: Path, work: Path) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    copy = work / db.name
    shutil.copyfile(db, copy)
    wal = db.with_name(db.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
    return copy


def export_all(con, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for table in EXPORTS:
        export_table(con, table, "csv", out / f"{table}.csv")


def full_exports(name: str, folder: Path, rules, out: Path, work: Path, reingest: bool) -> float:
    con = open_store(working_copy(ingested_store(name, [folder], rules, reingest), work))
    started = time.perf_counter()
    build(con, rules, as_of=as_of_of(folder), as_loaded=False, site_tz=SITE_TZ)
    seconds = time.perf_counter() - started
    export_all(con, out / name / "full")
    con.close()
    return seconds


def nightly_exports(name: str, folder: Path, rules, out: Path, work: Path, reingest: bool) -> dict:
    """History evaluated as of the cut, then one new day incrementally; and a full rebuild of it."""
    as_of = as_of_of(folder)
    cut = as_of - timedelta(days=1)
    history, new = split_feeds(folder, f"{cut:%Y-%m-%d}", work / "split" / name)
    con = open_store(working_copy(ingested_store(f"{name}-history", [history], rules, reingest), work))
    timings = {"first": evaluate(con, rules, as_of=cut, as_loaded=False, site_tz=SITE_TZ)}
    ingest_paths(con, [new], rules, site_tz=SITE_TZ, now=datetime.now(timezone.utc))
    timings["new_day"] = evaluate(con, rules, as_of=as_of, as_loaded=False, site_tz=SITE_TZ)
    timings["no_new_file"] = evaluate(con, rules, as_of=as_of, as_loaded=False, site_tz=SITE_TZ)
    export_all(con, out / name / "nightly")
    evaluate(con, rules, as_of=as_of, as_loaded=False, site_tz=SITE_TZ, full=True)
    export_all(con, out / name / "nightly_full")
    con.close()
    return {k: f"{r.mode} {r.patients} patients {r.seconds:.2f} s" for k, r in timings.items()}


def same(a: Path, b: Path) -> str | None:
    """None when identical; 'sorted' when identical once rows are sorted; else a difference."""
    if a.read_bytes() == b.read_bytes():
        return None
    la, lb = a.read_text().splitlines(), b.read_text().splitlines()
    if la[0] == lb[0] and sorted(la[1:]) == sorted(lb[1:]):
        return "identical after sorting rows"
    diff = next((i for i, (x, y) in enumerate(zip(la, lb)) if x != y), min(len(la), len(lb)))
    return f"DIFFERENT ({len(la)} vs {len(lb)} lines; first at line {diff + 1})"


def compare(out: Path, baseline: Path, pairs: list[tuple[str, str]]) -> bool:
    ok = True
    for left, right in pairs:
        for a in sorted((baseline / left).rglob("*.csv")):
            rel = a.relative_to(baseline / left)
            b = out / right / rel
            verdict = same(a, b) if b.exists() else "MISSING"
            print(f"  {right}/{rel} vs {left}: {verdict or 'identical'}")
            ok = ok and (verdict is None or verdict.startswith("identical"))
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--against", type=Path, help="baseline folder to compare with")
    parser.add_argument("--datasets", default="sample,p300-s1,p300-s2")
    parser.add_argument("--no-nightly", dest="nightly", action="store_false", help="full builds only")
    parser.add_argument("--reingest", action="store_true")
    args = parser.parse_args(argv)
    rules = load_rules()
    work = REPO / "var" / "compare" / "work"
    ok = True
    for name in args.datasets.split(","):
        folder = dataset_folder(name)
        print(f"{name}: full build {full_exports(name, folder, rules, args.out, work, args.reingest):.2f} s")
        if args.nightly:
            print(f"{name}: nightly {nightly_exports(name, folder, rules, args.out, work, args.reingest)}")
            ok = compare(args.out, args.out, [(f"{name}/nightly_full", f"{name}/nightly")]) and ok
        if args.against:
            ok = compare(args.out, args.against, [(name, name)]) and ok
    shutil.rmtree(work, ignore_errors=True)
    print("all identical" if ok else "DIFFERENCES FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
