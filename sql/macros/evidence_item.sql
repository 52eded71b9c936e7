/*
Title: evidence_item
Description: Scalar macro: one evidence item of contract.md §5 as a struct {rule, analyte, value,
  comparator, unit, at, source}, `at` written as ISO 8601 text in UTC: the one place the item's
  shape and its time format are written for the SQL criteria sets. `comparator` is the censored
  result's comparator ('>' of `>100000`), NULL for an exact value (clinical-rules.md §1, Censored values).
Grain: one struct per call.
Source criterion: contract.md §5 (`export windows`: evidence items).
Parameters: none. Macro arguments: rule (the rule id the result was judged by), analyte, value,
  comparator, unit, observed_at (TIMESTAMPTZ), source (file:line, or the table a derived value
  comes from).
Upstream tables: none
*/
CREATE OR REPLACE MACRO flags.evidence_item(rule, analyte, value, comparator, unit, observed_at, source) AS (
    struct_pack(
        rule := rule,
        analyte := analyte,
        value := value,
        comparator := comparator,
        unit := unit,
        at := strftime(timezone('UTC', observed_at), '%Y-%m-%dT%H:%M:%S+00:00'),
        source := source
    )
);
