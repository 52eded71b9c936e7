"""Write the expectation suites of expectations/*.json (run after a feed's columns change).

The suites are files in the repository, reviewed like code. Thresholds are not typed into them:
each bound is a `$PARAMETER` that expectations/validate.py fills from the rules file at run time.
`python -m expectations.generate_suites` rewrites them; a test checks they are up to date.
"""

from __future__ import annotations

import json
from pathlib import Path

SUITES_DIR = Path(__file__).resolve().parent


def _expect(kind: str, rule: str, **kwargs) -> dict:
    return {"type": kind, "kwargs": kwargs, "meta": {"rule": rule}}


def _not_null(columns: list[str]) -> list[dict]:
    return [_expect("expect_column_values_to_not_be_null", "grain: key columns are present",
                    column=c) for c in columns]


def _plausible(key_column: str, why: str) -> dict:
    """One expectation for every analyte (or vital kind): `plausible_position` is the value's place
    in its own plausible range, 0 at the minimum and 1 at the maximum (added by validate.py from
    the rules file). One vectorized check instead of one filtered check per analyte: GX's cost is
    mostly per expectation, paid on every batch. The reason names the row's analyte."""
    return _expect("expect_column_values_to_be_between", f"plausible {{{key_column}}} ({why})",
                   column="plausible_position", min_value=0, max_value=1)


def lab_suite() -> list[dict]:
    return [
        *_not_null(["row_key", "patient_id", "analyte", "unit", "observed_at", "result_status"]),
        _expect("expect_column_values_to_be_in_set", "contract.md §1: result_status F/C/X/P",
                column="result_status", value_set=["F", "C", "X", "P"]),
        # analyte_unit is "analyte|unit", added by validate.py: the pair expectation of GX walks
        # rows one by one (10 s per 100k rows), a set check on one column is vectorized
        _expect("expect_column_values_to_be_in_set", "clinical-rules.md §5: canonical unit per analyte",
                column="analyte_unit", value_set={"$PARAMETER": "lab_units"}),
        _plausible("analyte", "bounds: rules file analytes"),
        _expect("expect_column_pair_values_a_to_be_greater_than_b", "reference range low <= high",
                column_A="ref_high", column_B="ref_low", or_equal=True,
                ignore_row_if="either_value_is_missing"),
        _expect("expect_compound_columns_to_be_unique", "grain: one row per result version",
                column_list=["patient_id", "analyte", "observed_at", "result_status", "accession",
                             "resulted_at"]),
    ]


def vitals_suite() -> list[dict]:
    return [
        *_not_null(["row_key", "patient_id", "kind", "observed_at"]),
        _expect("expect_column_values_to_be_in_set", "contract.md §1: vital kinds", column="kind",
                value_set={"$PARAMETER": "vital_kinds"}),
        _plausible("kind", "bounds: rules file vitals"),
        _expect("expect_compound_columns_to_be_unique", "grain: one reading per kind and time",
                column_list=["patient_id", "kind", "observed_at"]),
    ]


def infusions_suite() -> list[dict]:
    return [
        *_not_null(["row_key", "patient_id", "infusion_id", "product", "observed_at"]),
        _expect("expect_column_values_to_be_unique", "grain: one row per infusion", column="infusion_id"),
    ]


def events_suite() -> list[dict]:
    return [
        *_not_null(["row_key", "patient_id", "event_type", "observed_at"]),
        _expect("expect_column_values_to_be_between", "ASTCT 2019: CRS and ICANS grades 0-4",
                column="value_num", row_condition='event_type in ["crs_grade", "icans_grade"]',
                condition_parser="pandas", min_value={"$PARAMETER": "grade_min"},
                max_value={"$PARAMETER": "grade_max"}),
    ]


def suites() -> dict[str, list[dict]]:
    return {
        "stg_lab_results": lab_suite(),
        "stg_vitals": vitals_suite(),
        "stg_infusions": infusions_suite(),
        "stg_events": events_suite(),
    }


def render(name: str, expectations: list[dict]) -> str:
    doc = {"name": name, "expectations": expectations,
           "meta": {"generated_by": "expectations/generate_suites.py"},
           "notes": "Bounds are $PARAMETERs filled from transforms/clinical_rules.yaml."}
    return json.dumps(doc, indent=2) + "\n"


if __name__ == "__main__":
    for suite_name, body in suites().items():
        (SUITES_DIR / f"{suite_name}.json").write_text(render(suite_name, body), encoding="utf-8")
