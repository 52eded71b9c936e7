"""Same seed, same bytes; another seed, another cohort."""

from __future__ import annotations

from cartwatch.synth import generate

from tests.synth.sample_files import SAMPLE_PATIENTS, SAMPLE_SEED


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_writes_identical_bytes(sample, tmp_path):
    _, first = sample
    generate(SAMPLE_PATIENTS, SAMPLE_SEED, tmp_path)
    assert _files(tmp_path) == _files(first)


def test_another_seed_changes_the_values(sample, tmp_path):
    _, first = sample
    generate(SAMPLE_PATIENTS, SAMPLE_SEED + 1, tmp_path)
    assert (tmp_path / "labs.csv").read_bytes() != (first / "labs.csv").read_bytes()
