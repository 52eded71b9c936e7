"""The sample cohort (data/sample) loaded and evaluated as of data/sample/AS_OF, once per session,
without Prefect (ingest + evaluate, what `cartwatch ingest` and `export --as-of` run)."""

from __future__ import annotations

from datetime import datetime

import pytest

from sample_paths import LOAD_CLOCK, SAMPLE, SITE_TZ

AS_OF = datetime.fromisoformat((SAMPLE / "AS_OF").read_text().strip().replace("Z", "+00:00"))


@pytest.fixture(scope="session")
def sample_db(tmp_path_factory, rules):
    from cartwatch.incremental import evaluate
    from cartwatch.ingest import ingest_paths
    from cartwatch.store import open_store

    path = tmp_path_factory.mktemp("explain") / "sample.duckdb"
    con = open_store(path)
    ingest_paths(con, [SAMPLE], rules, site_tz=SITE_TZ, now=LOAD_CLOCK)
    evaluate(con, rules, as_of=AS_OF, as_loaded=False, site_tz=SITE_TZ)
    con.close()
    return path
