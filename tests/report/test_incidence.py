"""Cumulative incidence with death as a competing event (Aalen-Johansen, lifelines) against the
estimator written out by hand, with ties between flags, deaths and censoring on the same day."""

from __future__ import annotations

import math

import polars as pl

from cartwatch.report.stats import cumulative_incidence

# (flagged onset day or None, death day or None, last day with data)
COURSES = [(3, None, 30), (3, None, 30), (5, None, 30), (None, 5, 5), (None, 5, 5), (None, None, 5),
           (8, None, 12), (None, None, 8), (None, 10, 10), (None, None, 20), (12, None, 25), (None, None, 25)]


def _frame() -> pl.DataFrame:
    return pl.DataFrame({
        "patient_id": [f"P{k}" for k in range(len(COURSES))], "infusion_id": [f"I{k}" for k in range(len(COURSES))],
        "criteria_set": ["astct_iec_hs_2023"] * len(COURSES),
        "flagged": [c[0] is not None for c in COURSES], "onset_day": [c[0] for c in COURSES],
        "death_day": [c[1] for c in COURSES], "last_day": [c[2] for c in COURSES]})


def aalen_johansen_by_hand(days: list[int]) -> list[float]:
    """CIF(t) = sum over days s <= t of S(s-) * flags(s) / at risk(s); S the all-cause Kaplan-Meier;
    censored on a day = still at risk that day."""
    timed = [(f, "flag") if f is not None else (d, "death") if d is not None else (last, "censored")
             for f, d, last in COURSES]
    survival, cif, out = 1.0, 0.0, []
    for day in days:
        at_risk = sum(t >= day for t, _ in timed)
        flags = sum(t == day and kind == "flag" for t, kind in timed)
        deaths = sum(t == day and kind == "death" for t, kind in timed)
        if at_risk:
            cif += survival * flags / at_risk
            survival *= 1 - (flags + deaths) / at_risk
        out.append(cif)
    return out


def test_deaths_make_it_aalen_johansen_and_it_matches_the_estimator_by_hand():
    result = cumulative_incidence(_frame())
    assert (result["method"], result["competing_event"]) == ("aalen_johansen", "death")
    curve = result["curves"][0]
    assert curve["days"] == list(range(0, 31))
    expected = aalen_johansen_by_hand(curve["days"])
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(curve["incidence"], expected, strict=True))
    # day 3: two of twelve flagged; day 5: one flag of ten at risk after S(5-) = 10/12
    assert math.isclose(curve["incidence"][3], 2 / 12, abs_tol=1e-6)
    assert math.isclose(curve["incidence"][5], 2 / 12 + (10 / 12) * (1 / 10), abs_tol=1e-6)
    assert cumulative_incidence(_frame()) == result        # the tie-breaking jitter is seeded


def test_without_deaths_it_is_kaplan_meier():
    frame = _frame().with_columns(pl.lit(None, pl.Int64).alias("death_day"))
    assert cumulative_incidence(frame)["method"] == "kaplan_meier"
