"""Censored results judged by what they prove: the polars twin of sql/macros/censored_compare.sql
and sql/macros/censored_bounds.sql (clinical-rules.md §1, Censored values).

A result sent as `>100000` proves only that the value is above 100,000. Against a threshold it is
True when every value it allows meets the threshold, False when none does, and None (unknown)
otherwise: `>100000` is above 100,000 (True) but `>=100000` may be exactly 100,000 (unknown), and
`<200` may or may not be below 150 (unknown). An exact result (comparator null) is compared as it is.
"""

from __future__ import annotations

import polars as pl

ABOVE, BELOW = (">", ">="), ("<", "<=")
# An exact result (no comparator) bounds the value on both sides.
EXACT = "="


def _cmp(comparator: pl.Expr) -> pl.Expr:
    return comparator.fill_null(EXACT)


def lowest_possible(value: pl.Expr, comparator: pl.Expr) -> pl.Expr:
    """The lowest value the result allows (the bound of `>x`/`>=x`); null for `<x`/`<=x`."""
    return pl.when(_cmp(comparator).is_in([EXACT, *ABOVE])).then(value)


def highest_possible(value: pl.Expr, comparator: pl.Expr) -> pl.Expr:
    """The highest value the result allows (the bound of `<x`/`<=x`); null for `>x`/`>=x`."""
    return pl.when(_cmp(comparator).is_in([EXACT, *BELOW])).then(value)


def judged(value: pl.Expr, comparator: pl.Expr, op: str, threshold: float | pl.Expr) -> pl.Expr:
    """`value op threshold` as True (proven), False (refuted) or null (unknown) over the interval
    the result proves. `op` is one of '>', '>=', '<', '<='."""
    threshold = threshold if isinstance(threshold, pl.Expr) else pl.lit(threshold)
    c = _cmp(comparator)
    if op in ABOVE:
        proven = c.is_in([EXACT, *ABOVE]) & ((value > threshold) | ((value == threshold) & ((op == ">=") | (c == ">"))))
        refuted = c.is_in([EXACT, *BELOW]) & ((value < threshold) | ((value == threshold) & ((op == ">") | (c == "<"))))
    elif op in BELOW:
        proven = c.is_in([EXACT, *BELOW]) & ((value < threshold) | ((value == threshold) & ((op == "<=") | (c == "<"))))
        refuted = c.is_in([EXACT, *ABOVE]) & ((value > threshold) | ((value == threshold) & ((op == "<") | (c == ">"))))
    else:
        raise ValueError(f"unknown comparison {op!r}")
    return pl.when(proven).then(True).when(refuted).then(False).otherwise(None)

