"""The only loader of the clinical rules file (transforms/clinical_rules.yaml).

It validates the file into a frozen `Rules` object and refuses a broken file with a message that
names the rule and what is wrong. SQL reads the values as named parameters (`Rules.sql_params`),
Python through `Rules.value` / `Rules.analyte`.

The version recorded on every row (`Rules.version`) identifies the content, not only the label: it
is the declared `rules_version` when the file's content is the one released under that version
(`RELEASED_RULES`), and `<declared>+<first 8 hex of the content hash>` otherwise. A site that edits
a threshold and keeps the label therefore gets rows that say so. The content hash is taken over the
parsed document (comments and layout do not count; every value, unit, source and note does).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import yaml

DEFAULT_RULES_PATH = Path(__file__).with_name("clinical_rules.yaml")

# Released rules versions and the sha256 of their content (`content_hash`). Releasing a new version:
# bump `rules_version` in the file, add its changelog entry, and record its hash here (a test fails
# until the shipped file is a released one).
RELEASED_RULES: Mapping[str, str] = MappingProxyType({
    "2026.11.0": "06c1a724cb0946988dea645e866e5fe6b6aa75f554c88de614791dd98ed3ea8f",
    "2026.12.0": "3877dc8a3bca274f9187593e0f65ffbb0e962993ad63e620b2b08be2ee9432fb",
})

# Every scalar rule the code reads, with the unit it must carry. A file missing one is refused.
REQUIRED_RULES: Mapping[str, str] = MappingProxyType({
    "time_axis.baseline_lookback_hours": "h",
    "time_axis.future_tolerance_minutes": "min",
    "time_axis.earliest_plausible_year": "year",
    "crs.fever_c": "Cel",
    "crs.low_flow_max_l_min": "L/min",
    "crs.grade4_min_vasopressors": "count",
    "crs.hypotension_sbp_lt_mmhg": "mm[Hg]",
    "crs.hypotension_map_lt_mmhg": "mm[Hg]",
    "crs.hypoxia_spo2_lt_pct": "%",
    "crs.resolution_clear_hours": "h",
    "crs.onset_horizon_days": "d",
    "crs.documented_grade_hold_days": "d",
    "crs.grade_fever_only": "ASTCT grade",
    "crs.grade_hypotension_no_vasopressor": "ASTCT grade",
    "crs.grade_hypotension_one_vasopressor": "ASTCT grade",
    "crs.grade_hypotension_several_vasopressors": "ASTCT grade",
    "iec_hs.ferritin_elevated_x_uln": "x ULN",
    "iec_hs.ferritin_elevated_x_baseline": "x baseline",
    "iec_hs.ferritin_lag_hours": "h",
    "iec_hs.re_rise_factor": "x nadir",
    "iec_hs.rapid_rise_ng_ml_per_hour": "ng/mL/h",
    "iec_hs.rapid_rise_window_hours": "h",
    "iec_hs.timing_after_improvement_hours": "h",
    "iec_hs.no_crs_timing_day": "d",
    "iec_hs.manifestation_window_hours": "h",
    "iec_hs.window_close_quiet_hours": "h",
    "iec_hs.late_onset_day": "d",
    "iec_hs.transaminase_x_uln": "x ULN",
    "iec_hs.transaminase_x_baseline": "x baseline",
    "iec_hs.fibrinogen_lt_mg_dl": "mg/dL",
    "iec_hs.anc_lt": "10*9/L",
    "iec_hs.platelets_lt": "10*9/L",
    "iec_hs.hemoglobin_lt_g_dl": "g/dL",
    "iec_hs.cytopenia_worsening_fraction": "fraction",
    "iec_hs.ldh_x_uln": "x ULN",
    "iec_hs.triglycerides_gt_mg_dl": "mg/dL",
    "iec_hs.bilirubin_direct_x_uln": "x ULN",
    "iec_hs.creatinine_x_baseline": "x baseline",
    "iec_hs.coagulation_x_uln": "x ULN",
    "iec_hs.neurotoxicity_icans_grade_min": "ICANS grade",
    "cartox.ferritin_peak_gt": "ng/mL",
    "cartox.organ_grade_min": "CTCAE grade",
    "cartox.items_required": "count",
    "shah.ferritin_peak_gt": "ng/mL",
    "shah.organ_grade_min": "CTCAE grade",
    "shah.items_required": "count",
    "ucsf.rise_ng_ml_per_hour": "ng/mL/h",
    "ucsf.rise_window_hours": "h",
    "ucsf.fibrinogen_lt_mg_dl": "mg/dL",
    "ucsf.ldh_x_uln": "x ULN",
    "ucsf.companion_window_hours": "h",
    "hlh_94.fever_c": "Cel",
    "hlh_94.cytopenia_lineages_required": "count",
    "hlh_2004.fever_c": "Cel",
    "hlh_2004.hemoglobin_lt_g_dl": "g/dL",
    "hlh_2004.platelets_lt": "10*9/L",
    "hlh_2004.anc_lt": "10*9/L",
    "hlh_2004.cytopenia_lineages_required": "count",
    "hlh_2004.triglycerides_ge_mg_dl": "mg/dL",
    "hlh_2004.fibrinogen_le_mg_dl": "mg/dL",
    "hlh_2004.ferritin_ge": "ng/mL",
    "hlh_2004.scd25_ge_u_ml": "U/mL",
    "hlh_2004.criteria_required": "count",
    "hscore.cutoff": "points",
    "easix.enabled": "flag",
    "ctcae.transaminase_g3_x_uln": "x ULN",
    "ctcae.transaminase_g4_x_uln": "x ULN",
    "ctcae.bilirubin_g3_x_uln": "x ULN",
    "ctcae.bilirubin_g4_x_uln": "x ULN",
    "ctcae.creatinine_g3_x_baseline": "x baseline",
    "ctcae.creatinine_g3_x_uln": "x ULN",
    "ctcae.creatinine_g4_x_uln": "x ULN",
    "ctcae.grade_severe": "CTCAE grade",
    "ctcae.grade_life_threatening": "CTCAE grade",
    "operations.feed_silence_hours": "h",
    "operations.no_recent_data_hours": "h",
    "operations.monitoring_gap_hours": "h",
})

REQUIRED_ANALYTES = (
    "ferritin", "fibrinogen", "ast", "alt", "ldh", "bilirubin_total", "bilirubin_direct",
    "triglycerides", "creatinine", "crp", "il6", "scd25", "platelets", "anc", "hemoglobin", "wbc",
    "pt", "inr", "aptt", "d_dimer",
)
REQUIRED_VITALS = ("temperature", "sbp", "dbp", "map", "heart_rate", "spo2", "o2_flow", "o2_device")
REQUIRED_HSCORE_ITEMS = (
    "immunosuppression", "temperature", "organomegaly", "cytopenias", "ferritin",
    "triglycerides", "fibrinogen", "ast", "hemophagocytosis",
)


class RulesError(ValueError):
    """The rules file is missing, unreadable or breaks the schema."""


@dataclass(frozen=True)
class Analyte:
    """One analyte's codes, canonical unit, default reference range and plausibility bounds."""

    name: str
    loinc: tuple[str, ...]
    canonical_unit: str
    default_low: float
    default_high: float
    plausible_min: float
    plausible_max: float
    molar_mass_g_per_mol: float | None = None


@dataclass(frozen=True)
class Rules:
    """A validated, immutable rules file.

    `version` is what rows record: `declared_version` alone for released content, else
    `declared_version+<hash8>`.
    """

    version: str
    effective_date: str
    path: Path
    values: Mapping[str, float]
    analytes: Mapping[str, Analyte]
    vitals: Mapping[str, Mapping[str, Any]]
    o2_devices: Mapping[str, int]
    hscore: Mapping[str, Any]
    raw: Mapping[str, Any] = field(repr=False)
    declared_version: str = ""
    content_hash: str = ""

    @property
    def released(self) -> bool:
        """True when the content is exactly the one released under the declared version."""
        return RELEASED_RULES.get(self.declared_version) == self.content_hash

    def value(self, rule_id: str) -> float:
        try:
            return self.values[rule_id]
        except KeyError:
            raise RulesError(f"{self.path}: no rule '{rule_id}'") from None

    def analyte(self, name: str) -> Analyte:
        return self.analytes[name]

    def analyte_by_loinc(self) -> dict[str, str]:
        """LOINC code -> analyte name."""
        return {code: a.name for a in self.analytes.values() for code in a.loinc}

    def sql_params(self, *rule_ids: str) -> dict[str, float]:
        """Named DuckDB parameters: `iec_hs.re_rise_factor` -> `$iec_hs__re_rise_factor`."""
        ids = rule_ids or tuple(self.values)
        return {sql_param_name(r): self.value(r) for r in ids}


def sql_param_name(rule_id: str) -> str:
    return rule_id.replace(".", "__")


def content_hash(doc: Any) -> str:
    """sha256 of the parsed document in a canonical JSON form (keys sorted, no whitespace)."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def effective_version(declared: str, digest: str) -> str:
    """The version rows record: the declared one for released content, else declared+hash8."""
    return declared if RELEASED_RULES.get(declared) == digest else f"{declared}+{digest[:8]}"


def load_rules(path: str | Path | None = None) -> Rules:
    """Read and validate a rules file; raise RulesError naming the first problem found."""
    path = Path(path) if path else DEFAULT_RULES_PATH
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesError(f"{path}: rules file not found") from None
    except IsADirectoryError:
        raise RulesError(f"{path}: is a folder, not a rules file") from None
    except OSError as exc:
        raise RulesError(f"{path}: rules file cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise RulesError(f"{path}: rules file is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(doc, dict):
        raise RulesError(f"{path}: top level must be a mapping")
    _require(doc, ("rules_version", "effective_date", "changelog", "rules", "hscore", "analytes",
                   "vitals", "o2_devices"), path, "top level")
    declared, digest = str(doc["rules_version"]), content_hash(doc)
    return Rules(
        version=effective_version(declared, digest),
        effective_date=str(doc["effective_date"]),
        path=path,
        values=MappingProxyType(_scalar_rules(doc["rules"], path)),
        analytes=MappingProxyType(_analytes(doc["analytes"], path)),
        vitals=MappingProxyType(_vitals(doc["vitals"], path)),
        o2_devices=MappingProxyType(_o2_devices(doc["o2_devices"], path)),
        hscore=MappingProxyType(_hscore(doc["hscore"], path)),
        raw=MappingProxyType(doc),
        declared_version=declared,
        content_hash=digest,
    )


def _require(mapping: Any, keys: tuple[str, ...], path: Path, where: str) -> None:
    if not isinstance(mapping, dict):
        raise RulesError(f"{path}: {where} must be a mapping")
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise RulesError(f"{path}: {where} is missing {', '.join(missing)}")


def _number(value: Any, path: Path, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise RulesError(f"{path}: {where} must be a number, got {value!r}")
    return float(value)


def _scalar_rules(rules: Any, path: Path) -> dict[str, float]:
    _require(rules, tuple(REQUIRED_RULES), path, "rules")
    values = {}
    for rule_id, rule in rules.items():
        where = f"rule '{rule_id}'"
        _require(rule, ("value", "unit", "source", "rationale"), path, where)
        if rule_id in REQUIRED_RULES and rule["unit"] != REQUIRED_RULES[rule_id]:
            raise RulesError(
                f"{path}: {where} has unit {rule['unit']!r}, expected {REQUIRED_RULES[rule_id]!r}")
        if not str(rule["source"]).strip():
            raise RulesError(f"{path}: {where} has an empty source")
        if rule.get("consensus") is False and not rule.get("notes"):
            raise RulesError(f"{path}: {where} has no consensus and must say so in its notes")
        values[rule_id] = _number(rule["value"], path, f"{where} value")
    return values


def _analytes(analytes: Any, path: Path) -> dict[str, Analyte]:
    _require(analytes, REQUIRED_ANALYTES, path, "analytes")
    out = {}
    for name, a in analytes.items():
        where = f"analyte '{name}'"
        _require(a, ("loinc", "canonical_unit", "default_low", "default_high", "plausible_min",
                     "plausible_max", "source"), path, where)
        low, high = (_number(a[k], path, f"{where} {k}") for k in ("default_low", "default_high"))
        pmin, pmax = (_number(a[k], path, f"{where} {k}") for k in ("plausible_min", "plausible_max"))
        if low > high or pmin > pmax:
            raise RulesError(f"{path}: {where} has a range whose low end is above its high end")
        mm = a.get("molar_mass_g_per_mol")
        out[name] = Analyte(
            name=name, loinc=tuple(str(c) for c in a["loinc"] or ()),
            canonical_unit=str(a["canonical_unit"]), default_low=low, default_high=high,
            plausible_min=pmin, plausible_max=pmax,
            molar_mass_g_per_mol=None if mm is None else _number(mm, path, f"{where} molar mass"),
        )
    codes = [c for a in out.values() for c in a.loinc]
    if len(codes) != len(set(codes)):
        raise RulesError(f"{path}: a LOINC code is listed under two analytes")
    return out


def _vitals(vitals: Any, path: Path) -> dict[str, Mapping[str, Any]]:
    _require(vitals, REQUIRED_VITALS, path, "vitals")
    for kind, v in vitals.items():
        _require(v, ("canonical_unit", "plausible_min", "plausible_max"), path, f"vital '{kind}'")
        for k in ("plausible_min", "plausible_max"):
            _number(v[k], path, f"vital '{kind}' {k}")
    return {k: MappingProxyType(dict(v)) for k, v in vitals.items()}


def _o2_devices(devices: Any, path: Path) -> dict[str, int]:
    if not isinstance(devices, dict) or not devices:
        raise RulesError(f"{path}: o2_devices must be a non-empty mapping")
    for name, grade in devices.items():
        if not isinstance(grade, int) or isinstance(grade, bool) or not 0 <= grade <= 4:
            raise RulesError(f"{path}: o2 device '{name}' must map to a CRS grade 0-4")
    return dict(devices)


def _hscore(hscore: Any, path: Path) -> dict[str, Any]:
    _require(hscore, ("source", "items"), path, "hscore")
    _require(hscore["items"], REQUIRED_HSCORE_ITEMS, path, "hscore items")
    for item, spec in hscore["items"].items():
        _require(spec, ("points",), path, f"hscore item '{item}'")
        for band, pts in spec["points"].items():
            _number(pts, path, f"hscore item '{item}' points '{band}'")
    return dict(hscore)
