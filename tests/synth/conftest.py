"""One generated sample per test session (the committed data/sample's arguments), on disk and in memory."""

from __future__ import annotations

import pytest

from cartwatch.synth import DEFAULT_START, generate
from cartwatch.synth.cohort import build_cohort
from tests.synth.sample_files import SAMPLE_PATIENTS, SAMPLE_SEED


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    """(ground truth, folder) of a fresh generation with the sample's arguments."""
    out = tmp_path_factory.mktemp("sample")
    return generate(SAMPLE_PATIENTS, SAMPLE_SEED, out), out


@pytest.fixture(scope="session")
def cohort(rules):
    return build_cohort(SAMPLE_PATIENTS, SAMPLE_SEED, DEFAULT_START, rules)
