/*
Title: bounded_side
Description: Scalar macro: from which side censored inputs bound a score computed from them:
  '>' (the score computed from the bounds is a lower bound: the true score is at least it), '<'
  (an upper bound), 'unknown' (bounded from both sides: nothing is proven), NULL (no censored
  input: the score is exact).
Grain: one text per call.
Source criterion: clinical-rules.md §1 (Censored values: ratios and scores built from censored values
  are bounded the same way). Read by derived.easix_daily (EASIX and m-EASIX).
Parameters: none read from the rules file. Macro arguments: censored (any input censored),
  floor (every input bounded on the side that keeps the score from falling: those that raise it
  bounded below, those that lower it bounded above), ceiling (the mirror).
Upstream tables: none
*/
CREATE OR REPLACE MACRO derived.bounded_side(censored, floor, ceiling) AS (
    CASE
        WHEN NOT censored THEN NULL
        WHEN floor THEN '>'
        WHEN ceiling THEN '<'
        ELSE 'unknown'
    END
);
