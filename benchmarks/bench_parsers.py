"""Parse throughput of the HL7 ORU and FHIR NDJSON parsers (a script, not a test).

Generates N lab results (default 1,000,000) with the writers, as an HL7 batch file of ORU^R01
messages (20 OBX each) and as an NDJSON export of Observations, then times a full parse of each
file and prints results per second. Usage:

    .venv/bin/python benchmarks/bench_parsers.py [--results N] [--keep DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transforms.parsers.fhir_r4 import parse_fhir_ndjson  # noqa: E402
from transforms.parsers.fhir_writer import lab_observation, write_ndjson  # noqa: E402
from transforms.parsers.hl7_oru import parse_hl7_file  # noqa: E402
from transforms.parsers.hl7_writer import join_messages, write_oru_messages  # noqa: E402

# (LOINC, name, unit, low, high) - a CAR-T monitoring panel
PANEL = [
    ("2276-4", "Ferritin", "ng/mL", 30, 20000), ("3255-7", "Fibrinogen", "mg/dL", 80, 500),
    ("1920-8", "AST", "U/L", 10, 600), ("1742-6", "ALT", "U/L", 7, 600),
    ("2532-0", "LDH", "U/L", 120, 2000), ("1975-2", "Bilirubin total", "mg/dL", 0.1, 8),
    ("2571-8", "Triglycerides", "mg/dL", 50, 900), ("2160-0", "Creatinine", "mg/dL", 0.5, 4),
    ("1988-5", "CRP", "mg/L", 1, 300), ("26881-3", "IL-6", "pg/mL", 1, 5000),
    ("777-3", "Platelets", "10*9/L", 5, 400), ("751-8", "ANC", "10*9/L", 0.05, 10),
    ("718-7", "Hemoglobin", "g/dL", 6, 16), ("6690-2", "WBC", "10*9/L", 0.2, 20),
    ("5902-2", "PT", "s", 10, 30), ("6301-6", "INR", "{ratio}", 0.8, 3),
    ("3173-2", "aPTT", "s", 22, 80), ("48065-7", "D-dimer", "mg/L FEU", 0.2, 20),
    ("8310-5", "Body temperature", "Cel", 36, 40.5), ("1968-7", "Bilirubin direct", "mg/dL", 0, 5),
]


def lab_rows(n: int, seed: int = 7) -> Iterator[dict]:
    """n lab results: patients with daily 20-result panels, a few `<x` values and corrections."""
    rnd = random.Random(seed)
    start = datetime(2025, 3, 1, 6, 0, tzinfo=timezone(timedelta(hours=-5)))
    for i in range(n):
        draw, slot = divmod(i, len(PANEL))
        code, name, unit, low, high = PANEL[slot]
        at = start + timedelta(hours=12 * (draw % 60), minutes=slot)
        value = f"{rnd.uniform(low, high):.2f}"
        yield {
            "patient_id": f"MRN{draw // 60:07d}", "collected_at": at.isoformat(),
            "code": code, "code_system": "LN", "value": value if rnd.random() > 0.01 else f"<{low}",
            "unit": unit, "test_name": name, "ref_low": str(low), "ref_high": str(high),
            "resulted_at": (at + timedelta(hours=1)).isoformat(),
            "result_status": "F" if rnd.random() > 0.02 else "C",
            "accession": f"ACC{draw:09d}", "source_system": "LIS",
        }


def timed(label: str, fn: Callable[[], int]) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = fn()
    dt = time.perf_counter() - t0
    print(f"  {label:<34} {n:>10,} in {dt:7.2f} s")
    return n, dt


def count(rows) -> int:
    n = errors = 0
    for row in rows:
        n += 1
        errors += row.error is not None
    if errors:
        raise SystemExit(f"unexpected error rows: {errors}")
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="write the files here and keep them")
    ap.add_argument("--json", type=Path, help="also write the figures to this file (make bench)")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="cartwatch-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    hl7_path, ndjson_path = folder / "bench.hl7", folder / "bench.ndjson"
    print(f"cartwatch parser benchmark: {args.results:,} results per format, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")

    def write_hl7() -> int:
        hl7_path.write_text(join_messages(write_oru_messages(lab_rows(args.results)), batch=True))
        return args.results

    timed("generate HL7 (writer)", write_hl7)
    timed("generate FHIR NDJSON (writer)",
          lambda: write_ndjson(ndjson_path, map(lab_observation, lab_rows(args.results))))
    print(f"  files: HL7 {hl7_path.stat().st_size / 1e6:,.0f} MB, "
          f"NDJSON {ndjson_path.stat().st_size / 1e6:,.0f} MB")
    n_hl7, t_hl7 = timed("parse HL7 ORU^R01", lambda: count(parse_hl7_file(hl7_path)))
    n_fhir, t_fhir = timed("parse FHIR NDJSON", lambda: count(parse_fhir_ndjson(ndjson_path)))
    print(f"HL7 ORU^R01:  {n_hl7 / t_hl7:>10,.0f} results/s  (target 50,000)")
    print(f"FHIR NDJSON:  {n_fhir / t_fhir:>10,.0f} results/s  (target 100,000)")
    if args.json:
        args.json.write_text(json.dumps({
            "hl7": {"results": n_hl7, "seconds": round(t_hl7, 3), "bytes": hl7_path.stat().st_size},
            "fhir": {"results": n_fhir, "seconds": round(t_fhir, 3), "bytes": ndjson_path.stat().st_size}}))
    if not args.keep:
        for p in (hl7_path, ndjson_path):
            p.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
