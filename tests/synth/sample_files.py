"""The committed sample's arguments and a CSV reader, shared by the synth tests."""

from __future__ import annotations

import csv
from pathlib import Path

SAMPLE_PATIENTS, SAMPLE_SEED = 28, 20261122
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample"


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))
