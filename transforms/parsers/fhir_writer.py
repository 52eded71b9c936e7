"""FHIR R4 writer: labs / vitals / infusions / events field dicts -> resources, NDJSON, Bundle.

The inverse of fhir_r4.py, for sample data and benchmarks: parsing what it writes gives the same
fields back, with these limits of the format: a number is a JSON number (`12.50` comes back as
`12.5`, `1,250` as `1250`); a value that is not a number is a `valueString`, which has no unit; a
unit that is no UCUM code (`mg/L FEU`, `10^3/uL`) is sent as `unit` text only; a row without
accession comes back with the resource id as accession; an infusion's `target_antigen` comes back
from the product table, and its `site_timezone` is written as the `tz-code` extension of the
infusion time, which fhir_r4.py does not read (the parsed row has none); an event's value is
written as the dose (`8 mg/kg` -> value 8, UCUM unit mg/kg, the text in `dosage.text`) and comes
back as the dose number only (`8`); a `vasopressor` event is one administration (value 1).
Events other than the drugs of codes.yaml (crs_grade, hemophagocytosis, ...) have no FHIR form
here. Resource ids are stable hashes of what identifies the row, so a corrected result gets the id
of the result it corrects, as a FHIR server would give a new version of the same resource.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence
from zoneinfo import ZoneInfo

import orjson

from transforms.parsers.base import LOINC_SYSTEM
from transforms.parsers.codes import (Medication, classify_medication, medication_for_event,
                                      vital_loinc_by_kind)
from transforms.parsers.fhir_r4 import LOINC_URL, OBSERVATION_STATUS
from transforms.parsers.hl7_writer import SAMPLE_PATIENTS, device_text, sample_rows

Row = Mapping[str, str | None]

UCUM_URL = "http://unitsofmeasure.org"
CATEGORY_URL = "http://terminology.hl7.org/CodeSystem/observation-category"
V2_0203_URL = "http://terminology.hl7.org/CodeSystem/v2-0203"
TZ_CODE_URL = "http://hl7.org/fhir/StructureDefinition/tz-code"    # R4 extension on a dateTime
BP_PANEL = "85354-9"
_STATUS_OUT = {"F": "final", "C": "corrected", "P": "preliminary", "X": "cancelled"}
_QUANTITY = re.compile(r"(<=|>=|<|>)?\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))")
_THOUSANDS = re.compile(r"(<=|>=|<|>)?\s*([+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?)")
_UCUM = re.compile(r"[!-~]+")          # printable ASCII, no space: what a UCUM code can be
_DOSE = re.compile(r"(?:(?P<drug>.*?\S)\s+)?(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
                   r"(?:\s*(?P<unit>[^\s\d][^\s]*))?")
_NOT_NAMED = Medication("", "")
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
    if not m:          # thousands separators: JSON has none, the number is the same
        m = _THOUSANDS.fullmatch(value.strip())
        if not m:
            return {"valueString": value}
        m = _QUANTITY.fullmatch((m.group(1) or "") + m.group(2).replace(",", ""))
    q: dict[str, Any] = {"value": _number(m.group(2))}
    if m.group(1):
        q["comparator"] = m.group(1)
    q.update(_unit(unit))
    return {"valueQuantity": q}


def _unit(unit: str | None) -> dict[str, str]:
    """A Quantity's unit: UCUM system and code when it can be a UCUM code, else text only."""
    if not unit:
        return {}
    if _UCUM.fullmatch(unit) and "^" not in unit:
        return {"unit": unit, "system": UCUM_URL, "code": unit}
    return {"unit": unit}


def _category(code: str) -> list[dict]:
    return [{"coding": [{"system": CATEGORY_URL, "code": code}]}]


def _subject(row: Row) -> dict | None:
    """`Patient/<id>`; no subject at all for a row without patient_id."""
    return {"reference": f"Patient/{row['patient_id']}"} if row.get("patient_id") else None


def _drop_empty(resource: dict) -> dict:
    return {k: v for k, v in resource.items() if v not in (None, "", [], {})}


def lab_observation(row: Row) -> dict:
    """A laboratory Observation from a labs row (the lab's own test name as `code.text`; a
    coding display would be the code system's name for the code, which the row does not give)."""
    system = LOINC_URL if row.get("code_system") == LOINC_SYSTEM else row.get("code_system")
    coding = _drop_empty({"system": system, "code": row.get("code")})
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
    return {"coding": [{"system": LOINC_URL, "code": vital_loinc_by_kind()[kind]}], "text": kind}


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


def _zone_extension(row: Row) -> dict | None:
    """The site time zone as the R4 `tz-code` extension of the infusion time (`_<name>`)."""
    zone = row.get("site_timezone")
    return {"extension": [{"url": TZ_CODE_URL, "valueCode": zone}]} if zone else None


def infusion_procedure(row: Row) -> dict:
    """A CAR-T infusion as a Procedure (code.text = product)."""
    return _drop_empty({"resourceType": "Procedure", **_infusion_common(row),
                        "code": {"text": row.get("product")},
                        "performedDateTime": row.get("infused_at"),
                        "_performedDateTime": _zone_extension(row)})


def infusion_administration(row: Row) -> dict:
    """A CAR-T infusion as a MedicationAdministration of the product."""
    return _drop_empty({"resourceType": "MedicationAdministration", **_infusion_common(row),
                        "medicationCodeableConcept": {"text": row.get("product")},
                        "effectiveDateTime": row.get("infused_at"),
                        "_effectiveDateTime": _zone_extension(row)})


def event_administration(row: Row, medication: str | None = None) -> dict:
    """A drug event (tocilizumab, a corticosteroid, a vasopressor...) as an administration.

    The medication is `medication`, else the drug the value names (`dexamethasone 10 mg`), else
    codes.yaml's first name for the event type; a value ending in a number and unit is the dose.
    """
    event_type = row.get("event_type") or ""
    if medication_for_event(event_type) is None:
        raise ValueError(f"event type {event_type!r} has no FHIR MedicationAdministration form")
    value = (row.get("value") or "").strip()
    m = _DOSE.fullmatch(value) if event_type != "vasopressor" else None
    named = m.group("drug") if m else None
    if named and (classify_medication(named) or _NOT_NAMED).name != event_type:
        named = None                   # the value's words name no drug of this event type
    name = medication or named or medication_for_event(event_type)
    dosage = {"text": value, "dose": {"value": _number(m.group("number")), **_unit(m.group("unit"))}
              } if m else None
    return _drop_empty({
        "resourceType": "MedicationAdministration",
        "id": _id(row.get("patient_id"), event_type, row.get("event_at")),
        "status": "completed",
        "medicationCodeableConcept": {"text": name},
        "subject": _subject(row),
        "effectiveDateTime": row.get("event_at"),
        "dosage": dosage,
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


# --- the sample cohort in FHIR (the `cartwatch.synth` hook) -------------------------------------

_NAIVE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?")


def with_offset(text: str | None, zone: str | None) -> str | None:
    """A naive local time as the same moment with its UTC offset in `zone` (FHIR requires an
    offset on a time of day). The repeated hour of a DST change is read as its first occurrence,
    as the loader reads naive times; a time the change skips, anything else, or no zone: as is."""
    if not text or not zone or not _NAIVE.fullmatch(text):
        return text
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        return text
    tz = ZoneInfo(zone)
    aware = naive.replace(tzinfo=tz, fold=0)
    if aware.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) != naive:
        return text                    # skipped by the clocks: stays as malformed as it was
    return aware.isoformat()


def _times_with_offset(row: dict, zones: Mapping[str, str]) -> dict:
    zone = zones.get(row.get("patient_id") or "")
    return {k: with_offset(v, zone) if k.endswith("_at") else v for k, v in row.items()}


def _versioned(resources: Iterable[dict]) -> list[dict]:
    """meta.versionId per resource id: a resource sent again unchanged keeps its version, a
    changed one (a correction, a cancellation, the final after a preliminary) gets the next."""
    last: dict[str, tuple[bytes, int]] = {}
    out = []
    for resource in resources:
        content = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
        previous = last.get(resource["id"])
        version = 1 if previous is None else previous[1] + (previous[0] != content)
        last[resource["id"]] = (content, version)
        rest = {k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}
        out.append({"resourceType": resource["resourceType"], "id": resource["id"],
                    "meta": {"versionId": str(version), **resource.get("meta", {})}, **rest})
    return out


def _vital_resources(rows: list[dict]) -> Iterator[dict]:
    """One Observation per reading; a systolic and diastolic pair of one time as a BP panel."""
    i = 0
    while i < len(rows):
        row = rows[i]
        nxt = rows[i + 1] if i + 1 < len(rows) else None
        if (row.get("kind") == "sbp" and nxt is not None and nxt.get("kind") == "dbp"
                and (nxt.get("patient_id"), nxt.get("measured_at"))
                == (row.get("patient_id"), row.get("measured_at"))):
            yield blood_pressure_panel(row, nxt)
            i += 2
            continue
        yield vital_observation(row)
        i += 1


def has_fhir_form(event: Row) -> bool:
    """Events a MedicationAdministration carries: the drugs of codes.yaml, and a vasopressor
    count of exactly 1 (one administration is one agent; 0 or several agents have no form)."""
    event_type = event.get("event_type") or ""
    if medication_for_event(event_type) is None:
        return False
    return event_type != "vasopressor" or (event.get("value") or "").strip() == "1"


def _write_json_lines(path: Path, resources: list[dict]) -> Path | None:
    if not resources:
        return None
    write_ndjson(path, resources)
    return path


def write_sample_feeds(feeds: Mapping[str, list[Mapping[str, object]]], out_dir: str | Path,
                       patients: Sequence[str] | None = SAMPLE_PATIENTS) -> list[Path]:
    """Write `patients` (None: all; by default the same as in HL7) as FHIR R4
    under `out_dir/fhir/`, as a Bulk Data export writes it: `Observation.ndjson` (labs, vitals;
    systolic and diastolic as one blood pressure panel), `Procedure.ndjson` (infusions) and
    `MedicationAdministration.ndjson` (the drug events, see `has_fhir_form`), plus
    `result_versions_bundle.json`, a Bundle (collection) of every version of each result that
    was ever not final (corrected, cancelled, preliminary), the same resources as in the export.

    Naive local times get the offset of the patient's site_timezone (infusions feed); the
    re-sent labs file has no FHIR copy (an export is a snapshot). Returns the files written and
    removes the `.ndjson` / `.json` files a previous run left there.
    """
    folder = Path(out_dir) / "fhir"
    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("*.ndjson"), *folder.glob("*.json")]:
        old.unlink()
    infusions = sample_rows(feeds.get("infusions") or [], patients)
    zones: dict[str, str] = {}
    for row in infusions:
        if row.get("patient_id") and row.get("site_timezone"):
            zones.setdefault(row["patient_id"], row["site_timezone"])
    labs = [_times_with_offset(r, zones) for r in sample_rows(feeds.get("labs") or [], patients)]
    vitals = [device_text(_times_with_offset(r, zones))
              for r in sample_rows(feeds.get("vitals") or [], patients)]
    events = [_times_with_offset(r, zones) for r in sample_rows(feeds.get("events") or [], patients)
              if has_fhir_form(r)]
    lab_resources = _versioned(lab_observation(r) for r in labs)
    observations = lab_resources + _versioned(_vital_resources(vitals))
    versions: dict[str, list[dict]] = {}
    for resource in lab_resources:
        kept = versions.setdefault(resource["id"], [])
        if all(r["meta"]["versionId"] != resource["meta"]["versionId"] for r in kept):
            kept.append(resource)
    bundle = [r for kept in versions.values() if any(r["status"] != "final" for r in kept)
              for r in kept]
    written = [
        _write_json_lines(folder / "Observation.ndjson", observations),
        _write_json_lines(folder / "Procedure.ndjson", [infusion_procedure(r) for r in infusions]),
        _write_json_lines(folder / "MedicationAdministration.ndjson",
                          _versioned(event_administration(r) for r in events)),
    ]
    if bundle:
        path = folder / "result_versions_bundle.json"
        path.write_bytes(orjson.dumps(to_bundle(bundle)) + b"\n")
        written.append(path)
    return [p for p in written if p is not None]
