"""The factors that take canonical lab values to the units the EASIX formulas are written in."""

from __future__ import annotations

from transforms.rules import Rules, RulesError
from transforms.units import UnitConverter

# The units the EASIX formula is written in (Luft 2017): LDH U/L, creatinine mg/dL,
# platelets 10^9/L; m-EASIX puts CRP in mg/dL in place of creatinine (Pennisi 2021).
EASIX_FORMULA_UNITS = {"ldh": "U/L", "creatinine": "mg/dL", "platelets": "10*9/L", "crp": "mg/dL"}


def easix_unit_params(rules: Rules) -> dict[str, float]:
    """`$easix_unit__<analyte>`: multiply a canonical value by it to get the formula's unit."""
    converter = UnitConverter(rules)
    factors = {}
    for analyte, unit in EASIX_FORMULA_UNITS.items():
        linear = converter.to_canonical(analyte, unit)
        if linear.offset:
            raise RulesError(f"{analyte}: {unit} is not a pure scale of the canonical unit")
        factors[f"easix_unit__{analyte}"] = 1.0 / linear.scale
    return factors
