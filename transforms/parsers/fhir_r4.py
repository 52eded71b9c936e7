"""FHIR R4 parser: NDJSON (Bulk Data export) or Bundle in, ParsedRow objects out.

Resources read (docs/ARCHITECTURE.md, "Parsed rows"):

- `Observation`: its LOINC code decides first: a vital-sign code (the `vitals:` block of
  clinical_rules.yaml, plus codes.yaml's aliases) gives a `vitals` row, any other code of a
  `laboratory` (or uncategorised) Observation a `labs` row. The value is `valueQuantity`
  (comparator prefixed: `<5`; unit = UCUM `code`, else `unit`), `valueString` /
  `valueCodeableConcept` as text (an oxygen device is mapped to its CONTRACT name when the text is
  unambiguous). An Observation with `component`s (the blood pressure panel 85354-9, a pulse
  oximetry reading with its O2 flow) gives one row per component that has a value, besides its
  own value if it has one. status final/amended/corrected/preliminary/cancelled/entered-in-error
  -> F/C/C/P/X/X; a cancelled result needs no value. accession = an `identifier` typed ACSN or
  FILL, else the first identifier, else the resource id, so a correction of the same result keeps
  the same accession.
- `Procedure` naming a CAR-T product or CAR-T therapy (and no earlier step such as apheresis),
  and `MedicationAdministration` of a CAR-T product: `infusions` rows. `MedicationAdministration` of tocilizumab, a corticosteroid,
  anakinra, ruxolitinib, etoposide, emapalumab or a vasopressor: `events` rows. The names are data
  (codes.yaml): product -> target_antigen fills the infusion's target antigen.

Nothing is skipped silently: every line of an NDJSON file and every entry of a Bundle gives rows
or one error row, including resources cartwatch does not use (`Patient`, `Encounter`, ...), which
come out as `fhir: line N: unsupported resourceType Patient` so that read = accepted + duplicate +
quarantined holds. Other error rows: invalid JSON, a JSON value that is not an object, an
Observation without a Patient subject or without value, a Procedure that is no CAR-T infusion, a
medication cartwatch does not track, an administration that did not happen (not-done,
entered-in-error). Values, units, codes and times are passed as text, never judged here.
In a Bundle, `urn:uuid:` subject references resolve through the Bundle's Patient entries.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

from transforms.parsers.base import LOINC_SYSTEM, ParsedRow
from transforms.parsers.codes import (classify_medication, is_cart_infusion, o2_device_name,
                                      vital_kind_by_loinc)

LOINC_URL = "http://loinc.org"
OBSERVATION_STATUS = {"final": "F", "amended": "C", "corrected": "C", "preliminary": "P",
                      "cancelled": "X", "entered-in-error": "X"}
_NOT_GIVEN = frozenset({"not-done", "entered-in-error"})      # Procedure / MedicationAdministration
_ACCESSION_TYPES = frozenset({"ACSN", "FILL"})
_JSON_POSITION = re.compile(r": line \d+ column (\d+) \(char \d+\)$")


# --- files -------------------------------------------------------------------------------------

def parse_fhir_ndjson(path: str | Path) -> Iterator[ParsedRow]:
    """One resource a line; `line` is the file line (blank lines hold nothing and give nothing)."""
    with open(path, "rb") as fh:
        for number, data in enumerate(fh, 1):
            if number == 1 and data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            if data.strip():
                yield from _parse_line(data, number)


def _parse_line(data: bytes, number: int) -> list[ParsedRow]:
    raw = data.decode("utf-8", "replace").rstrip("\r\n")
    try:
        resource = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        reason = _JSON_POSITION.sub(r" at column \1", str(exc))
        return [ParsedRow("labs", number, raw,
                          error=f"fhir: line {number}: invalid JSON: {reason}")]
    return parse_fhir_resource(resource, number, raw)


def parse_fhir_bundle(path: str | Path) -> Iterator[ParsedRow]:
    """A Bundle (or a single resource) in a JSON file; `line` is the 1-based entry number."""
    data = Path(path).read_bytes()
    try:
        bundle = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raw = data.decode("utf-8", "replace")
        yield ParsedRow("labs", 1, raw, error=f"fhir: invalid JSON: {exc}")
        return
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        yield from parse_fhir_resource(bundle, 1, data.decode("utf-8", "replace"), where="entry")
        return
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        entries = [] if entries is None else [entries]
    patients = _bundle_patients(entries)
    for number, entry in enumerate(entries, 1):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        raw = orjson.dumps(entry).decode()
        if resource is None:
            method = _str(_dict(_dict(entry).get("request")).get("method"))
            what = f" (request {method})" if method else ""
            yield ParsedRow("labs", number, raw,
                            error=f"fhir: entry {number}: entry without a resource{what}")
            continue
        yield from parse_fhir_resource(resource, number, raw, where="entry", patients=patients)


def _bundle_patients(entries: list) -> dict[str, str]:
    """fullUrl of each Patient entry -> its id, for `urn:uuid:` subject references."""
    out = {}
    for entry in entries:
        res = _dict(entry).get("resource")
        if _dict(res).get("resourceType") == "Patient" and _str(_dict(entry).get("fullUrl")):
            ident = _str(res.get("id")) or _str(_dict(_first(res.get("identifier"))).get("value"))
            if ident:
                out[entry["fullUrl"]] = ident
    return out


# --- one resource ------------------------------------------------------------------------------

class _Position:
    """Where a resource is (for `line` and reasons) and how to make its rows."""

    def __init__(self, line: int, raw: str, where: str, patients: dict[str, str] | None):
        self.line, self.raw, self.where, self.patients = line, raw, where, patients or {}

    def error(self, feed: str, what: str) -> ParsedRow:
        return ParsedRow(feed, self.line, self.raw, error=f"fhir: {self.where} {self.line}: {what}")

    def row(self, feed: str, fields: dict[str, str | None]) -> ParsedRow:
        return ParsedRow(feed, self.line, self.raw, fields)


def parse_fhir_resource(resource: dict, line: int, raw: str, *, where: str = "line",
                        patients: dict[str, str] | None = None) -> list[ParsedRow]:
    """Rows for one resource (error rows included); never raises.

    `where` names the position in reasons (`line` for NDJSON, `entry` for a Bundle); `patients`
    resolves `urn:uuid:` references (Bundle fullUrl -> patient id).
    """
    pos = _Position(line, raw, where, patients)
    if not isinstance(resource, dict):
        return [pos.error("labs", f"not a JSON object ({type(resource).__name__})")]
    rtype = resource.get("resourceType")
    handler = _HANDLERS.get(rtype) if isinstance(rtype, str) else None
    if handler is None:
        return [pos.error("labs", f"unsupported resourceType {_str(rtype) or '(none)'}")]
    try:
        return handler(resource, pos)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        # the typed accessors below cover the usual malformations; this is the last guard
        return [pos.error("labs", f"malformed {rtype} ({type(exc).__name__})")]


# --- typed accessors: a wrong JSON type reads as absent ----------------------------------------

_EMPTY_DICT: dict = {}        # shared read-only defaults: never mutated
_EMPTY_LIST: list = []


def _dict(x: Any) -> dict:
    return x if x.__class__ is dict else _EMPTY_DICT


def _list(x: Any) -> list:
    return x if x.__class__ is list else _EMPTY_LIST


def _first(x: Any) -> Any:
    return x[0] if isinstance(x, list) and x else None


def _str(x: Any) -> str | None:
    if x.__class__ is str:
        return x.strip() or None
    return None


def _number_text(x: Any) -> str | None:
    """A JSON number as text (integral floats without `.0`); a string is passed through."""
    cls = x.__class__
    if cls is float:
        return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)
    if cls is int:                              # bool is not int here: `cls is int` excludes it
        return str(x)
    return _str(x)


def _concept_text(concept: Any) -> str | None:
    """A CodeableConcept's words: its text, else the first coding display, else the first code."""
    concept = _dict(concept)
    codings = [_dict(c) for c in _list(concept.get("coding"))]
    for text in [concept.get("text")] + [c.get("display") for c in codings] + [
            c.get("code") for c in codings]:
        if _str(text):
            return _str(text)
    return None


def _code(concept: Any) -> tuple[str | None, str | None, str | None]:
    """CodeableConcept -> (code, code_system, name): LOINC preferred, else the first coding."""
    concept = _dict(concept)
    chosen = system = None
    for coding in _list(concept.get("coding")):
        coding = _dict(coding)
        if _str(coding.get("code")) is None:
            continue
        if coding.get("system") == LOINC_URL:
            chosen, system = coding, LOINC_SYSTEM
            break
        if chosen is None:
            chosen, system = coding, _str(coding.get("system"))
    name = _str(concept.get("text"))
    if chosen is None:
        return None, None, name
    return _str(chosen.get("code")), system, name or _str(chosen.get("display"))


def _patient(subject: Any, pos: _Position) -> str | None:
    """`Patient/ABC` (relative, absolute or versioned) -> `ABC`; `urn:uuid:` via the Bundle."""
    subject = _dict(subject)
    ref = _str(subject.get("reference"))
    if ref:
        if ref.startswith("urn:"):
            return pos.patients.get(ref)
        parts = ref.split("/")
        if "Patient" in parts:
            i = len(parts) - 1 - parts[::-1].index("Patient")
            return parts[i + 1] if i + 1 < len(parts) and parts[i + 1] else None
        return None
    return _str(_dict(subject.get("identifier")).get("value"))


def _time(resource: dict, prefix: str) -> str | None:
    """`<prefix>DateTime`, else `<prefix>Period.start`, else `<prefix>Instant`."""
    return (_str(resource.get(prefix + "DateTime"))
            or _str(_dict(resource.get(prefix + "Period")).get("start"))
            or _str(resource.get(prefix + "Instant")))


TZ_CODE_URL = "http://hl7.org/fhir/StructureDefinition/tz-code"


def _time_zone(resource: dict, prefix: str) -> str | None:
    """The R4 `tz-code` extension on `<prefix>DateTime` (`_<prefix>DateTime`): the site's zone."""
    for ext in _list(_dict(resource.get(f"_{prefix}DateTime")).get("extension")):
        ext = _dict(ext)
        if ext.get("url") == TZ_CODE_URL:
            return _str(ext.get("valueCode"))
    return None


def _accession(resource: dict) -> str | None:
    """The identifier typed ACSN / FILL, else the first identifier, else the resource id."""
    first = None
    for ident in _list(resource.get("identifier")):
        ident = _dict(ident)
        value = _str(ident.get("value"))
        if value is None:
            continue
        for coding in _list(_dict(ident.get("type")).get("coding")):
            if _dict(coding).get("code") in _ACCESSION_TYPES:
                return value
        first = first or value
    return first or _str(resource.get("id"))


# --- Observation -------------------------------------------------------------------------------

_VALUE_KEYS = ("valueQuantity", "valueString", "valueCodeableConcept", "valueInteger",
               "valueBoolean", "valueRatio", "valueRange", "valueDateTime", "valueTime",
               "valuePeriod", "valueSampledData")


_VALUE_KEY_SET = frozenset(_VALUE_KEYS)


def _has_value(holder: dict) -> bool:
    return not _VALUE_KEY_SET.isdisjoint(holder)


def _value(holder: dict) -> tuple[str | None, str | None]:
    """(value text, unit) of an Observation or component; comparators prefixed (`<5`)."""
    q = holder.get("valueQuantity")
    if q is not None:
        q = _dict(q)
        number = _number_text(q.get("value"))
        comparator = _str(q.get("comparator")) or ""
        unit = _str(q.get("code")) or _str(q.get("unit"))
        return (comparator + number if number else None), unit
    if "valueString" in holder:
        return _str(holder["valueString"]), None
    if "valueCodeableConcept" in holder:
        return _concept_text(holder["valueCodeableConcept"]), None
    if "valueInteger" in holder:
        return _number_text(holder["valueInteger"]), None
    if "valueBoolean" in holder:
        b = holder["valueBoolean"]
        return ("true" if b else "false") if isinstance(b, bool) else None, None
    if "valueRatio" in holder:      # passed as text: not a number, the normalizer says so
        r = _dict(holder["valueRatio"])
        return f"{_number_text(_dict(r.get('numerator')).get('value'))}:" \
               f"{_number_text(_dict(r.get('denominator')).get('value'))}", None
    for key in _VALUE_KEYS[6:]:
        if key in holder:
            return orjson.dumps(holder[key]).decode(), None
    return None, None


def _categories(resource: dict) -> set[str]:
    found = set()
    for category in _list(resource.get("category")):
        for coding in _list(_dict(category).get("coding")):
            code = _str(_dict(coding).get("code"))
            if code:
                found.add(code)
    return found


def _observation(res: dict, pos: _Position) -> list[ParsedRow]:
    patient = _patient(res.get("subject"), pos)
    if patient is None:
        return [pos.error("labs", "Observation without a Patient subject")]
    categories = _categories(res)
    if categories and categories.isdisjoint(_CATEGORIES):
        return [pos.error("labs", f"Observation category {min(categories)} not handled")]
    status = _str(res.get("status"))
    status = OBSERVATION_STATUS.get(status, status)
    holders = [res] if _has_value(res) else []
    holders += [c for c in map(_dict, _list(res.get("component"))) if _has_value(c)]
    if not holders:
        if status != "X":
            return [pos.error("labs", _why_no_value(res))]
        holders = [res]                        # a cancellation withdraws a result: no value needed
    obs = _Obs(res, pos, patient, _time(res, "effective"), status, "vital-signs" in categories)
    return [obs.row(h) for h in holders]


_CATEGORIES = frozenset({"laboratory", "vital-signs"})


def _why_no_value(res: dict) -> str:
    absent = _concept_text(res.get("dataAbsentReason"))
    if absent:
        return f"Observation without value (dataAbsentReason {absent})"
    if _list(res.get("hasMember")):
        return "Observation without value (a panel whose members are separate resources)"
    return "Observation without value"


class _Obs:
    """What an Observation's rows share; `row` makes the row for the resource or one component."""

    __slots__ = ("res", "pos", "patient", "at", "status", "vital_signs")

    def __init__(self, res, pos, patient, at, status, vital_signs):
        self.res, self.pos, self.patient, self.at = res, pos, patient, at
        self.status, self.vital_signs = status, vital_signs

    def row(self, holder: dict) -> ParsedRow:
        code, system, name = _code(holder.get("code"))
        value, unit = _value(holder)
        kind = vital_kind_by_loinc().get(code) if system == LOINC_SYSTEM else None
        if kind is not None:
            return self._vital(kind, value, unit)
        if self.vital_signs:
            return self.pos.error("vitals", f"vital-signs Observation with code {code} "
                                            "that is not a tracked vital sign")
        res = self.res
        ref = _dict(_first(holder.get("referenceRange")))
        return ParsedRow("labs", self.pos.line, self.pos.raw, {
            "patient_id": self.patient, "collected_at": self.at, "code": code,
            "code_system": system, "value": value, "unit": unit, "test_name": name,
            "ref_low": _number_text(_dict(ref.get("low")).get("value")),
            "ref_high": _number_text(_dict(ref.get("high")).get("value")),
            "resulted_at": _str(res.get("issued")), "result_status": self.status,
            "accession": _accession(res),
            "source_system": _str(_dict(res.get("meta")).get("source"))})

    def _vital(self, kind: str, value: str | None, unit: str | None) -> ParsedRow:
        if self.status == "X":
            return self.pos.error("vitals", f"vital sign {kind} cancelled or entered in error "
                                            "(not a measurement)")
        if kind == "o2_device":
            value, unit = o2_device_name(value) or value, None
        return self.pos.row("vitals", {"patient_id": self.patient, "measured_at": self.at,
                                       "kind": kind, "value": value, "unit": unit})


# --- Procedure and MedicationAdministration ----------------------------------------------------

def _infusion_row(res: dict, pos: _Position, patient: str, prefix: str, product: str | None,
                  antigen: str | None) -> ParsedRow:
    return pos.row("infusions", {
        "patient_id": patient, "infused_at": _time(res, prefix), "product": product,
        "infusion_id": _str(res.get("id")), "target_antigen": antigen,
        "indication": _concept_text(_first(res.get("reasonCode"))),
        "site_timezone": _time_zone(res, prefix)})


def _procedure(res: dict, pos: _Position) -> list[ParsedRow]:
    patient = _patient(res.get("subject"), pos)
    if patient is None:
        return [pos.error("infusions", "Procedure without a Patient subject")]
    status = _str(res.get("status"))
    if status in _NOT_GIVEN:
        return [pos.error("infusions", f"Procedure with status {status} (not performed)")]
    code = _dict(res.get("code"))
    product = _str(code.get("text")) or _str(_dict(_first(code.get("coding"))).get("display"))
    texts = [product] + [_str(_dict(c).get("display")) for c in _list(code.get("coding"))]
    if not is_cart_infusion(*texts):
        return [pos.error("infusions", "Procedure that is not a CAR-T infusion")]
    med = classify_medication(*texts)
    antigen = med.target_antigen if med is not None and med.feed == "infusions" else None
    return [_infusion_row(res, pos, patient, "performed", product, antigen)]


def _medication_text(res: dict) -> list[str | None]:
    """Texts naming the drug: the concept, the reference display, a contained Medication."""
    concept = _dict(res.get("medicationCodeableConcept"))
    ref = _dict(res.get("medicationReference"))
    texts = [_str(concept.get("text"))] + [_str(_dict(c).get("display"))
                                           for c in _list(concept.get("coding"))]
    texts.append(_str(ref.get("display")))
    target = _str(ref.get("reference")) or ""
    for contained in map(_dict, _list(res.get("contained"))):
        if target.startswith("#") and contained.get("id") == target[1:]:
            texts.append(_concept_text(contained.get("code")))
    return [t for t in texts if t]


def _medication_administration(res: dict, pos: _Position) -> list[ParsedRow]:
    patient = _patient(res.get("subject"), pos)
    if patient is None:
        return [pos.error("events", "MedicationAdministration without a Patient subject")]
    status = _str(res.get("status"))
    if status in _NOT_GIVEN:
        return [pos.error("events", f"MedicationAdministration with status {status} (not given)")]
    texts = _medication_text(res)
    med = classify_medication(*texts)
    if med is None:
        name = texts[0] if texts else "no name"
        return [pos.error("events", f"medication not tracked by cartwatch ({name})")]
    if med.feed == "":
        return [pos.error("events", f"medication not counted: {med.reason}")]
    if med.feed == "infusions":
        return [_infusion_row(res, pos, patient, "effective", texts[0], med.target_antigen)]
    dosage = _dict(res.get("dosage"))
    # the dose as the CSV events feed writes it: the text (`8 mg/kg`), else the number
    value = "1" if med.name == "vasopressor" else (
        _str(dosage.get("text")) or _number_text(_dict(dosage.get("dose")).get("value")))
    return [pos.row("events", {"patient_id": patient, "event_at": _time(res, "effective"),
                               "event_type": med.name, "value": value})]


_HANDLERS: dict[str, Callable[[dict, _Position], list[ParsedRow]]] = {
    "Observation": _observation,
    "Procedure": _procedure,
    "MedicationAdministration": _medication_administration,
}
