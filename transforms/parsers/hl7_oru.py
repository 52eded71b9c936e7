"""HL7 v2 (2.3 to 2.5.1) ORU^R01 parser: text or file in, one ParsedRow per OBX out.

Library choice: this module splits HL7 itself rather than going through python-hl7 or hl7apy.
Measured on the project's 2-core machine (ORU^R01 messages of 20 OBX), python-hl7 0.4.5 (the
maintained parser the project pins, which builds an object tree of every segment, field and
component) reads about 22,000 OBX results/s and hl7apy 1.3.5 (which builds message-structure
objects, even in its tolerant mode) about 700/s, both under the 50,000/s target. The splitter here
reads each MSH's own separators, splits only the segments and fields it uses, with one helper each
for unescaping, timestamps and reference ranges, and reads about 135,000 results/s
(benchmarks/bench_parsers.py). python-hl7 stays in the tests as a cross-check: every fixture is
read by both and the fields must agree.

What it reads (docs/ARCHITECTURE.md, "Parsed rows"): files may hold one or many messages, batch
wrappers (FHS/BHS/BTS/FTS, skipped: they carry no results), segments ended by CR, LF, CRLF or a
vertical tab, and MLLP framing (start block VT, end block FS CR): a VT or FS ends a segment too, so
a file whose segments are separated by VT alone is read, not taken for one long segment. Each
message is read with the field separator and encoding characters of its own MSH. Patient = PID-3
(first repetition, component 1) of the PID before the OBX; collection time = OBX-14, else OBR-7;
resulted time = OBR-22; accession = OBR-3.1, else OBR-2.1; source_system = MSH-3.1. OBX-3 gives the
code: `LN` in OBX-3.3 is LOINC, an `LN` alternate code in OBX-3.4-6 is preferred over a local
primary one, any other system is passed through as a local code. An OBX whose LOINC is a vital sign
(the `vitals:` block of clinical_rules.yaml) becomes a `vitals` row. Values are not judged here: NM
is passed as sent, SN is joined into text (`<^5` -> `<5`, `^1^:^2` -> `1:2`, which the normalizer
quarantines as non-numeric), coded values give their text.

Errors: a message without MSH, with a broken MSH, of another type than ORU, without PID before
its first OBX, with an OBX before any OBR, or with no OBX at all gives one error row (feed `labs`,
reason `hl7: message N: ...`, raw = the message) and the rest of the file still parses. `line` is
the message's 1-based number in the file, and every message yields at least one row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from transforms.parsers.base import FEED_FIELDS, LOINC_SYSTEM, ParsedRow
from transforms.parsers.codes import o2_device_name, vital_kind_by_loinc

_BATCH_SEGMENTS = frozenset({"FHS", "BHS", "BTS", "FTS"})
# MLLP's start-block (VT) and end-block (FS) bytes never occur inside a segment: each is read as a
# segment end, like CR, so VT-separated segments stay apart and framing leaves only empty segments.
_FRAMING_AS_CR = str.maketrans("\x0b\x1c", "\r\r")
_TEXT_TYPES = frozenset({"TX", "FT"})          # several repetitions are several lines of text
_CODED_TYPES = frozenset({"CE", "CWE", "CNE", "CF"})
_LABS_FIELDS = FEED_FIELDS["labs"]
_WITHDRAWN_STATUSES = frozenset({"X", "W", "D"})  # cancelled, wrong (replaced), deleted


@dataclass(frozen=True)
class Separators:
    """The delimiters one MSH declares (MSH-1 and MSH-2)."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"


DEFAULT_SEPARATORS = Separators()


# --- shared helpers: escapes, timestamps, reference ranges -------------------------------------

def unescape(text: str, seps: Separators) -> str:
    """Undo HL7 escapes (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\.br\\ \\Xhh\\ ...) in one component."""
    esc = seps.escape
    if not esc or esc not in text:
        return text
    parts = text.split(esc)
    out = [parts[0]]
    # parts alternate literal text and escape sequences; an unterminated one stays literal
    for i in range(1, len(parts), 2):
        if i + 1 < len(parts):
            out.append(_expand_escape(parts[i], seps))
            out.append(parts[i + 1])
        else:
            out.append(esc + parts[i])
    return "".join(out)


@lru_cache(maxsize=64)
def _escape_table(seps: Separators) -> dict[str, str]:
    # \H\ and \N\ switch highlighting on and off: no text of their own
    return {"F": seps.field, "S": seps.component, "T": seps.subcomponent or "&",
            "R": seps.repetition, "E": seps.escape, ".br": "\n", ".sp": "\n", "H": "", "N": ""}


def _expand_escape(seq: str, seps: Separators) -> str:
    simple = _escape_table(seps).get(seq)
    if simple is not None:
        return simple
    if seq[:1] == "X" and len(seq) > 1 and len(seq) % 2 == 1:
        try:
            data = bytes.fromhex(seq[1:])
        except ValueError:
            pass
        else:
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                return data.decode("latin-1")
    # formatting commands we do not render (\.in\, \.ce\ ...) and charset switches stay as sent
    return seps.escape + seq + seps.escape


_HL7_TS = re.compile(
    r"(\d{4})(\d{2})(\d{2})"                           # date
    r"(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6}))?)?)?)?"  # [HH[MM[SS[.S+]]]]
    r"(?:([+-])(\d{2})(\d{2}))?")                      # [+/-ZZZZ]


@lru_cache(maxsize=16384)
def hl7_timestamp_to_iso(text: str | None) -> str | None:
    """HL7 DTM `YYYYMMDD[HH[MM[SS[.S+]]]][+/-ZZZZ]` -> ISO 8601 text, keeping the given precision.

    A date stays a date (`2025-03-01`); a time keeps its offset (`+01:00`) or stays naive. Text
    that is no valid HL7 timestamp (or no real calendar moment) is returned unchanged, so the
    normalizer can quarantine it with the original text in its reason.
    """
    if text is None:
        return None
    stripped = text.strip()
    if not stripped:
        return None
    m = _HL7_TS.fullmatch(stripped)
    if not m:
        return text
    y, mo, d, hh, mi, ss, frac, sign, oh, om = m.groups()
    if oh is not None and (int(oh) > 14 or int(om) > 59):
        return text
    # A well-formed DTM of no real calendar moment (20260230...) goes on ISO-shaped, so the
    # normalizer names it as it does for CSV: an impossible date, not an unparseable text.
    iso = f"{y}-{mo}-{d}"
    if hh is None:
        return iso                              # a date has no time zone to keep
    iso += f"T{hh}:{mi or '00'}"
    if ss is not None:
        iso += f":{ss}" + (f".{frac}" if frac else "")
    if sign:
        iso += f"{sign}{oh}:{om}"
    return iso


_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE = re.compile(rf"\s*({_NUM})\s*-\s*({_NUM})\s*")
_BOUND = re.compile(rf"\s*(<=?|>=?)\s*({_NUM})\s*")


def split_reference_range(text: str | None) -> tuple[str | None, str | None]:
    """OBX-7 -> (ref_low, ref_high): `low-high` (negatives too: `-10--2`), `<x` / `>x`.

    Anything else (text such as `negative`, a lone number) gives (None, None): the normalizer
    then uses the analyte's default range.
    """
    if not text:
        return None, None
    m = _RANGE.fullmatch(text)
    if m:
        return m.group(1), m.group(2)
    m = _BOUND.fullmatch(text)
    if m:
        return (None, m.group(2)) if m.group(1)[0] == "<" else (m.group(2), None)
    return None, None


# --- splitting a file into messages --------------------------------------------------------------

def parse_hl7_file(path: str | Path) -> Iterator[ParsedRow]:
    """Parse an HL7 file: UTF-8, or Latin-1 when the bytes are not valid UTF-8."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return parse_hl7_text(text)


def parse_hl7_text(text: str) -> Iterator[ParsedRow]:
    """Parse HL7 text holding one or many ORU^R01 messages, batched or not."""
    for number, segments in _messages(text):
        try:
            rows = _parse_message(number, segments)
        except Exception as exc:  # a last guard: one unreadable message must not stop the file
            rows = [_message_error(number, segments, f"unreadable message ({type(exc).__name__})")]
        yield from rows


def _segments(text: str) -> Iterator[str]:
    text = text.translate(_FRAMING_AS_CR).replace("\r\n", "\r").replace("\n", "\r")
    for seg in text.split("\r"):
        if seg[:1].isspace():
            seg = seg.lstrip()
        if seg:
            yield seg


def _messages(text: str) -> Iterator[tuple[int, list[str]]]:
    """Group segments into messages: each MSH starts one; segments before any MSH form one too."""
    number, current = 0, None
    for seg in _segments(text):
        sid = seg[:3]
        if sid in _BATCH_SEGMENTS:
            if current:
                yield number, current
            current = None
        elif sid == "MSH" or current is None:
            if current:
                yield number, current
            number += 1
            current = [seg]
        else:
            current.append(seg)
    if current:
        yield number, current


# --- one message ----------------------------------------------------------------------------

def _message_error(number: int, segments: list[str], what: str) -> ParsedRow:
    return ParsedRow(feed="labs", line=number, raw="\r".join(segments),
                     error=f"hl7: message {number}: {what}")


def read_separators(msh: str) -> Separators | None:
    """The separators an MSH declares, or None when they are missing or unusable."""
    if len(msh) < 5 or not msh.startswith("MSH"):
        return None
    fs = msh[3]
    enc = msh[4:].split(fs, 1)[0]
    chars = fs + enc
    if (not enc or len(enc) > 5 or len(set(chars)) != len(chars)
            or any(c.isalnum() or c.isspace() for c in chars)):
        return None
    enc = enc + "\0" * (4 - len(enc))          # missing escape / subcomponent: never matches
    return Separators(fs, enc[0], enc[1], enc[2].strip("\0"), enc[3].strip("\0"))


def _parse_message(number: int, segments: list[str]) -> list[ParsedRow]:
    if not segments[0].startswith("MSH"):
        return [_message_error(number, segments, "no MSH segment")]
    seps = read_separators(segments[0])
    msh = segments[0].split(seps.field) if seps else []
    if seps is None or len(msh) < 9 or not msh[8]:
        return [_message_error(number, segments,
                               "broken MSH segment (separators or MSH-9 missing)")]
    msg_type = unescape(msh[8].split(seps.component, 1)[0], seps)
    if msg_type != "ORU":
        return [_message_error(number, segments,
                               f"not an ORU result message (MSH-9 {unescape(msh[8], seps)})")]
    reader = _MessageReader(number, seps, _first_component(msh[2], seps))
    for seg in segments[1:]:
        problem = reader.read(seg)
        if problem:
            return [_message_error(number, segments, problem)]
    if not reader.rows:
        return [_message_error(number, segments, "no OBX segment")]
    return reader.rows


def _first_component(field: str, seps: Separators) -> str | None:
    """Component 1 of the first repetition, unescaped; None when empty."""
    if seps.repetition in field:
        field = field.split(seps.repetition, 1)[0]
    if seps.component in field:
        field = field.split(seps.component, 1)[0]
    value = unescape(field, seps).strip()
    return value or None


class _MessageReader:
    """Walks one message's segments, keeping the current patient and order for each OBX."""

    def __init__(self, number: int, seps: Separators, source: str | None):
        self.number, self.seps, self.source = number, seps, source
        self.patient: str | None = None
        self.seen_pid = False
        self.order: tuple[str, str | None, str | None, str | None] | None = None
        self.rows: list[ParsedRow] = []

    def read(self, seg: str) -> str | None:
        """Take one segment; return a reason when the message cannot be read."""
        fields = seg.split(self.seps.field)
        sid = fields[0]
        if sid == "OBX":
            if self.order is None:
                return "OBX before OBR"
            if not self.seen_pid:
                return "no PID segment before OBX"
            self.rows.append(self._obx_row(seg, fields))
        elif sid == "OBR":
            self.order = self._order(seg, fields)
        elif sid == "PID":
            self.seen_pid = True
            self.patient = _first_component(fields[3], self.seps) if len(fields) > 3 else None
        return None                              # NTE, ORC, PV1, SPM, Z-segments: not results

    def _order(self, seg: str, f: list[str]):
        if len(f) < 23:
            f = f + [""] * (23 - len(f))
        accession = _first_component(f[3], self.seps) or _first_component(f[2], self.seps)
        collected = hl7_timestamp_to_iso(_first_component(f[7], self.seps))
        resulted = hl7_timestamp_to_iso(_first_component(f[22], self.seps))
        return seg, accession, collected, resulted

    def _obx_row(self, seg: str, f: list[str]) -> ParsedRow:
        seps = self.seps
        if len(f) < 15:
            f = f + [""] * (15 - len(f))
        obr_seg, accession, collected, resulted = self.order
        code, system, name = _observation_code(f[3], seps)
        value = _obx_value(f[2].strip(), f[5], seps)
        unit = _first_component(f[6], seps)
        at = hl7_timestamp_to_iso(_first_component(f[14], seps)) or collected
        raw = obr_seg + "\r" + seg
        status = unescape(f[11], seps).strip() or None
        kind = vital_kind_by_loinc().get(code) if system == LOINC_SYSTEM else None
        if kind is not None:
            return self._vital_row(raw, kind, at, value, unit, status)
        low, high = split_reference_range(unescape(f[7], seps))
        return ParsedRow("labs", self.number, raw, dict(zip(_LABS_FIELDS, (
            self.patient, at, code, system, value, unit, name, low, high, resulted, status,
            accession, self.source))))


    def _vital_row(self, raw, kind, at, value, unit, status) -> ParsedRow:
        # vitals carry no result status: a withdrawn reading is not a measurement at all
        if status in _WITHDRAWN_STATUSES:
            return ParsedRow("vitals", self.number, raw, error=(
                f"hl7: message {self.number}: vital sign {kind} with result status {status} "
                "(withdrawn, not a measurement)"))
        if kind == "o2_device":
            value = o2_device_name(value) or value
        return ParsedRow("vitals", self.number, raw, {
            "patient_id": self.patient, "measured_at": at, "kind": kind, "value": value,
            "unit": unit})


def _observation_code(field: str, seps: Separators) -> tuple[str | None, str | None, str | None]:
    """OBX-3 -> (code, code_system, test_name); an alternate LOINC (3.4-6) beats a local code."""
    c = field.split(seps.component)
    c += [""] * (6 - len(c))
    code, name, system = (unescape(x, seps).strip() or None for x in c[:3])
    if system != LOINC_SYSTEM and c[5].strip() == LOINC_SYSTEM and c[3].strip():
        return unescape(c[3], seps).strip(), LOINC_SYSTEM, name
    return code, system, name


def _obx_value(value_type: str, field: str, seps: Separators) -> str | None:
    """OBX-5 as text: NM as sent, SN joined (`<^5` -> `<5`), coded values by their text."""
    if not field:
        return None
    if value_type in _TEXT_TYPES:
        text = "\n".join(unescape(r, seps) for r in field.split(seps.repetition))
        return text.strip() or None
    if seps.repetition in field:
        field = field.split(seps.repetition, 1)[0]
    if value_type == "SN":
        parts = [unescape(p, seps).strip() for p in field.split(seps.component)[:4]]
        if parts[0] == "=":                     # "=" is the same as no comparator
            parts[0] = ""
        text = "".join(parts)
    elif value_type in _CODED_TYPES:
        parts = field.split(seps.component)
        text = unescape(parts[1] if len(parts) > 1 and parts[1] else parts[0], seps)
    else:
        text = unescape(field, seps)
    return text.strip() or None
