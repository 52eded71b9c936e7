/*
Title: evidence_json
Description: Scalar macro: a window's evidence (a list of structs, kept structured through the
  derived and flags layers) as the JSON text of contract.md §5, its items in one canonical order.
Grain: one JSON text per list.
Source criterion: contract.md §5 (`export windows`: evidence is a JSON list of {rule, analyte, value,
  unit, at, source}; IEC-HS items add status and detail).
  - Items in time order, then by their JSON text: the same evidence reads the same whatever order
    the engine produced it in, so a backfill and the nightly runs store the same text.
  - No evidence: '[]'.
  - `comparator` is written only for a censored result (`"value":100000.0,"comparator":">"`): an
    exact value's item reads as it always has (clinical-rules.md §1, Censored values).
Parameters: none. Macro arguments: evidence (a list of structs with an `at` field).
Upstream tables: none
*/
CREATE OR REPLACE MACRO flags.evidence_json(evidence) AS (
    coalesce((
        SELECT replace(
            to_json(list(items.item ORDER BY items.item.at, to_json(items.item)::VARCHAR))::VARCHAR,
            ',"comparator":null', ''
        )
        FROM (SELECT unnest(evidence) AS item) AS items
    ), '[]')
);
