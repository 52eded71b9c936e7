"""Synthetic CAR-T cohorts: the four CSV feeds of contract.md §1 plus the ground truth they imply.

    generate(patients=30, seed=20261122, out_dir=Path("data/sample"))

writes `labs.csv`, `vitals.csv`, `infusions.csv`, `events.csv` (and `labs_resend.csv` when a
patient's labs are re-sent), `ground_truth.csv`, `ground_truth.json` and `AS_OF` (the moment after
which nothing is expected: the sample's "now"). Same arguments, same bytes.

The pipeline: archetypes.py designs each patient; trajectories.py turns the design into timed
rows; units.py writes them in the site's units; oracle.py computes the expected IEC-HS verdict
from the written values with the rules file's numbers; cohort.py redraws a patient whose verdict
would hinge on an open reading of the rules; writer.py and dataquality.py produce the files;
truth.py the ground truth.
"""

from __future__ import annotations

import importlib
from datetime import date
from pathlib import Path

from cartwatch.synth import dataquality, truth as truth_files, writer
from cartwatch.synth.archetypes import ARCHETYPES
from cartwatch.synth.cohort import build_cohort, horizon
from cartwatch.synth.truth import GroundTruth
from transforms.rules import load_rules

__all__ = ["ARCHETYPES", "DEFAULT_START", "GroundTruth", "generate"]

DEFAULT_START = date(2026, 6, 1)
MANAGED_FILES = ("labs.csv", "labs_resend.csv", "vitals.csv", "infusions.csv", "events.csv",
                 "ground_truth.csv", "ground_truth.json", "AS_OF", ".cartwatchignore")
# The answer key sits beside the feeds: an inbox of this folder does not load it (cartwatch/loader.py).
IGNORE_TEXT = "# not feeds: the sample's answer key\nground_truth.csv\nground_truth.json\n"
# Other wire formats of the same rows. Each module provides
# `write_sample_feeds(feeds: dict[str, list[dict[str, str]]], out_dir: Path) -> list[Path]`,
# feeds keyed like the CSV files (labs, labs_resend, vitals, infusions, events), rows with the
# contract.md §1 column names. Loaded beside the CSVs, their rows are duplicates of the CSV rows.
FORMAT_WRITERS = {"hl7": "transforms.parsers.hl7_writer", "fhir": "transforms.parsers.fhir_writer"}


def generate(patients: int, seed: int, out_dir: Path, start: date | None = None,
             formats: tuple[str, ...] = ("csv",), workers: int = 1) -> GroundTruth:
    """Write a cohort of `patients` (the first 24 cover every archetype once) and its ground truth.

    `workers` > 1 builds patients in that many processes (same bytes as one)."""
    unknown = set(formats) - {"csv", *FORMAT_WRITERS}
    if unknown:
        raise ValueError(f"unknown format(s) {', '.join(sorted(unknown))}: csv, {', '.join(FORMAT_WRITERS)}")
    rules = load_rules()
    start = start or DEFAULT_START
    cohort = build_cohort(patients, seed, start, rules, workers)
    quality = {s.patient.number: s.patient.design.quality for s in cohort if s.patient.design.quality}
    frames = dataquality.apply(writer.feed_frames(cohort, rules), quality)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in MANAGED_FILES:
        (out_dir / name).unlink(missing_ok=True)
    for feed, frame in frames.items():
        writer.write_csv(frame, feed.split("_")[0], out_dir / f"{feed}.csv")
    rows = truth_files.link_versions(truth_files.row_truths(frames), frames)
    truth = GroundTruth(
        seed=seed, patients=patients, start=start, as_of=truth_files.as_of_text(horizon(start)),
        rules_version=rules.version, episodes=tuple(truth_files.episode_truths(cohort, rows, rules)),
        rows=tuple(rows), files=tuple(truth_files.file_truths(frames)))
    truth_files.write(truth, out_dir)
    (out_dir / "AS_OF").write_text(truth.as_of + "\n", encoding="utf-8")
    (out_dir / ".cartwatchignore").write_text(IGNORE_TEXT, encoding="utf-8")
    for fmt in formats:
        if fmt != "csv":
            _write_format(fmt, frames, out_dir)
    return truth


def _write_format(fmt: str, frames: dict, out_dir: Path) -> list[Path]:
    module = importlib.import_module(FORMAT_WRITERS[fmt])
    write = getattr(module, "write_sample_feeds", None)
    if write is None:
        raise NotImplementedError(f"{module.__name__} has no write_sample_feeds(feeds, out_dir) yet")
    feeds = {feed: frame.select(writer.COLUMNS[feed.split("_")[0]]).to_dicts() for feed, frame in frames.items()}
    return write(feeds, out_dir)
