"""Run a feed's Great Expectations suite over a batch of staged rows; failing rows go to quarantine.

GX is imported lazily (about 4 s and 270 MB) and its context is built once per process. The
suites are the JSON files beside this module; their `$PARAMETER` bounds come from the rules file.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from transforms.parsers.base import GRADE_SCALE
from transforms.rules import Rules

SUITES_DIR = Path(__file__).resolve().parent
SUITE_OF_FEED = {"labs": "stg_lab_results", "vitals": "stg_vitals",
                 "infusions": "stg_infusions", "events": "stg_events"}
ROW_ID = "batch_row"   # the row's place in its staging batch (cartwatch/staging.py)


@dataclass
class SuiteOutcome:
    """Reason per failing row index, and one summary dict per expectation."""

    failed: dict[int, str] = field(default_factory=dict)
    summary: list[dict] = field(default_factory=list)


LABEL_COLUMN = {"labs": "analyte", "vitals": "kind", "events": "event_type", "infusions": "product"}


def suite_parameters(rules: Rules) -> dict:
    return {"lab_units": [f"{a.name}|{a.canonical_unit}" for a in rules.analytes.values()],
            "vital_kinds": sorted(rules.vitals), "grade_min": GRADE_SCALE[0], "grade_max": GRADE_SCALE[1]}


@lru_cache(maxsize=None)
def suite_columns(feed: str) -> tuple[str, ...]:
    """The staged columns a feed's suite reads (besides those validate.py derives), so that only
    they are handed to pandas."""
    doc = json.loads((SUITES_DIR / f"{SUITE_OF_FEED[feed]}.json").read_text(encoding="utf-8"))
    named = {c for e in doc["expectations"] for key in ("column", "column_A", "column_B")
             if isinstance(c := e["kwargs"].get(key), str)}
    named |= {c for e in doc["expectations"] for c in e["kwargs"].get("column_list", [])}
    named |= {ROW_ID, LABEL_COLUMN[feed]} | ({"value", "unit"} if feed in ("labs", "vitals") else set())
    derived = {"analyte_unit", "plausible_position"}
    return tuple(sorted(named - derived))


def _plausible_bounds(feed: str, rules: Rules) -> tuple[dict[str, float], dict[str, float]]:
    if feed == "labs":
        return ({a.name: a.plausible_min for a in rules.analytes.values()},
                {a.name: a.plausible_max for a in rules.analytes.values()})
    numeric = {k: v for k, v in rules.vitals.items() if v["plausible_max"] > v["plausible_min"]}
    return ({k: v["plausible_min"] for k, v in numeric.items()},
            {k: v["plausible_max"] for k, v in numeric.items()})


def with_derived_columns(feed: str, frame: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """`analyte_unit` (labs) and `plausible_position`: the value's place in its analyte's or kind's
    plausible range from the rules file, 0 at the minimum, 1 at the maximum (exact at both ends)."""
    if feed == "labs":
        frame = frame.assign(analyte_unit=frame["analyte"] + "|" + frame["unit"])
    if feed in ("labs", "vitals"):
        low, high = _plausible_bounds(feed, rules)
        key = frame[LABEL_COLUMN[feed]]
        lows, highs = key.map(low).astype("float64"), key.map(high).astype("float64")
        frame = frame.assign(plausible_position=(frame["value"] - lows) / (highs - lows))
    return frame


@lru_cache(maxsize=1)
def _validation_definitions():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.ERROR)  # after import: GX sets its own levels
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    source = context.data_sources.add_pandas("cartwatch_staged")
    definitions = {}
    for feed, suite_name in SUITE_OF_FEED.items():
        doc = json.loads((SUITES_DIR / f"{suite_name}.json").read_text(encoding="utf-8"))
        suite = context.suites.add(gx.ExpectationSuite(
            name=suite_name, expectations=[ExpectationConfiguration(**e).to_domain_obj()
                                           for e in doc["expectations"]]))
        batch = source.add_dataframe_asset(suite_name).add_batch_definition_whole_dataframe("all")
        definitions[feed] = context.validation_definitions.add(
            gx.ValidationDefinition(name=suite_name, data=batch, suite=suite))
    return definitions


def validate_feed(feed: str, frame: pd.DataFrame, rules: Rules) -> SuiteOutcome:
    """Validate one batch of a feed's staged rows (a columnar frame with a `batch_row` id column);
    failing rows are named by their `batch_row`."""
    outcome = SuiteOutcome()
    if frame.empty:
        return outcome
    frame = with_derived_columns(feed, frame, rules)
    result = _validation_definitions()[feed].run(
        batch_parameters={"dataframe": frame}, expectation_parameters=suite_parameters(rules),
        result_format={"result_format": "COMPLETE",
                       "unexpected_index_column_names": [ROW_ID, LABEL_COLUMN[feed]]})
    for r in result.results:
        cfg = r.expectation_config
        failing = _failing_rows(cfg.type, r.result.get("unexpected_index_list") or [])
        labels = {int(u[ROW_ID]): u for u in r.result.get("unexpected_index_list") or []}
        for index in failing:
            rule = str(cfg.meta.get("rule")).format_map(labels[index])
            outcome.failed.setdefault(index, f"expectation {cfg.type} failed: {rule}")
        outcome.summary.append({
            "suite": SUITE_OF_FEED[feed], "expectation": cfg.type, "column": _describe(cfg.kwargs),
            "success": bool(r.success), "element_count": r.result.get("element_count"),
            "unexpected_count": len(failing)})
    return outcome


def _failing_rows(kind: str, unexpected: list[dict]) -> list[int]:
    indices = sorted(int(u[ROW_ID]) for u in unexpected)
    if kind == "expect_compound_columns_to_be_unique":
        # Only the repeats conflict with the row already kept: the first one stays.
        return _repeats(unexpected)
    return indices


def _repeats(unexpected: list[dict]) -> list[int]:
    seen: set[tuple] = set()
    repeats = []
    for u in sorted(unexpected, key=lambda u: int(u[ROW_ID])):
        key = tuple((k, str(v)) for k, v in sorted(u.items()) if k != ROW_ID)
        (repeats.append(int(u[ROW_ID])) if key in seen else seen.add(key))
    return repeats


def _describe(kwargs: dict) -> str:
    if "column" in kwargs:
        return str(kwargs["column"])
    if "column_list" in kwargs:
        return "+".join(kwargs["column_list"])
    return f"{kwargs.get('column_A')},{kwargs.get('column_B')}"
