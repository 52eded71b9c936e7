"""Fuzzing the HL7 and FHIR parsers with mutated real-shaped input (hypothesis).

Mutations: truncations, deleted and duplicated separators, random characters and bytes (MLLP
bytes and segment ends included), swapped, dropped and duplicated segments or lines, broken JSON,
keys removed and values replaced by values of the wrong JSON type. Whatever the input, a parser:
- never raises;
- gives rows only of the four feeds, with exactly that feed's fields as strings or None, or an
  error row whose reason names its position;
- skips nothing silently: every HL7 message gives one error row or one row per OBX, every
  non-blank NDJSON line and every Bundle entry gives at least one row (raw = that line).
The default run tries a few hundred inputs per test; `-m slow` tries thousands.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transforms.parsers.base import FEED_FIELDS, FEEDS, ParsedRow
from transforms.parsers.fhir_r4 import parse_fhir_bundle, parse_fhir_ndjson, parse_fhir_resource
from transforms.parsers.fhir_writer import (blood_pressure_panel, event_administration,
                                            infusion_procedure, lab_observation, vital_observation)
from transforms.parsers.hl7_oru import parse_hl7_file, parse_hl7_text
from transforms.parsers.hl7_writer import join_messages, write_oru_messages

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- corpora -------------------------------------------------------------------------------------

HL7_CORPUS = [p.read_bytes().decode("utf-8") for p in sorted((FIXTURES / "hl7").glob("*.hl7"))]
_sample_rows = [
    {"patient_id": f"P{i % 3}", "collected_at": f"2025-03-0{1 + i % 9}T0{i % 10}:15:00-05:00",
     "code": code, "code_system": system, "value": value, "unit": "U/L", "test_name": "T|^~\\&",
     "ref_low": "-1", "ref_high": "40", "resulted_at": None, "result_status": "FCXP"[i % 4],
     "accession": f"A{i // 4}", "source_system": "LIS"}
    for i, (code, system, value) in enumerate(
        [("1920-8", "LN", "55"), ("AST", "L", "<5"), ("2276-4", "LN", "1:2"), ("X", "99LAB", "text")] * 3)
]
HL7_CORPUS.append(join_messages(write_oru_messages(_sample_rows, max_results=2), batch=True))

FHIR_LINES = [line for line in (FIXTURES / "fhir" / "export.ndjson").read_text().splitlines() if line.strip()]
_vital = {"patient_id": "P1", "measured_at": "2025-03-01T08:00:00Z", "kind": "sbp", "value": "84",
          "unit": "mm[Hg]"}
FHIR_LINES += [orjson.dumps(r).decode() for r in (
    lab_observation(_sample_rows[1]), vital_observation(_vital),
    blood_pressure_panel(_vital, dict(_vital, kind="dbp", value="48")),
    infusion_procedure({"patient_id": "P1", "infused_at": "2025-03-01T10:00:00Z",
                        "product": "Carvykti", "infusion_id": "i1"}),
    event_administration({"patient_id": "P1", "event_at": "2025-03-02T10:00:00Z",
                          "event_type": "tocilizumab", "value": "8"}),
)]
BUNDLE = json.loads((FIXTURES / "fhir" / "bundle.json").read_text())

# --- mutations -----------------------------------------------------------------------------------

_NOISE = st.text(st.sampled_from(list("|^~\\&\r\n\x0b\x1c #$.XFSTRE0123456789-+:<>MSHOBXPID\"{}[],é\x00\ufeff")),
                 min_size=1, max_size=6)


@st.composite
def mutated_text(draw, corpus: list[str], separators: str) -> str:
    """A corpus text with 1-6 mutations applied (character-level and line-level)."""
    text = draw(st.sampled_from(corpus))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["truncate", "delete_sep", "dup_sep", "insert", "swap", "drop",
                                   "dup_line", "replace_span"]))
        text = _apply(draw, op, text, separators)
    return text


def _apply(draw, op: str, text: str, separators: str) -> str:
    if not text:
        return draw(_NOISE)
    pos = draw(st.integers(0, len(text)))
    seps = [i for i, c in enumerate(text) if c in separators]
    if op == "truncate":
        return text[:pos]
    if op in ("delete_sep", "dup_sep") and seps:
        i = draw(st.sampled_from(seps))
        return text[:i] + text[i + 1:] if op == "delete_sep" else text[:i] + text[i] + text[i:]
    if op == "insert":
        return text[:pos] + draw(_NOISE) + text[pos:]
    if op == "replace_span":
        end = draw(st.integers(pos, min(len(text), pos + 12)))
        return text[:pos] + draw(_NOISE) + text[end:]
    lines = re.split(r"(?<=\r\n)|(?<=[\r\n])(?!\n)", text)
    lines = [x for x in lines if x]
    if len(lines) < 2:
        return text
    i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
    if op == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "drop":
        del lines[i]
    elif op == "dup_line":
        lines.insert(j, lines[i])
    return "".join(lines)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated_resource(draw) -> object:
    """A corpus resource with keys deleted and values replaced by wrong-type values."""
    resource = json.loads(draw(st.sampled_from(FHIR_LINES[:15] + FHIR_LINES[-5:])))
    for _ in range(draw(st.integers(1, 5))):
        paths = list(_paths(resource))
        path = draw(st.sampled_from(paths))
        if not path:
            if draw(st.integers(0, 9)) == 0:
                resource = draw(_JSON_VALUES)
            continue
        parent = resource
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_JSON_VALUES)
    return resource


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


# --- the tests: a few hundred inputs each by default, thousands with -m slow ---------------------

def _hl7_mutations(data):
    check_hl7(data.draw(mutated_text(HL7_CORPUS, "|^~\\&\r\n")))


def _ndjson_mutations(data):
    lines = data.draw(st.lists(mutated_text(FHIR_LINES, '{}[]",:'), min_size=1, max_size=6))
    check_ndjson("\n".join(line.replace("\n", " ").replace("\r", " ") for line in lines).encode())


def _resource_mutations(data):
    check_resource(data.draw(mutated_resource()))


def _bundle_mutations(data):
    bundle = json.loads(json.dumps(BUNDLE))
    entries = bundle["entry"]
    for _ in range(data.draw(st.integers(0, 4))):
        i = data.draw(st.integers(0, len(entries) - 1)) if entries else 0
        op = data.draw(st.sampled_from(["wrong", "drop", "resource", "dup"]))
        if not entries:
            break
        if op == "wrong":
            entries[i] = data.draw(_JSON_VALUES)
        elif op == "drop":
            del entries[i]
        elif op == "resource":
            entries[i] = {"resource": data.draw(mutated_resource())}
        else:
            entries.append(entries[i])
    text = json.dumps(bundle)
    if data.draw(st.booleans()):
        text = data.draw(mutated_text([text], '{}[]",:'))
    check_bundle(text.encode("utf-8", "surrogatepass"))


@FAST
@given(st.data())
def test_hl7_mutations(data):
    _hl7_mutations(data)


@FAST
@given(st.data())
def test_ndjson_mutations(data):
    _ndjson_mutations(data)


@FAST
@given(st.data())
def test_resource_wrong_types(data):
    _resource_mutations(data)


@FAST
@given(st.data())
def test_bundle_mutations(data):
    _bundle_mutations(data)


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


@pytest.mark.slow
@SLOW
@given(st.data())
def test_hl7_mutations_thorough(data):
    _hl7_mutations(data)


@pytest.mark.slow
@SLOW
@given(st.data())
def test_ndjson_mutations_thorough(data):
    _ndjson_mutations(data)


@pytest.mark.slow
@SLOW
@given(st.data())
def test_resource_wrong_types_thorough(data):
    _resource_mutations(data)


@pytest.mark.slow
@SLOW
@given(st.data())
def test_bundle_mutations_thorough(data):
    _bundle_mutations(data)
