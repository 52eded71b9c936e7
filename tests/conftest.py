"""Shared fixtures: the rules, an in-memory store, a normalize context, the evaluated sample
database, the Prefect harness."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from sample_paths import LOAD_CLOCK, REPO, SAMPLE, SAMPLE_AS_OF, SITE_TZ  # noqa: F401  (re-exported for fixtures)


@pytest.fixture(scope="session")
def rules():
    from transforms.rules import load_rules
    return load_rules()


@pytest.fixture
def store():
    from cartwatch.store import open_store
    con = open_store(":memory:")
    yield con
    con.close()


@pytest.fixture
def ctx(rules, store):
    from cartwatch.ingest import staging_reference
    return staging_reference(store, rules, SITE_TZ, LOAD_CLOCK)


@pytest.fixture(scope="session")
def sample_db(tmp_path_factory, rules):
    """data/sample loaded and evaluated as of data/sample/AS_OF, once per session, without Prefect
    (what `cartwatch ingest` and a nightly's evaluation run). A database file: a test that evaluates
    again works on a copy."""
    from cartwatch.incremental import evaluate
    from cartwatch.ingest import ingest_paths
    from cartwatch.store import open_store

    path = tmp_path_factory.mktemp("sample") / "sample.duckdb"
    con = open_store(path)
    ingest_paths(con, [SAMPLE], rules, site_tz=SITE_TZ, now=LOAD_CLOCK)
    evaluate(con, rules, as_of=SAMPLE_AS_OF, as_loaded=False, site_tz=SITE_TZ)
    con.close()
    return path


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for the whole session (about 7 s once)."""
    from prefect.testing.utilities import prefect_test_harness
    with prefect_test_harness():
        yield
