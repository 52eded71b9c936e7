/*
Title: censored_compare
Description: Scalar macro: does a result meet a threshold, judged by what it proves? A censored
  result (`>x`, `>=x`, `<x`, `<=x`) proves only an interval; the answer is TRUE when every value
  of the interval meets `op threshold`, FALSE when none does, and NULL (unknown) otherwise. An
  exact result (comparator NULL) is its own interval, so the answer is the plain comparison.
Grain: one boolean (or NULL) per call.
Source criterion: clinical-rules.md §1 (Censored values): every threshold rule of the derived and
  flags layers compares through this macro (or its polars twin, transforms/censored.py).
  - `>100000` against "> 100000": TRUE (every value is above); `>=100000`: unknown (it may be
    exactly 100000); `<150` against "< 150": TRUE; `<200` against "< 150": unknown.
  - `op` is one of '>', '>=', '<', '<=' (a literal of the calling file); anything else is NULL.
  - The caller rounds `value` (float_guard) as it would an exact value.
Parameters: none read from the rules file. Macro arguments: value (the number sent, canonical
  unit, or a multiple of it such as x ULN), comparator (NULL, '>', '>=', '<', '<='), op, threshold.
Upstream tables: none
*/
CREATE OR REPLACE MACRO derived.censored_compare(value, comparator, op, threshold) AS (
    CASE
        WHEN value IS NULL OR threshold IS NULL THEN NULL
        -- "above": proven by a lower bound, refuted by an upper bound
        WHEN op IN ('>', '>=') THEN CASE
            WHEN coalesce(comparator, '=') IN ('=', '>', '>=')
                AND (value > threshold OR (value = threshold AND (op = '>=' OR comparator = '>')))
                THEN TRUE
            WHEN coalesce(comparator, '=') IN ('=', '<', '<=')
                AND (value < threshold OR (value = threshold AND (op = '>' OR comparator = '<')))
                THEN FALSE
        END
        -- "below": proven by an upper bound, refuted by a lower bound
        WHEN op IN ('<', '<=') THEN CASE
            WHEN coalesce(comparator, '=') IN ('=', '<', '<=')
                AND (value < threshold OR (value = threshold AND (op = '<=' OR comparator = '<')))
                THEN TRUE
            WHEN coalesce(comparator, '=') IN ('=', '>', '>=')
                AND (value > threshold OR (value = threshold AND (op = '<' OR comparator = '>')))
                THEN FALSE
        END
    END
);
