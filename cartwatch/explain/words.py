"""How the explanation writes numbers, times, days and thresholds (shared by every criteria set)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from transforms.rules import Rules

STATUS_RANK = {"none": 0, "watch": 1, "suspected": 2, "criteria_met": 3}
SET_LABELS = {"astct_iec_hs_2023": "ASTCT 2023 IEC-HS", "cartox_2017": "CARTOX 2017", "shah_2020": "Shah 2020",
              "ucsf_masl_2020": "UCSF MAS-L 2020", "hlh_94": "HLH-94", "hlh_2004": "HLH-2004",
              "hscore": "HScore"}
UNITS = {"10*9/L": "x10^9/L", "Cel": "C", "{ratio}": ""}


def number(value: float | None, comparator: str | None = None) -> str:
    """8,528; 0.24; 37.7; with a censored value's comparator kept (`>100,000`)."""
    if value is None:
        return "?"
    text = f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.3g}"
    return f"{comparator or ''}{text}"


def amount(value: float | None, unit: str | None, comparator: str | None = None) -> str:
    label = UNITS.get(unit or "", unit or "")
    return f"{number(value, comparator)} {label}".rstrip()


def result(e: dict) -> str:
    """An evidence item (or stored result) as `fibrinogen 81 mg/dL`, a censored one with its comparator."""
    return f"{e['analyte']} {amount(e['value'], e['unit'], e.get('comparator'))}"


def day(d: int | None) -> str:
    return "d?" if d is None else f"d{d:+d}"


def when(at: datetime | None, tz: str) -> str:
    """'2026-07-08 06:29 EDT', in the episode's zone."""
    return at.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z") if at is not None else "-"


def rule(rules: Rules, rule_id: str) -> str:
    """A rules-file number as the explanation quotes it: `48 h (iec_hs.timing_after_improvement_hours)`."""
    unit = rules.raw["rules"][rule_id]["unit"]
    unit = "" if unit in ("count", "flag") else f" {UNITS.get(unit, unit)}"
    return f"{number(rules.value(rule_id))}{unit} ({rule_id})"


def value_of(rules: Rules, rule_id: str) -> str:
    return number(rules.value(rule_id))


def status_words(status: str | None) -> str:
    return {"criteria_met": "criteria met", "not_met": "not met", None: "none"}.get(status, status or "none")


def point_status(status: str | None) -> str:
    """The IEC-HS status at one result: none there is `no status`."""
    return status_words(status) if status else "no status"
