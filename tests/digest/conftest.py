"""The operations tests share tests/ops/opsdata.py (cohort files, the stand-in engine)."""

import sys
from pathlib import Path

OPS = str(Path(__file__).resolve().parents[1] / "ops")
if OPS not in sys.path:
    sys.path.insert(0, OPS)

from opsdata import cohort_db, engine  # noqa: E402,F401  (fixtures)
