/*
Title: evidence_item
Description: Scalar macro: one evidence item of CONTRACT 3 as a struct {rule, analyte, value,
  unit, at, source}, `at` written as ISO 8601 text in UTC: the one place the item's shape and its
  time format are written for the SQL criteria sets.
Grain: one struct per call.
Source criterion: CONTRACT 3 (`export windows`: evidence items).
Parameters: none. Macro arguments: rule (the rule id the result was judged by), analyte, value,
  unit, observed_at (TIMESTAMPTZ), source (file:line, or the table a derived value comes from).
Upstream tables: none
*/
CREATE OR REPLACE MACRO flags.evidence_item(rule, analyte, value, unit, observed_at, source) AS (
    struct_pack(
        rule := rule,
        analyte := analyte,
        value := value,
        unit := unit,
        at := strftime(timezone('UTC', observed_at), '%Y-%m-%dT%H:%M:%S+00:00'),
        source := source
    )
);
