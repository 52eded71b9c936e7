"""The fuzz harness, parser layer: hostile files of every format (tests/fuzz_inputs.py) through
the CSV, HL7 and FHIR readers. The loader layer, which stores what they read, is
tests/cartwatch/test_ingest_fuzz.py.

Whatever the input, a reader:
- never raises, except to refuse a whole file it cannot read (CSV: NotAFeed, or a UTF-16 file
  that is not UTF-16), which the loader skips with that reason;
- gives rows only of the four feeds, with exactly that feed's fields as strings or None, or an
  error row whose reason names its position;
- skips nothing silently: every HL7 message gives one error row or one row per OBX, every
  non-blank NDJSON line and every Bundle entry gives at least one row (raw = that line), and every
  CSV line after the header that holds anything but commas, quotes and spaces is part of a row.
The default run tries 300 inputs per test and 200 random byte strings (1,700 in all, about 10 s);
`-m slow` 4,000 per test (20,000, about 2 minutes).
"""

from __future__ import annotations

import codecs
import re
import tempfile
from pathlib import Path

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_inputs import bundle_file, csv_file, hl7_file, mutated_resource, ndjson_file
from transforms.parsers.base import FEED_FIELDS, FEEDS, ParsedRow, batch_columns
from transforms.parsers.csv_feed import NotAFeed, parse_csv_batches
from transforms.parsers.fhir_r4 import parse_fhir_bundle, parse_fhir_ndjson, parse_fhir_resource
from transforms.parsers.hl7_oru import parse_hl7_file, parse_hl7_text

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- invariants ----------------------------------------------------------------------------------

def check_row_shape(row: ParsedRow, prefix: str) -> None:
    assert isinstance(row, ParsedRow) and row.feed in FEEDS and row.line >= 1
    assert isinstance(row.raw, str)
    if row.error is not None:
        assert row.error.startswith(prefix.format(line=row.line)), row.error
        return
    assert tuple(row.fields) == FEED_FIELDS[row.feed] or set(row.fields) == set(FEED_FIELDS[row.feed])
    assert all(v is None or isinstance(v, str) for v in row.fields.values())


def _hl7_messages(text: str) -> list[list[str]]:
    """The messages a file holds, by the CONTRACT's rules, for counting (not parsing)."""
    messages: list[list[str]] = []
    fresh = True
    for seg in re.split(r"\r\n|[\r\n\x0b\x1c]", text):    # MLLP's VT and FS end segments too
        seg = seg.lstrip()
        if not seg:
            continue
        if seg[:3] in ("FHS", "BHS", "BTS", "FTS"):
            fresh = True
        elif seg.startswith("MSH") or fresh:
            messages.append([seg])
            fresh = False
        else:
            messages[-1].append(seg)
    return messages


def check_hl7(text: str) -> None:
    rows = list(parse_hl7_text(text))
    messages = _hl7_messages(text)
    for row in rows:
        check_row_shape(row, "hl7: message {line}: ")
    assert sorted({r.line for r in rows}) == list(range(1, len(messages) + 1))
    for number, segments in enumerate(messages, 1):
        mine = [r for r in rows if r.line == number]
        fs = segments[0][3:4] if segments[0].startswith("MSH") else None
        obx = sum(1 for s in segments[1:] if fs and (s == "OBX" or s.startswith("OBX" + fs)))
        message_error = len(mine) == 1 and mine[0].error and mine[0].raw == "\r".join(segments)
        assert message_error or len(mine) == obx, (number, len(mine), obx)


def check_ndjson(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.ndjson"
        path.write_bytes(data)
        rows = list(parse_fhir_ndjson(path))
        lines = path.read_bytes().split(b"\n")
    # a byte-order mark opening the file is not content: BOM + whitespace is a blank line
    expected = {n for n, line in enumerate(lines, 1)
                if (line.removeprefix(b"\xef\xbb\xbf") if n == 1 else line).strip()}
    if lines and lines[-1] == b"":
        expected.discard(len(lines))
    assert {r.line for r in rows} == expected
    for row in rows:
        check_row_shape(row, "fhir: line {line}: ")


def check_resource(resource: object) -> None:
    rows = parse_fhir_resource(resource, 7, "raw")
    assert rows, "a resource gave no row"
    for row in rows:
        check_row_shape(row, "fhir: line {line}: ")
        assert row.line == 7 and row.raw == "raw"


def check_bundle(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.json"
        path.write_bytes(data)
        rows = list(parse_fhir_bundle(path))
    for row in rows:
        check_row_shape(row, "fhir: ")
    try:
        doc = orjson.loads(data)          # strict RFC 8259, as the parser reads it
    except orjson.JSONDecodeError:
        assert len(rows) == 1 and rows[0].error.startswith("fhir: invalid JSON: ")
        return
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        entries = doc.get("entry")
        count = len(entries) if isinstance(entries, list) else int(entries is not None)
        assert {r.line for r in rows} == set(range(1, count + 1))    # an empty Bundle: no rows
    else:
        assert rows and {r.line for r in rows} == {1}               # a single resource


def _csv_lines(data: bytes) -> list[str]:
    """The physical lines of a CSV file as the reader sees them (after its byte-order mark, UTF-16
    and CR-only handling), for the oracle."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        data = data.decode("utf-16").encode("utf-8")
    data = data.removeprefix(codecs.BOM_UTF8)
    if b"\n" not in data:
        data = data.replace(b"\r", b"\n")
    return [line.decode("utf-8", "replace").removesuffix("\r") for line in data.split(b"\n")]


_NOTHING_SENT = re.compile(r'[\s,"]*')


def check_csv(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.csv"
        path.write_bytes(data)
        try:
            frames = [(b.feed, b.frame) for b in parse_csv_batches(path)]
        except NotAFeed as exc:
            assert str(exc) and "\n" not in str(exc)
            return
        except UnicodeDecodeError:
            assert data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
            return
    if not frames:
        return
    feeds = {feed for feed, _ in frames}
    assert len(feeds) == 1 and all(f.schema == pl.Schema(batch_columns(feed)) for feed, f in frames)
    rows = pl.concat([f for _, f in frames])
    assert rows["line"].is_sorted() and rows["line"].n_unique() == rows.height and rows["line"].min() >= 2
    errors = rows.filter(pl.col("error").is_not_null())
    assert errors["error"].str.starts_with("csv: ").all()
    values = [f for f in FEED_FIELDS[feeds.pop()] if f != "code_system"]   # labs' is always LN
    assert errors.select(values).null_count().sum_horizontal().item() == errors.height * len(values)
    lines = _csv_lines(data)
    covered = set()
    for line, raw in rows.select("line", "raw").iter_rows():
        span = raw.count("\n") + 1
        assert raw == "\n".join(lines[line - 1:line - 1 + span]), (line, raw)
        covered.update(range(line, line + span))
    skipped = [n for n in range(2, len(lines) + 1) if n not in covered and not _NOTHING_SENT.fullmatch(lines[n - 1])]
    assert not skipped, [lines[n - 1][:80] for n in skipped]


# --- the tests: a few hundred inputs each by default, thousands with -m slow ---------------------

def _hl7_files(data):
    raw = data.draw(hl7_file())
    try:
        text = raw.decode("utf-8-sig")         # as the parser decodes a file
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    check_hl7(text)


def _csv_files(data):
    check_csv(data.draw(csv_file()))


def _ndjson_files(data):
    check_ndjson(data.draw(ndjson_file()))


def _resource_mutations(data):
    check_resource(data.draw(mutated_resource()))


def _bundle_files(data):
    check_bundle(data.draw(bundle_file()))


@FAST
@given(st.data())
def test_csv_files(data):
    _csv_files(data)


@FAST
@given(st.data())
def test_hl7_files(data):
    _hl7_files(data)


@FAST
@given(st.data())
def test_ndjson_files(data):
    _ndjson_files(data)


@FAST
@given(st.data())
def test_resource_wrong_types(data):
    _resource_mutations(data)


@FAST
@given(st.data())
def test_bundle_files(data):
    _bundle_files(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.hl7"
        path.write_bytes(b"MSH|^~\\&|X||||||ORU^R01|1|P|2.5\r" + data)
        for row in parse_hl7_file(path):
            check_row_shape(row, "hl7: message {line}: ")
    check_ndjson(data)
    check_bundle(data)
    check_csv(b"patient_id,event_at,event_type,value\n" + data)


@pytest.mark.slow
@SLOW
@given(st.data())
def test_csv_files_thorough(data):
    _csv_files(data)


@pytest.mark.slow
@SLOW
@given(st.data())
def test_hl7_files_thorough(data):
    _hl7_files(data)


@pytest.mark.slow
@SLOW
@given(st.data())
def test_ndjson_files_thorough(data):
    _ndjson_files(data)


@pytest.mark.slow
@SLOW
@given(st.data())
def test_resource_wrong_types_thorough(data):
    _resource_mutations(data)


@pytest.mark.slow
@SLOW
@given(st.data())
def test_bundle_files_thorough(data):
    _bundle_files(data)
