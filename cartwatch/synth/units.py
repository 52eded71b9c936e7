"""How each unit profile writes each analyte and vital: unit spelling, scale from canonical, decimals.

The generator computes every value in the canonical unit of the rules file, then writes it in the
patient's profile. Written values are rounded, so the ground truth is computed from what a reader
gets back (`as_read`), not from the unrounded model. The conversion factors are unit arithmetic
(g/L -> mg/dL, U/L -> ukat/L); substance concentrations use the molar masses of the rules file.
This is the writing side only, kept apart from the pipeline's reader (transforms/units.py, pint)
on purpose: tests/synth reads every written value back with that reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from transforms.rules import Rules, load_rules

LAB_ANALYTES = ("ferritin", "crp", "il6", "fibrinogen", "ast", "alt", "ldh", "bilirubin_total",
                "triglycerides", "creatinine", "platelets", "anc", "hemoglobin", "wbc", "pt", "inr",
                "aptt", "d_dimer")
VITAL_KINDS = ("temperature", "sbp", "dbp", "map", "heart_rate", "spo2", "o2_flow", "o2_device")
O2_DEVICES = ("room_air", "nasal_cannula", "high_flow", "face_mask", "non_rebreather", "venturi",
              "cpap", "bipap", "mechanical_ventilation")

# Decimals a laboratory reports in the canonical unit.
CANONICAL_DECIMALS = {"ferritin": 0, "crp": 1, "il6": 1, "fibrinogen": 0, "ast": 0, "alt": 0, "ldh": 0,
                      "bilirubin_total": 1, "triglycerides": 0, "creatinine": 2, "platelets": 0,
                      "anc": 2, "hemoglobin": 1, "wbc": 2, "pt": 1, "inr": 2, "aptt": 1, "d_dimer": 2,
                      "temperature": 1, "sbp": 0, "dbp": 0, "map": 0, "heart_rate": 0, "spo2": 0,
                      "o2_flow": 0, "o2_device": 0}


@dataclass(frozen=True)
class Written:
    """written = canonical * scale + offset, rounded to `decimals`."""

    unit: str
    scale: float = 1.0
    offset: float = 0.0
    decimals: int = 0


def _per_molar(rules: Rules, analyte: str) -> float:
    """mg/dL -> umol/L: x 10 (mg/L) / molar mass (g/mol) x 1000."""
    return 1e4 / rules.analyte(analyte).molar_mass_g_per_mol


@lru_cache(maxsize=None)
def profiles() -> dict[str, dict[str, Written]]:
    """Unit profile -> analyte or vital kind -> how it is written."""
    rules = load_rules()
    canonical = {a: Written(rules.analyte(a).canonical_unit, decimals=CANONICAL_DECIMALS[a])
                 for a in LAB_ANALYTES}
    canonical |= {k: Written(str(rules.vitals[k]["canonical_unit"]), decimals=CANONICAL_DECIMALS[k])
                  for k in VITAL_KINDS}
    ukat = 1 / 60   # 1 ukat/L = 60 U/L
    si = canonical | {
        "ferritin": Written("ug/L"),
        "fibrinogen": Written("g/L", 0.01, decimals=2),
        "hemoglobin": Written("g/L", 10.0),
        "bilirubin_total": Written("umol/L", _per_molar(rules, "bilirubin_total")),
        "creatinine": Written("umol/L", _per_molar(rules, "creatinine")),
        "triglycerides": Written("mmol/L", _per_molar(rules, "triglycerides") / 1000, decimals=2),
        "ast": Written("ukat/L", ukat, decimals=2),
        "alt": Written("ukat/L", ukat, decimals=2),
        "ldh": Written("ukat/L", ukat, decimals=2),
    }
    us_alt = canonical | {
        "temperature": Written("[degF]", 9 / 5, 32.0, decimals=1),
        "platelets": Written("/uL", 1000.0),
        "anc": Written("10^3/uL", decimals=2),
        "wbc": Written("10^3/uL", decimals=2),
    }
    return {"canonical": canonical, "si": si, "us_alt": us_alt}


@lru_cache(maxsize=None)
def unit_names() -> tuple[str, ...]:
    """Every unit spelling any profile writes; rows carry an index into this table."""
    return tuple(sorted({w.unit for profile in profiles().values() for w in profile.values()}))


def write(profile: str, names: tuple[str, ...], index: np.ndarray, canonical: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Written values, their decimals, unit codes (unit_names()) and the canonical values a
    reader gets back."""
    specs = [profiles()[profile][n] for n in names]
    scale, offset = (np.array([getattr(s, k) for s in specs])[index] for k in ("scale", "offset"))
    decimals = np.array([s.decimals for s in specs], dtype=np.int8)[index]
    units = np.array([unit_names().index(s.unit) for s in specs], dtype=np.int16)[index]
    written = np.round((canonical * scale + offset) * 10.0 ** decimals) / 10.0 ** decimals
    return written, decimals, units, (written - offset) / scale
