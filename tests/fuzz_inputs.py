"""Hostile feed files for the fuzz harness: real-shaped corpora of the three formats and the
hypothesis strategies that damage them. Two layers use them: the parsers
(tests/transforms/parsers/test_parser_fuzz.py) and the loader, which stores what the parsers read
(tests/cartwatch/test_ingest_fuzz.py).

Damage, inside a text: truncations, deleted and duplicated separators, inserted noise (MLLP bytes,
line ends, quotes, NUL, a byte-order mark), replaced spans, swapped, dropped and duplicated lines
or segments; for JSON, keys removed and values replaced by values of the wrong type. Around a
whole file (`csv_file`, `hl7_file`, `ndjson_file`, `bundle_file`): encodings (UTF-8 with or without
a byte-order mark, UTF-16, Latin-1, a stray byte that is no UTF-8), line ends (LF, CRLF, CR, a mix,
vertical tabs, MLLP framing), huge fields, a header naming a column twice, empty and blank files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import orjson
from hypothesis import strategies as st

from transforms.parsers.fhir_writer import (blood_pressure_panel, event_administration,
                                            infusion_procedure, lab_observation, to_bundle,
                                            vital_observation)
from transforms.parsers.hl7_writer import join_messages, write_oru_messages

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"

# --- corpora -------------------------------------------------------------------------------------

HL7_CORPUS = [p.read_bytes().decode("utf-8") for p in sorted((FIXTURES / "hl7").glob("*.hl7"))]
SAMPLE_ROWS = [
    {"patient_id": f"P{i % 3}", "collected_at": f"2025-03-0{1 + i % 9}T0{i % 10}:15:00-05:00",
     "code": code, "code_system": system, "value": value, "unit": "U/L", "test_name": "T|^~\\&",
     "ref_low": "-1", "ref_high": "40", "resulted_at": None, "result_status": "FCXP"[i % 4],
     "accession": f"A{i // 4}", "source_system": "LIS"}
    for i, (code, system, value) in enumerate(
        [("1920-8", "LN", "55"), ("AST", "L", "<5"), ("2276-4", "LN", "1:2"), ("X", "99LAB", "text")] * 3)
]
HL7_CORPUS.append(join_messages(write_oru_messages(SAMPLE_ROWS, max_results=2), batch=True))

FHIR_LINES = [line for line in (FIXTURES / "fhir" / "export.ndjson").read_text().splitlines() if line.strip()]
_VITAL = {"patient_id": "P1", "measured_at": "2025-03-01T08:00:00Z", "kind": "sbp", "value": "84",
          "unit": "mm[Hg]"}
FHIR_LINES += [orjson.dumps(r).decode() for r in (
    lab_observation(SAMPLE_ROWS[1]), vital_observation(_VITAL),
    blood_pressure_panel(_VITAL, dict(_VITAL, kind="dbp", value="48")),
    infusion_procedure({"patient_id": "P1", "infused_at": "2025-03-01T10:00:00Z",
                        "product": "Carvykti", "infusion_id": "i1"}),
    event_administration({"patient_id": "P1", "event_at": "2025-03-02T10:00:00Z",
                          "event_type": "tocilizumab", "value": "8"}),
)]
BUNDLE = json.loads((FIXTURES / "fhir" / "bundle.json").read_text())


def _sample_head(name: str, rows: int = 8) -> str:
    with open(SAMPLE / name, encoding="utf-8") as handle:
        return "".join(next(handle) for _ in range(rows + 1))


# The four CSV feeds as the sample sends them, and a labs extract with every quoting case the CSV
# reader handles: a quoted thousands group, a newline and doubled quotes inside quotes, a stray
# quote, a blank line, a line of commas, a short row, non-ASCII text.
CSV_CORPUS = [_sample_head(name) for name in ("labs.csv", "vitals.csv", "infusions.csv", "events.csv")]
CSV_CORPUS.append(
    "patient_id,collected_at,loinc,value,unit,test_name,accession\n"
    'P1,2026-06-01T08:00:00Z,2276-4,"1,250",ng/mL,Ferritin,A1\n'
    'P1,2026-06-01T08:00:00Z,1920-8,40,U/L,"AST\nline two",A2\n'
    'P2,2026-06-01T08:00:00Z,1742-6,"55",U/L,"ALT ""GPT""",A3\n'
    "\n"
    ",,,,,,\n"
    'P3,ab"c,2276-4,5,ng/mL,Ferritine é,A4\n'
    "P3,2026-06-01T08:00:00Z,x\n"
    "P4,2026-06-01T09:00:00Z,3255-7,0.9,g/L,Fibrinogène,A5\n")

# --- damage inside a text ----------------------------------------------------------------------

NOISE = st.text(st.sampled_from(list("|^~\\&\r\n\x0b\x1c #$.XFSTRE0123456789-+:<>MSHOBXPID\"{}[],é\x00\ufeff")),
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
        return draw(NOISE)
    pos = draw(st.integers(0, len(text)))
    seps = [i for i, c in enumerate(text) if c in separators]
    if op == "truncate":
        return text[:pos]
    if op in ("delete_sep", "dup_sep") and seps:
        i = draw(st.sampled_from(seps))
        return text[:i] + text[i + 1:] if op == "delete_sep" else text[:i] + text[i] + text[i:]
    if op == "insert":
        return text[:pos] + draw(NOISE) + text[pos:]
    if op == "replace_span":
        end = draw(st.integers(pos, min(len(text), pos + 12)))
        return text[:pos] + draw(NOISE) + text[end:]
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


JSON_VALUES = st.recursive(
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
                resource = draw(JSON_VALUES)
            continue
        parent = resource
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    return resource


# --- whole files ---------------------------------------------------------------------------------

LINE_ENDS = ("\n", "\r\n", "\r", "mixed", "\x0b")
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "latin-1", "stray byte")
HUGE_FIELD = 200_000      # past the csv module's field limit (131,072)


def _with_line_ends(draw, text: str, end: str) -> str:
    """Every line end (CRLF, CR or LF) of `text` as `end`; "mixed" draws one per line."""
    lines = re.split(r"\r\n|\r|\n", text)
    if end != "mixed":
        return end.join(lines)
    ends = draw(st.lists(st.sampled_from(LINE_ENDS[:3]), min_size=len(lines), max_size=len(lines)))
    return "".join(line + e for line, e in zip(lines, ends))


def _encoded(draw, text: str, encoding: str) -> bytes:
    if encoding == "stray byte":          # one byte that no UTF-8 text holds, anywhere
        data = text.encode("utf-8", "surrogatepass")
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.sampled_from([b"\xff", b"\xe9", b"\xc3"])) + data[at:]
    if encoding == "latin-1":
        return text.encode("latin-1", "replace")
    return text.encode(encoding, "surrogatepass")


@st.composite
def csv_file(draw) -> bytes:
    """A CSV feed file: a corpus text, damaged or not, reshaped, then encoded with its line ends."""
    text = draw(st.sampled_from(CSV_CORPUS))
    if draw(st.booleans()):
        text = draw(mutated_text([text], ',"\n'))
    shape = draw(st.sampled_from(["as is"] * 6 + ["huge quoted field", "huge field", "header twice",
                                                  "header only", "empty", "blank"]))
    lines = text.split("\n")
    if shape in ("huge quoted field", "huge field") and len(lines) > 1:
        at = draw(st.integers(1, len(lines) - 1))
        huge = "9" * HUGE_FIELD
        lines[at] = lines[at] + "," + (f'"{huge}"' if shape == "huge quoted field" else huge)
    elif shape == "header twice":
        columns = lines[0].split(",")
        lines[0] += "," + draw(st.sampled_from(columns)).upper()
    elif shape == "header only":
        lines = lines[:1] + [""]
    elif shape == "empty":
        lines = [""]
    elif shape == "blank":
        lines = draw(st.lists(st.sampled_from(["", " ", "\t", ",,,", " , "]), max_size=4))
    text = _with_line_ends(draw, "\n".join(lines), draw(st.sampled_from(LINE_ENDS)))
    return _encoded(draw, text, draw(st.sampled_from(ENCODINGS)))


@st.composite
def hl7_text(draw) -> str:
    return draw(mutated_text(HL7_CORPUS, "|^~\\&\r\n"))


@st.composite
def hl7_file(draw) -> bytes:
    """An HL7 file: a damaged corpus file with its segment ends redrawn (CR, LF, CRLF, a mix,
    vertical tabs, or each message in MLLP framing), in UTF-8 or Latin-1."""
    text = draw(hl7_text())
    end = draw(st.sampled_from(LINE_ENDS + ("mllp",)))
    if end == "mllp":
        text = "".join(f"\x0b{m}\x1c\r" for m in re.split(r"[\r\n]+(?=MSH)", text) if m)
    else:
        text = _with_line_ends(draw, text, end)
    return _encoded(draw, text, draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "stray byte"])))


@st.composite
def ndjson_lines(draw) -> list[str]:
    lines = draw(st.lists(mutated_text(FHIR_LINES, '{}[]",:'), min_size=1, max_size=6))
    return [line.replace("\n", " ").replace("\r", " ") for line in lines]


@st.composite
def ndjson_file(draw) -> bytes:
    """An NDJSON file: damaged resources, one a line, LF or CRLF, with blank lines among them."""
    lines = draw(ndjson_lines())
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["", " ", "\t"])))
    text = draw(st.sampled_from(["\n", "\r\n"])).join(lines)
    return _encoded(draw, text, draw(st.sampled_from(["utf-8", "utf-8-sig", "stray byte"])))


@st.composite
def bundle_text(draw) -> str:
    """The corpus Bundle with entries replaced, dropped, duplicated or damaged, then maybe its
    JSON text damaged."""
    bundle = json.loads(json.dumps(BUNDLE))
    entries = bundle["entry"]
    for _ in range(draw(st.integers(0, 4))):
        if not entries:
            break
        i = draw(st.integers(0, len(entries) - 1))
        op = draw(st.sampled_from(["wrong", "drop", "resource", "dup"]))
        if op == "wrong":
            entries[i] = draw(JSON_VALUES)
        elif op == "drop":
            del entries[i]
        elif op == "resource":
            entries[i] = {"resource": draw(mutated_resource())}
        else:
            entries.append(entries[i])
    text = json.dumps(bundle)
    if draw(st.booleans()):
        text = draw(mutated_text([text], '{}[]",:'))
    return text


@st.composite
def bundle_file(draw) -> bytes:
    """A Bundle file: damaged as `bundle_text`, or one without entries, or empty, or blank."""
    shape = draw(st.sampled_from(["damaged"] * 6 + ["no entries", "empty", "blank"]))
    if shape == "no entries":
        text = json.dumps(to_bundle([]))
    elif shape == "empty":
        text = ""
    elif shape == "blank":
        text = draw(st.sampled_from([" ", "\n\n", "\r\n \t"]))
    else:
        text = draw(bundle_text())
    return _encoded(draw, text, draw(st.sampled_from(["utf-8", "utf-8-sig", "stray byte"])))


FEED_FILES = {".csv": csv_file, ".hl7": hl7_file, ".ndjson": ndjson_file, ".json": bundle_file}
