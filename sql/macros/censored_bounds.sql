/*
Title: censored_bounds
Description: Scalar macros: the lowest and the highest value a result can have. An exact result is
  both; `>x` and `>=x` have x as lowest and no highest (NULL); `<x` and `<=x` have x as highest and
  no lowest (NULL). Peaks, nadirs, "best so far" and rise rates are built from these, so that a
  conclusion drawn from them holds for every value the results allow.
Grain: one number (or NULL: unbounded) per call.
Source criterion: clinical-rules.md §1 (Censored values: peaks, nadirs, rates and ratios are bounded).
  - A strict bound (`>x`) is returned as x: a conclusion "at least ..." drawn from it stays true.
Parameters: none read from the rules file. Macro arguments: value, comparator (NULL, '>', '>=',
  '<', '<=').
Upstream tables: none
*/
CREATE OR REPLACE MACRO derived.lowest_possible(value, comparator) AS (
    CASE WHEN coalesce(comparator, '=') IN ('=', '>', '>=') THEN value END
);

CREATE OR REPLACE MACRO derived.highest_possible(value, comparator) AS (
    CASE WHEN coalesce(comparator, '=') IN ('=', '<', '<=') THEN value END
);
