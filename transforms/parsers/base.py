"""The one canonical input model every wire-format parser produces (docs/ARCHITECTURE.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

FEEDS = ("labs", "vitals", "infusions", "events")

# The fields each feed's parsed rows carry: the CSV columns of CONTRACT section 1 (labs: `loinc`
# becomes `code` + `code_system`, so HL7 and FHIR local codes fit the same model).
FEED_FIELDS: dict[str, tuple[str, ...]] = {
    "labs": ("patient_id", "collected_at", "code", "code_system", "value", "unit", "test_name",
             "ref_low", "ref_high", "resulted_at", "result_status", "accession", "source_system"),
    "vitals": ("patient_id", "measured_at", "kind", "value", "unit"),
    "infusions": ("patient_id", "infused_at", "product", "infusion_id", "target_antigen",
                  "indication", "site_timezone"),
    "events": ("patient_id", "event_at", "event_type", "value"),
}
LOINC_SYSTEM = "LN"


@dataclass(frozen=True)
class ParsedRow:
    """One result, reading, infusion or event as a parser read it, before any judgement.

    `fields` holds strings or None under the names of FEED_FIELDS[feed]. A row the parser could
    not read at all carries `error` (the quarantine reason) and may have empty fields.
    `line` is the 1-based position in the file: the line for CSV (header = 1) and NDJSON, the
    message number for HL7, the entry number for a FHIR Bundle.
    """

    feed: str
    line: int
    raw: str
    fields: dict[str, str | None] = field(default_factory=dict)
    error: str | None = None
