"""The files: contract.md §1 headers, readable CSV, dates before AS_OF, the committed sample current."""

from __future__ import annotations

import csv
from datetime import datetime

import pytest

from cartwatch.synth.archetypes import HORIZON_DAYS
from cartwatch.synth.truth import EPISODE_COLUMNS
from tests.synth.sample_files import SAMPLE_DIR, read_rows
from transforms.parsers.csv_feed import NotAFeed, feed_of_header

# CONTRACT section 1, column for column (labs with every optional column).
CONTRACT_HEADERS = {
    "labs.csv": "patient_id,collected_at,loinc,value,unit,test_name,ref_low,ref_high,resulted_at,"
                "result_status,accession,source_system",
    "labs_resend.csv": "patient_id,collected_at,loinc,value,unit,test_name,ref_low,ref_high,resulted_at,"
                       "result_status,accession,source_system",
    "vitals.csv": "patient_id,measured_at,kind,value,unit",
    "infusions.csv": "patient_id,infused_at,product,infusion_id,target_antigen,indication,site_timezone",
    "events.csv": "patient_id,event_at,event_type,value",
}
FEED_FILES = tuple(CONTRACT_HEADERS)


@pytest.mark.parametrize("name", FEED_FILES)
def test_headers_are_exactly_the_contract_columns(sample, name):
    _, folder = sample
    first_line = (folder / name).read_bytes().split(b"\n", 1)[0]
    assert first_line.decode("utf-8") == CONTRACT_HEADERS[name]


@pytest.mark.parametrize("name", FEED_FILES)
def test_every_line_is_utf8_csv_with_the_header_width(sample, name):
    _, folder = sample
    text = (folder / name).read_bytes().decode("utf-8")
    width = len(CONTRACT_HEADERS[name].split(","))
    assert "\r" not in text and text.endswith("\n")
    assert all(len(row) == width for row in csv.reader(text.splitlines()))


def test_ground_truth_csv_is_not_read_as_a_feed(sample):
    _, folder = sample
    header = (folder / "ground_truth.csv").read_text(encoding="utf-8").split("\n", 1)[0].split(",")
    assert tuple(header) == EPISODE_COLUMNS
    with pytest.raises(NotAFeed):
        feed_of_header(header)


def _instant(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def test_nothing_is_dated_after_as_of_but_the_mistyped_row(sample):
    truth, folder = sample
    as_of = datetime.fromisoformat(truth.as_of)
    future_lines = {r.line for r in truth.rows if r.reason == "future_timestamp"}
    late = []
    for name, column in (("labs.csv", "resulted_at"), ("vitals.csv", "measured_at"), ("events.csv", "event_at")):
        for line, row in enumerate(read_rows(folder / name), start=2):
            at = _instant(row[column])
            if at is not None and at.tzinfo is not None and at > as_of:
                late.append((name, line))
    assert late == [("labs.csv", line) for line in sorted(future_lines)]
    assert truth.as_of == "2026-11-22T00:00:00Z" and HORIZON_DAYS == 174


def test_committed_sample_is_the_current_generator_output(sample):
    """data/sample must be regenerated (its README says how) whenever the generator changes."""
    _, folder = sample
    fresh = {p.name: p.read_bytes() for p in folder.iterdir()}
    committed = {p.name: p.read_bytes() for p in SAMPLE_DIR.iterdir() if p.name in fresh}
    assert committed.keys() == fresh.keys()
    stale = [name for name in fresh if committed[name] != fresh[name]]
    assert stale == [], f"regenerate data/sample: {stale} differ"


def test_committed_sample_is_small():
    assert sum(p.stat().st_size for p in SAMPLE_DIR.iterdir()) < 2_000_000


def test_readme_tells_every_patient_with_the_command():
    readme = (SAMPLE_DIR / "README.md").read_text(encoding="utf-8")
    truth_ids = {row["infusion_id"] for row in read_rows(SAMPLE_DIR / "ground_truth.csv")}
    assert "python -m cartwatch.synth --patients 28 --seed 20261122 --out data/sample" in readme
    assert all(f"({infusion_id})" in readme for infusion_id in truth_ids)


def test_as_of_file_matches_the_ground_truth(sample):
    truth, folder = sample
    assert (folder / "AS_OF").read_text() == truth.as_of + "\n"


def test_the_sample_readme_counts_rows_through_the_batch_readers():
    """Regression: the README writer called a reader that the columnar staging removed."""
    from cartwatch.synth.readme import _rows_read
    from sample_paths import SAMPLE
    assert _rows_read(SAMPLE / "hl7" / "labs_batch.hl7") == "1223"
    assert _rows_read(SAMPLE / "fhir" / "Observation.ndjson") == "2788"
    assert _rows_read(SAMPLE / "missing.hl7") == "-"
