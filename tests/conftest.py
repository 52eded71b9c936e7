"""Shared fixtures: the rules, an in-memory store, a normalize context, the Prefect harness."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from sample_paths import LOAD_CLOCK, REPO, SAMPLE, SITE_TZ  # noqa: F401  (re-exported for fixtures)


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
def prefect_harness():
    """One temporary Prefect server for the whole session (about 7 s once)."""
    from prefect.testing.utilities import prefect_test_harness
    with prefect_test_harness():
        yield
