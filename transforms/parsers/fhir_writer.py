"""FHIR R4 writer: labs / vitals / infusions / events field dicts -> resources, NDJSON, Bundle.

The inverse of fhir_r4.py, for sample data and benchmarks: parsing what it writes gives the same
fields back, with these limits of the format: a number is a JSON number (`12.50` comes back as
`12.5`); a value that is not a number is a `valueString`, which has no unit; a row without
accession comes back with the resource id as accession; an infusion's `target_antigen` comes back
from the product table and `site_timezone` is not written; an event's value is the dose
(`vasopressor`: one agent per administration). Events other than the drugs of
codes.yaml (crs_grade, hemophagocytosis, ...) have no FHIR form here. Resource ids are stable
hashes of what identifies the row, so a corrected result gets the id of the result it corrects,
as a FHIR server would give a new version of the same resource.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import orjson

from transforms.parsers.base import LOINC_SYSTEM
from transforms.parsers.codes import medication_for_event, vital_loinc_by_kind
from transforms.parsers.fhir_r4 import LOINC_URL, OBSERVATION_STATUS

Row = Mapping[str, str | None]

UCUM_URL = "http://unitsofmeasure.org"
CATEGORY_URL = "http://terminology.hl7.org/CodeSystem/observation-category"
V2_0203_URL = "http://terminology.hl7.org/CodeSystem/v2-0203"
BP_PANEL = "85354-9"
_STATUS_OUT = {"F": "final", "C": "corrected", "P": "preliminary", "X": "cancelled"}
_QUANTITY = re.compile(r"(<=|>=|<|>)?\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))")
assert set(_STATUS_OUT.values()) <= set(OBSERVATION_STATUS)


def _id(*parts: str | None) -> str:
    return hashlib.sha1("|".join(p or "" for p in parts).encode()).hexdigest()[:32]


def _number(text: str) -> int | float:
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)


def _plain_number(text: str | None) -> int | float | None:
    m = _QUANTITY.fullmatch(text.strip()) if text else None
    return _number(m.group(2)) if m and not m.group(1) else None


def _value(value: str | None, unit: str | None) -> dict[str, Any]:
    """`valueQuantity` for a number (with comparator), else `valueString`; nothing for None."""
    if value is None or value == "":
        return {}
    m = _QUANTITY.fullmatch(value.strip())
    if not m:
        return {"valueString": value}
    q: dict[str, Any] = {"value": _number(m.group(2))}
    if m.group(1):
        q["comparator"] = m.group(1)
    if unit:
        q.update(unit=unit, system=UCUM_URL, code=unit)
    return {"valueQuantity": q}


def _category(code: str) -> list[dict]:
    return [{"coding": [{"system": CATEGORY_URL, "code": code}]}]


def _subject(row: Row) -> dict:
    return {"reference": f"Patient/{row.get('patient_id') or ''}"}


def _drop_empty(resource: dict) -> dict:
    return {k: v for k, v in resource.items() if v not in (None, "", [], {})}


def lab_observation(row: Row) -> dict:
    """A laboratory Observation from a labs row."""
    system = LOINC_URL if row.get("code_system") == LOINC_SYSTEM else row.get("code_system")
    coding = _drop_empty({"system": system, "code": row.get("code"),
                          "display": row.get("test_name")})
    ref = {k: {"value": n} for k, f in (("low", "ref_low"), ("high", "ref_high"))
           if (n := _plain_number(row.get(f))) is not None}
    status = row.get("result_status") or "F"
    accession = row.get("accession")
    return _drop_empty({
        "resourceType": "Observation",
        "id": _id(row.get("patient_id"), accession or row.get("collected_at"), row.get("code")),
        "meta": _drop_empty({"source": row.get("source_system")}),
        "identifier": [{"type": {"coding": [{"system": V2_0203_URL, "code": "ACSN"}]},
                        "value": accession}] if accession else None,
        "status": _STATUS_OUT.get(status, status),
        "category": _category("laboratory"),
        "code": _drop_empty({"coding": [coding], "text": row.get("test_name")}),
        "subject": _subject(row),
        "effectiveDateTime": row.get("collected_at"),
        "issued": row.get("resulted_at"),
        **_value(row.get("value"), row.get("unit")),
        "referenceRange": [ref] if ref else None,
    })


def _vital_code(kind: str) -> dict:
    return {"coding": [{"system": LOINC_URL, "code": vital_loinc_by_kind()[kind], "display": kind}],
            "text": kind}


def vital_observation(row: Row) -> dict:
    """A vital-signs Observation from a vitals row (an o2_device as valueCodeableConcept text)."""
    kind = row.get("kind") or ""
    if kind == "o2_device":
        value = {"valueCodeableConcept": {"text": row.get("value")}} if row.get("value") else {}
    else:
        value = _value(row.get("value"), row.get("unit"))
    return _drop_empty({
        "resourceType": "Observation",
        "id": _id(row.get("patient_id"), kind, row.get("measured_at")),
        "status": "final",
        "category": _category("vital-signs"),
        "code": _vital_code(kind),
        "subject": _subject(row),
        "effectiveDateTime": row.get("measured_at"),
        **value,
    })


def blood_pressure_panel(sbp: Row, dbp: Row) -> dict:
    """One blood pressure panel (85354-9) with systolic and diastolic components."""
    components = [{"code": _vital_code(r["kind"]), **_value(r.get("value"), r.get("unit"))}
                  for r in (sbp, dbp)]
    return {
        "resourceType": "Observation",
        "id": _id(sbp.get("patient_id"), BP_PANEL, sbp.get("measured_at")),
        "status": "final",
        "category": _category("vital-signs"),
        "code": {"coding": [{"system": LOINC_URL, "code": BP_PANEL,
                             "display": "Blood pressure panel with all children optional"}]},
        "subject": _subject(sbp),
        "effectiveDateTime": sbp.get("measured_at"),
        "component": components,
    }


def _infusion_common(row: Row) -> dict:
    return {"id": row.get("infusion_id") or _id(row.get("patient_id"), row.get("infused_at")),
            "status": "completed", "subject": _subject(row),
            "reasonCode": [{"text": row["indication"]}] if row.get("indication") else None}


def infusion_procedure(row: Row) -> dict:
    """A CAR-T infusion as a Procedure (code.text = product)."""
    return _drop_empty({"resourceType": "Procedure", **_infusion_common(row),
                        "code": {"text": row.get("product")},
                        "performedDateTime": row.get("infused_at")})


def infusion_administration(row: Row) -> dict:
    """A CAR-T infusion as a MedicationAdministration of the product."""
    return _drop_empty({"resourceType": "MedicationAdministration", **_infusion_common(row),
                        "medicationCodeableConcept": {"text": row.get("product")},
                        "effectiveDateTime": row.get("infused_at")})


def event_administration(row: Row, medication: str | None = None) -> dict:
    """A drug event (tocilizumab, a corticosteroid, a vasopressor...) as an administration."""
    event_type = row.get("event_type") or ""
    name = medication or medication_for_event(event_type)
    if name is None:
        raise ValueError(f"event type {event_type!r} has no FHIR MedicationAdministration form")
    dose = _plain_number(row.get("value")) if event_type != "vasopressor" else None
    return _drop_empty({
        "resourceType": "MedicationAdministration",
        "id": _id(row.get("patient_id"), event_type, row.get("event_at")),
        "status": "completed",
        "medicationCodeableConcept": {"text": name},
        "subject": _subject(row),
        "effectiveDateTime": row.get("event_at"),
        "dosage": {"dose": {"value": dose}} if dose is not None else None,
    })


_WRITERS = {"labs": lab_observation, "vitals": vital_observation,
            "infusions": infusion_procedure, "events": event_administration}


def resources_for(feed: str, rows: Iterable[Row]) -> Iterator[dict]:
    """One resource per row of a feed (infusions as Procedures)."""
    write = _WRITERS[feed]
    return (write(r) for r in rows)


def to_ndjson(resources: Iterable[dict]) -> str:
    """NDJSON text: one resource a line, as a Bulk Data export writes it."""
    return "".join(orjson.dumps(r).decode() + "\n" for r in resources)


def write_ndjson(path: str | Path, resources: Iterable[dict]) -> int:
    """Stream resources to an NDJSON file; returns how many were written."""
    n = 0
    with open(path, "wb") as fh:
        for r in resources:
            fh.write(orjson.dumps(r) + b"\n")
            n += 1
    return n


def _type_and_id(resource: dict) -> str:
    return f"{resource['resourceType']}/{resource.get('id', '')}"


def to_bundle(resources: Iterable[dict], *, bundle_type: str = "collection") -> dict:
    """A Bundle with one entry per resource (fullUrl: a urn:uuid derived from type and id)."""
    entries = [{"fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, _type_and_id(r))}",
                "resource": r} for r in resources]
    return {"resourceType": "Bundle", "type": bundle_type, "entry": entries}
