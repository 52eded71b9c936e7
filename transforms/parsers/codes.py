"""The code and name tables the HL7 and FHIR parsers and writers share.

Vital-sign LOINC codes come from the `vitals:` block of transforms/clinical_rules.yaml (through
`transforms.rules.load_rules`), so the table exists once; codes.yaml beside this file adds only what
the rules file does not say: extra LOINC codes for a vital, CAR-T product names, the drugs that
make events, and the words charts use for oxygen devices.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from transforms.rules import load_rules

CODES_PATH = Path(__file__).with_name("codes.yaml")
_NON_WORD = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True)
class Medication:
    """What a medication or procedure text names: an infusion, an event, or an excluded drug."""

    feed: str                        # "infusions", "events" or "" (excluded: see `reason`)
    name: str                        # canonical product name or event_type
    target_antigen: str | None = None
    reason: str | None = None


def _words(text: str) -> str:
    """Lower-case words separated by single spaces, padded, so phrases match on word edges."""
    return f" {_NON_WORD.sub(' ', text.lower()).strip()} "


class NameTable:
    """Phrases -> one target each; a text matches every target whose phrase it contains as words.

    `yields_to` lets a generic target give way to a specific one found in the same text (a
    "nasal cannula" in "high flow nasal cannula"); any other pair of targets is ambiguous.
    """

    def __init__(self, entries: Iterable[tuple[Any, Iterable[str]]],
                 yields_to: Mapping[Any, Iterable[Any]] | None = None):
        self._phrases = [(_words(p), target) for target, names in entries for p in names]
        self._yields = {k: frozenset(v) for k, v in (yields_to or {}).items()}

    def matches(self, text: str) -> set[Any]:
        words = _words(text)
        found = {target for phrase, target in self._phrases if phrase in words}
        return {t for t in found if not self._yields.get(t, frozenset()) & found}

    def match(self, text: str | None) -> Any | None:
        """The one target the text names, or None when it names none or several."""
        if not text:
            return None
        found = self.matches(text)
        return next(iter(found)) if len(found) == 1 else None


@cache
def _doc() -> Mapping[str, Any]:
    return yaml.safe_load(CODES_PATH.read_text(encoding="utf-8"))


@cache
def vital_kind_by_loinc() -> Mapping[str, str]:
    """LOINC code -> vitals kind: the rules file's codes plus codes.yaml's aliases."""
    kinds: dict[str, str] = {}
    for kind, spec in load_rules().vitals.items():
        codes = spec.get("loinc") or ()
        for code in [codes] if isinstance(codes, str) else codes:
            kinds[str(code)] = kind
    kinds.update({str(k): v for k, v in (_doc().get("vital_loinc_aliases") or {}).items()})
    return kinds


@cache
def vital_loinc_by_kind() -> Mapping[str, str]:
    """Vitals kind -> its LOINC code in the rules file (the first one if it lists several)."""
    out = {}
    for kind, spec in load_rules().vitals.items():
        codes = spec.get("loinc") or ()
        out[kind] = str(codes if isinstance(codes, str) else codes[0])
    return out


@cache
def _o2_table() -> NameTable:
    spec = _doc()["o2_devices"]
    return NameTable(((d, s["names"]) for d, s in spec.items()),
                     {d: s.get("yields_to", ()) for d, s in spec.items()})


def o2_device_name(text: str | None) -> str | None:
    """The CONTRACT o2_device name a charted text unambiguously means, else None."""
    return _o2_table().match(text)


@cache
def _medication_table() -> NameTable:
    doc = _doc()
    entries: list[tuple[Medication, list[str]]] = []
    for p in doc["cart_products"]:
        entries.append((Medication("infusions", p["product"], p.get("target_antigen")), p["names"]))
    for m in doc["medications"]:
        entries.append((Medication("events", m["event_type"]), m["names"]))
    for x in doc.get("excluded_medications") or ():
        entries.append((Medication("", x["names"][0], reason=x["reason"]), x["names"]))
    return NameTable(entries)


def classify_medication(*texts: str | None) -> Medication | None:
    """The one product or drug the texts name (first text that names exactly one), else None."""
    table = _medication_table()
    for text in texts:
        found = table.match(text)
        if found is not None:
            return found
    return None


@cache
def _cart_terms() -> NameTable:
    doc = _doc()
    return NameTable([("cart", doc["cart_procedure_terms"]),
                      ("before", doc.get("cart_procedure_exclusions") or ())])


def is_cart_infusion(*texts: str | None) -> bool:
    """True when procedure texts name CAR-T (a product or the therapy) and no earlier step
    (apheresis, manufacturing...), so the procedure can be taken for the infusion itself."""
    words = [t for t in texts if t]
    found = set().union(*(_cart_terms().matches(t) for t in words)) if words else set()
    named = "cart" in found or any(
        (m := classify_medication(t)) is not None and m.feed == "infusions" for t in words)
    return named and "before" not in found


@cache
def medication_for_event(event_type: str) -> str | None:
    """The first drug name codes.yaml lists for an event_type (what a writer names it)."""
    for m in _doc()["medications"]:
        if m["event_type"] == event_type:
            return m["names"][0]
    return None
