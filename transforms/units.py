"""Unit conversion to the canonical units of the rules file, with pint and UCUM-style spellings.

Lab systems write the same unit many ways (`10*9/L`, `10^3/uL`, `K/uL`, `x10E9/L`, `ug/L`,
`mcg/L`, `IU/L`, `ukat/L`, `Cel`, `[degF]`). `normalize_unit_text` maps those spellings to an
expression pint reads; pint then does the dimensional arithmetic, and substance concentrations
(mmol/L) become mass concentrations through the analyte's molar mass from the rules file. A unit
that does not convert is refused with a reason, never guessed: ferritin 10,000 mg/L is not
10,000 ng/mL (it is 10,000,000).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import pint

from transforms.rules import Rules

_REGISTRY = pint.UnitRegistry()
# IU for these enzymes is the same as U (1 umol/min); UCUM writes it [IU].
_REGISTRY.define("international_unit = enzyme_unit = IU")
_ureg = _REGISTRY

# Spellings -> pint expressions. Order matters: the power-of-ten forms come first.
_POWER_OF_TEN = re.compile(r"^(?:x\s*)?10\s*(?:\*|\^|E|e|\*\*)\s*(\d+)\s*/\s*(.+)$")
_THOUSANDS_PER = re.compile(r"^(?:K|k|thou|THOU|10\^?3)\s*/\s*(.+)$")
_SIMPLE = {
    "cel": "degC", "°c": "degC", "degc": "degC", "c": "degC", "[degf]": "degF", "°f": "degF",
    "degf": "degF", "f": "degF",
    "mm[hg]": "mmHg", "mmhg": "mmHg",
    "%": "percent", "/min": "1/minute", "bpm": "1/minute", "{beats}/min": "1/minute",
    "{ratio}": "dimensionless", "ratio": "dimensionless", "inr": "dimensionless", "": "dimensionless",
    "s": "second", "sec": "second", "seconds": "second",
    "[iu]/l": "IU/L", "iu/l": "IU/L", "u/l": "U/L", "ukat/l": "microkatal/L",
    "/ul": "1/microliter", "cells/ul": "1/microliter", "/mm3": "1/millimeter**3",
    "g/l": "g/L", "g/dl": "g/dL", "mg/dl": "mg/dL", "mg/l": "mg/L", "ug/l": "ug/L",
    "mcg/l": "ug/L", "ug/ml": "ug/mL", "ng/ml": "ng/mL", "pg/ml": "pg/mL", "mmol/l": "mmol/L",
    "umol/l": "umol/L", "l/min": "L/minute", "u/ml": "U/mL", "g/l/min": "g/L/minute",
}
# Suffixes that qualify what was measured; both sides must carry the same one.
_QUALIFIERS = ("FEU", "DDU")


class UnitError(ValueError):
    """A unit that does not convert to the canonical one; the message is the quarantine reason."""


@dataclass(frozen=True)
class Linear:
    """canonical = value * scale + offset (offset is non-zero only for temperatures)."""

    scale: float
    offset: float = 0.0

    def apply(self, value: float) -> float:
        return value * self.scale + self.offset


def normalize_unit_text(text: str) -> tuple[str, str | None]:
    """A pint expression and the qualifier (FEU/DDU) of a unit as written in a feed."""
    unit = (text or "").strip().replace("µ", "u").replace("μ", "u")
    qualifier = next((q for q in _QUALIFIERS if unit.upper().endswith(q)), None)
    if qualifier:
        unit = unit[: -len(qualifier)].strip()
    unit = re.sub(r"\{[^}]*\}(?!/)", "", unit).strip() if unit not in ("{ratio}",) else unit
    if (m := _POWER_OF_TEN.match(unit)):
        return f"1e{m.group(1)}/({_pint_expr(m.group(2))})", qualifier
    if (m := _THOUSANDS_PER.match(unit)):
        return f"1e3/({_pint_expr(m.group(1))})", qualifier
    if unit.upper() == "G/L" and unit != "g/L":  # giga-per-litre, the European cell-count unit
        return "1e9/(L)", qualifier
    return _pint_expr(unit), qualifier


def _pint_expr(unit: str) -> str:
    return _SIMPLE.get(unit.lower(), unit)


def _quantity(expr: str, magnitude: float) -> pint.Quantity:
    """A pint quantity; `1e9/L` style expressions carry their scale into the magnitude."""
    if expr.startswith("1e") and "/(" in expr:
        scale, rest = expr.split("/(", 1)
        return _ureg.Quantity(magnitude * float(scale), "1/(" + rest)
    return _ureg.Quantity(magnitude, expr)


class UnitConverter:
    """Per analyte (or vital kind) conversion to the canonical unit, cached per spelling."""

    def __init__(self, rules: Rules):
        self._rules = rules
        self._molar_mass = {a.name: a.molar_mass_g_per_mol for a in rules.analytes.values()}
        self._canonical = {a.name: a.canonical_unit for a in rules.analytes.values()}
        self._canonical.update({k: str(v["canonical_unit"]) for k, v in rules.vitals.items()})
        self._cache: dict[tuple[str, str], Linear | UnitError] = {}

    def canonical_unit(self, analyte: str) -> str:
        return self._canonical[analyte]

    def to_canonical(self, analyte: str, unit: str | None) -> Linear:
        key = (analyte, (unit or "").strip())
        if key not in self._cache:
            try:
                self._cache[key] = self._linear(analyte, key[1])
            except UnitError as exc:
                self._cache[key] = exc
        found = self._cache[key]
        if isinstance(found, UnitError):
            raise found
        return found

    def _linear(self, analyte: str, unit: str) -> Linear:
        canonical = self._canonical[analyte]
        if unit == canonical:
            return Linear(1.0)
        if not unit and normalize_unit_text(canonical)[0] != "dimensionless":
            raise UnitError(f"missing unit for {analyte}")
        source_expr, source_q = normalize_unit_text(unit)
        target_expr, target_q = normalize_unit_text(canonical)
        if source_q != target_q:
            raise UnitError(f"unit {unit!r} does not convert to {canonical!r} for {analyte} "
                            f"({source_q or 'no qualifier'} vs {target_q or 'no qualifier'})")
        try:
            at_zero = self._convert(analyte, 0.0, source_expr, target_expr)
            at_one = self._convert(analyte, 1.0, source_expr, target_expr)
        except Exception:  # pint's parser raises many kinds (even tokenize errors) on odd text
            raise UnitError(f"unit {unit!r} does not convert to {canonical!r} for {analyte}") from None
        # 12 significant digits: pint's float arithmetic must not turn 5 ug/L into 4.999999 ng/mL
        return Linear(float(f"{at_one - at_zero:.12g}"), float(f"{at_zero:.12g}"))

    def _convert(self, analyte: str, magnitude: float, source: str, target: str) -> float:
        quantity = _quantity(source, magnitude)
        target_unit = _quantity(target, 1.0)
        substance = _ureg.Quantity(1, "mol/L").dimensionality
        mass = _ureg.Quantity(1, "g/L").dimensionality
        if quantity.dimensionality == substance and target_unit.dimensionality == mass:
            molar_mass = self._molar_mass.get(analyte)
            if molar_mass is None:
                raise UnitError(f"no molar mass for {analyte}")
            quantity = quantity.to("mol/L").magnitude * molar_mass * _ureg.Quantity(1, "g/L")
        converted = quantity.to(target_unit.units).magnitude / target_unit.magnitude
        return float(converted)
