"""HL7 v2.5.1 ORU^R01 writer: labs and vitals field dicts -> message text (sample data, benchmarks).

The inverse of hl7_oru.py: rows shaped like FEED_FIELDS["labs"] or FEED_FIELDS["vitals"] (a row
with `kind` is a vital sign) become PID / OBR / OBX segments with HL7 escapes applied, and parsing
the text gives the same fields back. Consecutive rows of one accession and resulted time share an
OBR (OBR-7 = the first row's time; OBX-14 only where a row's own time differs); a new PID starts
whenever the patient changes. Numbers go out as NM, comparator values (`<5`) and ratios (`1:2`)
as SN, anything else as ST. A timestamp that is not ISO 8601 is written unchanged (escaped), so
deliberately bad sample data stays bad in the same way after a round trip; an ISO date that does
not exist (Feb 30) is written as the HL7 timestamp it spells (`20260230...`), which the parser
passes on unchanged (quarantined as an unparseable timestamp rather than an impossible date).

`write_sample_feeds` is cartwatch.synth's hook: the sample patients' labs and vitals as files.
"""

from __future__ import annotations

import re
from itertools import groupby
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from transforms.parsers.base import LOINC_SYSTEM
from transforms.parsers.codes import o2_device_name, vital_loinc_by_kind
from transforms.parsers.hl7_oru import DEFAULT_SEPARATORS, Separators

Row = Mapping[str, str | None]

VITALS_PANEL = ("85353-1", "Vital signs panel", LOINC_SYSTEM)
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})"
                  r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?"
                  r"(Z|[+-]\d{2}:?\d{2})?")
_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_NUMBER = re.compile(_NUM)
# SN only for text it gives back exactly (`<5`, `1:2`); `< 5` or `=5` go out as ST, unchanged
_COMPARED = re.compile(rf"(<=|>=|<>|<|>)({_NUM})")
_RATIO = re.compile(rf"({_NUM})([:/-])({_NUM})")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def escape(text: str | None, seps: Separators = DEFAULT_SEPARATORS) -> str:
    """Escape HL7 delimiters, line breaks (`\\.br\\`) and control characters (`\\Xhh\\`)."""
    if not text:
        return ""
    e = seps.escape
    out = text.replace(e, f"{e}E{e}")
    for char, code in ((seps.field, "F"), (seps.component, "S"), (seps.repetition, "R"),
                       (seps.subcomponent, "T")):
        out = out.replace(char, f"{e}{code}{e}")
    if "\r" in out or "\n" in out:
        out = out.replace("\r\n", "\n").replace("\r", "\n").replace("\n", f"{e}.br{e}")
    if _CONTROL.search(out):               # would end a segment or an MLLP frame: hex-escape
        out = _CONTROL.sub(lambda m: f"{e}X{ord(m.group()):02X}{e}", out)
    return out


def iso_to_hl7_timestamp(iso: str | None) -> str:
    """ISO 8601 -> HL7 DTM at the same precision (`Z` -> `+0000`); other text unchanged."""
    if not iso:
        return ""
    m = _ISO.fullmatch(iso.strip())
    if not m:
        return escape(iso)
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    out = y + mo + d + (hh or "") + (mi or "") + (ss or "") + (f".{frac}" if frac else "")
    if tz and hh:
        out += "+0000" if tz == "Z" else tz.replace(":", "")
    return out


def _value(value: str | None) -> tuple[str, str]:
    """A row's value -> (OBX-2 value type, OBX-5)."""
    if value is None or value == "":
        return "", ""
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return "NM", text
    m = _COMPARED.fullmatch(text)
    if m:
        return "SN", f"{m.group(1)}^{m.group(2)}"
    m = _RATIO.fullmatch(text)
    if m:
        return "SN", f"^{m.group(1)}^{m.group(2)}^{m.group(3)}"
    return "ST", escape(value)


def _reference_range(low: str | None, high: str | None) -> str:
    if low and high:
        return f"{low}-{high}"
    if high:
        return f"<{high}"
    return f">{low}" if low else ""


def _is_vital(row: Row) -> bool:
    return "kind" in row


def _time(row: Row) -> str | None:
    return row.get("measured_at") if _is_vital(row) else row.get("collected_at")


def _code(*parts: str | None) -> str:
    return "^".join(escape(p) for p in parts).rstrip("^")


def _obx(set_id: int, row: Row, order_time: str | None) -> str:
    if _is_vital(row):
        kind = row.get("kind") or ""
        code = _code(vital_loinc_by_kind().get(kind, ""), kind, LOINC_SYSTEM)
        vtype, value = _value(row.get("value"))
        if kind == "o2_device" and value:
            vtype, value = "ST", escape(row.get("value"))
        rng = status = ""
    else:
        code = _code(row.get("code"), row.get("test_name"), row.get("code_system"))
        vtype, value = _value(row.get("value"))
        rng = _reference_range(row.get("ref_low"), row.get("ref_high"))
        status = escape(row.get("result_status"))
    own_time = _time(row)
    obx14 = iso_to_hl7_timestamp(own_time) if own_time != order_time else ""
    return "|".join(["OBX", str(set_id), vtype, code, "", value, escape(row.get("unit")), rng,
                     "", "", "", status, "", "", obx14]).rstrip("|")


def _obr(set_id: int, rows: Sequence[Row]) -> str:
    first = rows[0]
    service = (_code(*VITALS_PANEL) if _is_vital(first)
               else _code(first.get("code"), first.get("test_name"), first.get("code_system")))
    fields = ["OBR", str(set_id), "", escape(first.get("accession")), service] + [""] * 21
    fields[7] = iso_to_hl7_timestamp(_time(first))
    fields[22] = iso_to_hl7_timestamp(first.get("resulted_at"))
    statuses = {r.get("result_status") for r in rows}
    fields[25] = escape(statuses.pop()) if len(statuses) == 1 and None not in statuses else ""
    return "|".join(fields).rstrip("|")


def _order_key(row: Row) -> tuple:
    return (_is_vital(row), row.get("accession"), row.get("resulted_at"))


def write_oru_message(rows: Iterable[Row], *, control_id: str,
                      sending_application: str | None = None, sending_facility: str = "",
                      message_time: str | None = None, version: str = "2.5.1") -> str:
    """One ORU^R01 message (segments ended by CR) holding the given rows, in order.

    MSH-3 is `sending_application`, else the first row's `source_system` (parsed back as
    source_system); MSH-7 is `message_time`, else the first row's resulted or collected time.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("an ORU message needs at least one result row")
    first = rows[0]
    app = sending_application if sending_application is not None else first.get("source_system")
    when = message_time or first.get("resulted_at") or _time(first)
    segments = ["|".join(["MSH", "^~\\&", escape(app), escape(sending_facility), "CARTWATCH",
                          "CARTWATCH", iso_to_hl7_timestamp(when), "", "ORU^R01^ORU_R01",
                          escape(control_id), "P", version])]
    pid_n = obr_n = 0
    for patient, patient_rows in groupby(rows, key=lambda r: r.get("patient_id")):
        pid_n += 1
        segments.append(f"PID|{pid_n}||{escape(patient)}^^^{escape(sending_facility)}^MR")
        for _, group in groupby(patient_rows, key=_order_key):
            group = list(group)
            obr_n += 1
            segments.append(_obr(obr_n, group))
            order_time = _time(group[0])
            segments.extend(_obx(i, r, order_time) for i, r in enumerate(group, 1))
    return "\r".join(segments) + "\r"


def write_oru_messages(rows: Iterable[Row], *, max_results: int = 20,
                       control_id_prefix: str = "CW") -> Iterator[str]:
    """Messages for a stream of rows: one per patient and source system, <= `max_results` OBX."""
    n = 0
    for (_, source), group in groupby(rows, key=lambda r: (r.get("patient_id"),
                                                          r.get("source_system"))):
        group = list(group)
        for start in range(0, len(group), max_results):
            n += 1
            yield write_oru_message(group[start:start + max_results], sending_application=source,
                                    control_id=f"{control_id_prefix}{n:08d}")


def join_messages(messages: Iterable[str], *, batch: bool = False, segment_end: str = "\r",
                  sending_application: str = "CARTWATCH") -> str:
    """File text for messages, optionally in a FHS/BHS ... BTS/FTS batch, with this segment end."""
    messages = list(messages)
    text = "".join(messages)
    if batch:
        head = f"FHS|^~\\&|{escape(sending_application)}\rBHS|^~\\&|{escape(sending_application)}\r"
        text = head + text + f"BTS|{len(messages)}\rFTS|1\r"
    return text if segment_end == "\r" else text.replace("\r", segment_end)


# --- the sample cohort in HL7 (the `cartwatch.synth` hook) --------------------------------------

# The patients data/sample carries in HL7 and FHIR besides CSV (the whole cohort would be about
# 1.7 MB of HL7 and 12 MB of FHIR): a Madrid patient with non-canonical units and `Z` lab times,
# New York patients with naive bedside times, corrections, a cancellation, preliminaries and the
# deliberately malformed rows, and a Chicago patient whose results are re-sent.
SAMPLE_PATIENTS = ("CW-0013", "CW-0015", "CW-0016", "CW-0017")
SAMPLE_VITALS_APPLICATION = "BEDSIDE"


def sample_rows(rows: Iterable[Mapping[str, object]],
                patients: Sequence[str] | None = SAMPLE_PATIENTS) -> list[dict[str, str | None]]:
    """CSV-shaped rows of the chosen patients (None: all), empty text as None, CSV `loinc` as
    `code` + `code_system` LN. A row without patient_id (a malformed copy) stays with the
    patient whose rows it sits among, as it does in the CSV file."""
    keep, out = patients is None, []
    chosen = None if patients is None else set(patients)
    for row in rows:
        fields = {k: (None if v is None or v == "" else str(v)) for k, v in row.items()}
        if chosen is not None and fields.get("patient_id") is not None:
            keep = fields["patient_id"] in chosen
        if not keep:
            continue
        if "loinc" in fields:
            fields = {("code" if k == "loinc" else k): v for k, v in fields.items()}
            fields["code_system"] = LOINC_SYSTEM
        out.append(fields)
    return out


def _identity(row: Row) -> str | None:
    return row.get("kind") if _is_vital(row) else row.get("code")


def sample_messages(rows: Sequence[Row], *, vitals: bool = False) -> list[list[Row]]:
    """Rows grouped as an interface sends them: one message per patient and order (labs: the
    accession and resulted time; vitals: the measurement time), in file order. A result that
    repeats inside a group (a re-sent copy, a corrupted duplicate) starts a new message."""
    if vitals:
        key = lambda r: (r.get("patient_id"), r.get("measured_at"))  # noqa: E731
    else:
        key = lambda r: (r.get("patient_id"), r.get("source_system"), r.get("accession"),  # noqa: E731
                         r.get("resulted_at"))
    messages: list[list[Row]] = []
    for _, group in groupby(rows, key=key):
        current: list[Row] = []
        seen: set = set()
        for row in group:
            ident = _identity(row)
            if ident in seen:
                messages.append(current)
                current, seen = [], set()
            current.append(row)
            seen.add(ident)
        messages.append(current)
    return messages


def device_text(row: dict) -> dict:
    """An oxygen device as a chart words it (`room_air` -> `Room air`) when that reads back as
    the same CONTRACT name; the parsers map it back."""
    value = row.get("value")
    if row.get("kind") != "o2_device" or not value:
        return row
    text = value.replace("_", " ").capitalize()
    return dict(row, value=text) if o2_device_name(text) == value else row


def _oru_file(groups: list[list[Row]], prefix: str, *, batch: bool,
              application: str | None = None) -> str:
    messages = [write_oru_message(rows, control_id=f"{prefix}{n:06d}",
                                  sending_application=application)
                for n, rows in enumerate(groups, 1)]
    return join_messages(messages, batch=batch, sending_application="CARTWATCH_SYNTH")


def write_sample_feeds(feeds: Mapping[str, list[Mapping[str, object]]], out_dir: str | Path,
                       patients: Sequence[str] | None = SAMPLE_PATIENTS) -> list[Path]:
    """Write the labs and vitals of `patients` (None: all) as ORU^R01 files under `out_dir/hl7/`.

    `feeds` is keyed like the sample's CSV files (labs, labs_resend, vitals, ...), rows with the
    contract.md §1 columns, in file order. Files (CR segment ends, UTF-8):
    `labs_batch.hl7` (one FHS/BHS batch, one message per order), `vitals.hl7` (plain messages,
    one per measurement time, sent by BEDSIDE) and `labs_resend.hl7` (the re-sent results, plain).
    Infusions and events have no ORU form: they stay CSV-only. Rows keep their defects where
    HL7 can carry them (see `iso_to_hl7_timestamp`). Returns the files written, and removes
    the `.hl7` files a previous run left there.
    """
    folder = Path(out_dir) / "hl7"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.hl7"):
        old.unlink()
    plan = [("labs_batch.hl7", "labs", "L", True, None),
            ("vitals.hl7", "vitals", "V", False, SAMPLE_VITALS_APPLICATION),
            ("labs_resend.hl7", "labs_resend", "R", False, None)]
    written = []
    for name, feed, prefix, batch, application in plan:
        rows = sample_rows(feeds.get(feed) or [], patients)
        if feed == "vitals":
            rows = [device_text(r) for r in rows]
        if not rows:
            continue
        groups = sample_messages(rows, vitals=feed == "vitals")
        path = folder / name
        path.write_bytes(_oru_file(groups, prefix, batch=batch, application=application)
                         .encode("utf-8"))
        written.append(path)
    return written
