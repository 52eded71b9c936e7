"""Constants the tests share (a plain module: `conftest` is ambiguous with several conftest files)."""

from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
SITE_TZ = "America/New_York"
# A fixed load clock, after every sample result (data/sample/AS_OF is 2026-11-22T00:00Z), so
# "from the future" is deterministic.
LOAD_CLOCK = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
SAMPLE_AS_OF = datetime.fromisoformat((SAMPLE / "AS_OF").read_text().strip().replace("Z", "+00:00"))
