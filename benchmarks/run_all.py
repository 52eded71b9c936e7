"""`make bench`: every benchmark, one after the other, with their figures on standard output."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [["bench_parsers.py"], ["bench_ingest.py", "--patients", "500"]]

if __name__ == "__main__":
    for script, *args in BENCHMARKS:
        print(f"== {script} {' '.join(args)}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *args], check=True)
