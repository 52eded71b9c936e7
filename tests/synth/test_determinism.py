"""Same seed, same bytes; another seed, another cohort."""

from __future__ import annotations

import sys
import types

import pytest

import cartwatch.synth as synth
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


def test_other_formats_go_through_the_writer_hook(tmp_path, monkeypatch):
    """formats=("hl7",) calls the format module's write_sample_feeds with the CSV rows."""
    calls = []
    fake = types.ModuleType("fake_hl7_writer")
    fake.write_sample_feeds = lambda feeds, out_dir: calls.append((feeds, out_dir)) or []
    monkeypatch.setitem(sys.modules, "fake_hl7_writer", fake)
    monkeypatch.setitem(synth.FORMAT_WRITERS, "hl7", "fake_hl7_writer")
    synth.generate(24, SAMPLE_SEED, tmp_path, formats=("csv", "hl7"))
    (feeds, out_dir), = calls
    assert out_dir == tmp_path and set(feeds) == {"labs", "labs_resend", "vitals", "infusions", "events"}
    assert list(feeds["vitals"][0]) == ["patient_id", "measured_at", "kind", "value", "unit"]


def test_an_unknown_format_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="unknown format"):
        generate(24, SAMPLE_SEED, tmp_path, formats=("xml",))
    assert list(tmp_path.iterdir()) == []
