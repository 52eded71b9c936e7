"""The report's figures from the outcomes table (cartwatch/report/outcomes.py), with maintained
libraries: Wilson score intervals and Cohen's kappa from statsmodels, cumulative incidence from
lifelines, counts and quantiles from polars (linear interpolation, as numpy's default).

Cumulative incidence by day post-infusion: each infusion is followed from day 0 to its first
flagged onset (the event) or, without one, to its last day with any data (censored: the end of its
follow-up as of the evaluation). When the cohort has documented deaths, death before a flag is a
competing event, and the Aalen-Johansen estimator is used (1 - Kaplan-Meier would count the dead
as if they could still be flagged and overstate the incidence); without deaths the two estimators
agree and Kaplan-Meier (1 - S) is used.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import polars as pl
from lifelines import AalenJohansenFitter, KaplanMeierFitter
from statsmodels.stats.inter_rater import cohens_kappa
from statsmodels.stats.proportion import proportion_confint

CONFIDENCE = 0.95             # the intervals' level (a reporting choice, not a clinical rule)
GROUPINGS = ("product", "target_antigen", "indication")
ONSET_MEASURES = {"onset_day": pl.col("onset_day"),
                  "days_from_crs_peak": pl.col("onset_day") - pl.col("crs_peak_day"),
                  "days_from_crs_improvement": pl.col("onset_day") - pl.col("crs_improvement_day")}
EVENT, COMPETING, CENSORED = 1, 2, 0
JITTER_SEED = 20261201        # lifelines' tie-breaking jitter, seeded so a report is reproducible


def _num(value):
    """A float for JSON: None for a missing or undefined value."""
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else float(value)


def flagged_proportions(frame: pl.DataFrame) -> list[dict]:
    """Per criteria set, overall and by each grouping: infusions flagged of infusions, with a
    Wilson interval."""
    parts = [frame.group_by("criteria_set").agg(pl.lit("overall").alias("by"), pl.lit("all").alias("group"),
                                                 pl.len().alias("n"), pl.col("flagged").sum().alias("flagged"))]
    for by in GROUPINGS:
        parts.append(frame.group_by("criteria_set", by).agg(pl.len().alias("n"), pl.col("flagged").sum().alias("flagged"))
                     .select("criteria_set", pl.lit(by).alias("by"), pl.col(by).alias("group"), "n", "flagged"))
    table = pl.concat([p.select("criteria_set", "by", "group", "n", "flagged") for p in parts])
    by_order = pl.DataFrame({"by": ["overall", *GROUPINGS]}).with_row_index("by_order")
    table = (_in_set_order(table, frame).join(by_order, on="by", how="left")
             .sort("criteria_order", "by_order", "group").drop("criteria_order", "by_order"))
    low, high = proportion_confint(table["flagged"].to_numpy(), table["n"].to_numpy(),
                                   alpha=1 - CONFIDENCE, method="wilson")
    table = table.with_columns((pl.col("flagged") / pl.col("n")).alias("proportion"),
                               pl.Series("ci_low", low), pl.Series("ci_high", high))
    return table.to_dicts()


# statuses from none to the most severe, as a reader scans them (alphabetical put criteria_met first)
STATUS_ORDER = pl.DataFrame({"highest_status": ["none", "watch", "suspected", "criteria_met", "met"]}).with_row_index(
    "status_order")


def highest_status_counts(frame: pl.DataFrame) -> list[dict]:
    """Per criteria set, how many infusions reached each status at most (none included), from none
    to the most severe."""
    table = (frame.group_by("criteria_set", "highest_status").agg(pl.len().alias("infusions"))
             .join(STATUS_ORDER, on="highest_status", how="left"))
    return (_in_set_order(table, frame).sort("criteria_order", "status_order", "highest_status", nulls_last=True)
            .drop("criteria_order", "status_order").to_dicts())


def onset_summaries(frame: pl.DataFrame) -> list[dict]:
    """Per criteria set, of flagged infusions: onset day and days from CRS peak and from CRS
    improvement to onset: n, median, quartiles (IQR) and range."""
    flagged = frame.filter(pl.col("flagged"))
    rows = []
    for measure, expr in ONSET_MEASURES.items():
        table = (flagged.with_columns(expr.alias("x")).filter(pl.col("x").is_not_null())
                 .group_by("criteria_set").agg(
                     pl.len().alias("n"), pl.col("x").median().alias("median"),
                     pl.col("x").quantile(0.25, "linear").alias("q1"), pl.col("x").quantile(0.75, "linear").alias("q3"),
                     pl.col("x").min().cast(pl.Float64).alias("min"), pl.col("x").max().cast(pl.Float64).alias("max")))
        rows += table.with_columns(pl.lit(measure).alias("measure")).to_dicts()
    order = {s: k for k, s in enumerate(_set_order(frame))}
    measures = list(ONSET_MEASURES)
    return sorted(rows, key=lambda r: (order[r["criteria_set"]], measures.index(r["measure"])))


def late_onsets(frame: pl.DataFrame, late_day: float) -> list[dict]:
    """Per criteria set: flagged infusions and those whose flagged onset was late."""
    table = (frame.group_by("criteria_set")
             .agg(pl.col("flagged").sum().alias("flagged"), (pl.col("flagged") & pl.col("late_onset")).sum().alias("late"))
             .with_columns(pl.lit(late_day).alias("late_from_day")))
    return _in_set_order(table, frame).sort("criteria_order").drop("criteria_order").to_dicts()


def has_deaths(frame: pl.DataFrame) -> bool:
    return frame.get_column("death_day").is_not_null().any()


def cumulative_incidence(frame: pl.DataFrame) -> dict:
    """Per criteria set, the cumulative incidence of a flag on each day post-infusion from 0 to the
    longest follow-up (the estimator and why: module docstring)."""
    competing = has_deaths(frame)
    timed = frame.with_columns(
        pl.when(pl.col("flagged")).then(pl.col("onset_day"))
        .when(pl.col("death_day").is_not_null()).then(pl.col("death_day"))
        .otherwise(pl.col("last_day")).fill_null(0).clip(lower_bound=0).alias("duration"),
        pl.when(pl.col("flagged")).then(pl.lit(EVENT))
        .when(pl.col("death_day").is_not_null()).then(pl.lit(COMPETING))
        .otherwise(pl.lit(CENSORED)).alias("event"))
    last = int(max(timed.get_column("duration").max() or 0, timed.get_column("last_day").max() or 0))
    days = list(range(0, last + 1))
    curves = []
    for criteria_set in _set_order(frame):
        rows = timed.filter(pl.col("criteria_set") == criteria_set)
        durations, events = rows["duration"].to_numpy(), rows["event"].to_numpy()
        # still followed and not yet flagged at the start of each day: how much each step rests on
        at_risk = (durations[None, :] >= np.array(days)[:, None]).sum(axis=1)
        curves.append({"criteria_set": criteria_set, "days": days,
                       "incidence": _incidence(durations, events, days, competing),
                       "at_risk": [int(n) for n in at_risk]})
    return {"method": "aalen_johansen" if competing else "kaplan_meier", "competing_event": "death" if competing else None,
            "curves": curves}


def _incidence(durations: np.ndarray, events: np.ndarray, days: list[int], competing: bool) -> list[float]:
    if not (events == EVENT).any():
        return [0.0] * len(days)
    if competing:
        # lifelines breaks tied event times by jittering them (by at most 1e-4 a pass, seeded: the
        # same data gives the same curve): a censored infusion is followed through the whole of its
        # last day (+0.5, so a jittered event of that day stays before it), and each day is read at
        # +0.25, after every event of that day however jittered. Tied events of either kind give
        # the same incidence at the end of their day in whatever order the jitter puts them.
        times = np.where(events == CENSORED, durations + 0.5, durations).astype(float)
        fitter = AalenJohansenFitter(calculate_variance=False, seed=JITTER_SEED)
        with warnings.catch_warnings():   # lifelines says that it jittered
            warnings.simplefilter("ignore")
            fitter.fit(times, events, event_of_interest=EVENT)
        cif = fitter.cumulative_density_.iloc[:, 0]
        at = [d + 0.25 for d in days]
        values = cif.reindex(cif.index.union(at)).ffill().fillna(0.0).loc[at].tolist()
    else:
        fitter = KaplanMeierFitter().fit(durations, event_observed=events == EVENT)
        values = [float(v) for v in fitter.cumulative_density_at_times(days).to_numpy()]
    return [round(v, 6) for v in values]


def agreement(frame: pl.DataFrame) -> list[dict]:
    """Every pair of criteria sets over the same infusions: both flagged, only one, neither, Cohen's
    kappa (None when undefined: both sets constant), and the infusions on which they disagree."""
    wide = frame.pivot(on="criteria_set", index=["patient_id", "infusion_id"], values="flagged")
    out = []
    for a, b in itertools.combinations(_set_order(frame), 2):
        both = int((wide[a] & wide[b]).sum())
        only_a, only_b = int((wide[a] & ~wide[b]).sum()), int((~wide[a] & wide[b]).sum())
        neither = wide.height - both - only_a - only_b
        differ = wide.filter(wide[a] != wide[b]).select(
            "patient_id", "infusion_id", pl.when(pl.col(a)).then(pl.lit(a)).otherwise(pl.lit(b)).alias("flagged_by"))
        out.append({"a": a, "b": b, "both": both, "only_a": only_a, "only_b": only_b, "neither": neither,
                    "kappa": _kappa([[both, only_a], [only_b, neither]]),
                    "disagreements": differ.sort("patient_id", "infusion_id").to_dicts()})
    return out


def _kappa(table: list[list[int]]) -> float | None:
    n = sum(map(sum, table))
    row_yes, col_yes = table[0][0] + table[0][1], table[0][0] + table[1][0]
    if n == 0 or row_yes in (0, n) and col_yes in (0, n):     # both sets constant: kappa is undefined
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        return _num(round(float(cohens_kappa(np.array(table)).kappa), 6))


def _set_order(frame: pl.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame.get_column("criteria_set").to_list()))


def _in_set_order(table: pl.DataFrame, frame: pl.DataFrame) -> pl.DataFrame:
    order = pl.DataFrame({"criteria_set": _set_order(frame)}).with_row_index("criteria_order")
    return table.join(order, on="criteria_set", how="left")
