"""Ferritin trajectory and the ASTCT 2023 IEC-HS ferritin signal and timing (clinical-rules.md §3,
"How the pipeline operationalizes it"), as pure polars functions.

Each post-infusion ferritin result at time t is judged with what was known at t: the ferritin
results collected at or before t, and the CRS course as known at t (`crs_at`, from
transforms.crs_milestones.milestones_known_at).

Censored results (`>100000`, `<50`; column `comparator`) are judged by what they prove
(transforms.censored, clinical-rules.md §1): the CRS-phase peak and the post-peak nadir a later result is
compared with are the highest values the results in their span allow (a `>x` result allows no
highest: the peak or nadir is then unbounded, stored as null, and nothing is proven against it), so
a re-rise or new high is asserted only when it holds whatever the censored values were; a rise rate
is at least (lowest the later result allows - highest the earlier allows) / gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Mapping

import polars as pl

from transforms.censored import highest_possible, judged, lowest_possible

KEYS = ["patient_id", "infusion_id"]
EARLIEST = datetime(1, 1, 1, tzinfo=timezone.utc)   # "since the infusion": every result of the episode
SECONDS_PER_HOUR = 3600
SIGNALS = ("re_rise", "rapid_rise", "new_high")   # CR 3 (a), (b), (c): the first that fires is named
# Why the timing holds or not at a result (CR 3 "Timing holds"), stored so that `cartwatch explain`
# can say it without judging the timing a second time: the first reason that applies is named.
TIMING_REASONS = ("after_improvement", "re_escalated", "no_crs_by_day",                 # holds
                  "no_crs_yet", "crs_not_improved", "within_improvement_hours")        # does not hold
WATCH, SUSPECTED = "watch", "suspected"


@dataclass(frozen=True)
class FerritinRules:
    """iec_hs.* rules the trajectory reads."""

    elevated_x_uln: float
    elevated_x_baseline: float
    lag: timedelta
    re_rise_factor: float
    rapid_rate: float
    rapid_window: timedelta
    timing_after_improvement: timedelta
    no_crs_timing_day: int

    @classmethod
    def from_params(cls, p: Mapping) -> FerritinRules:
        return cls(
            elevated_x_uln=p["iec_hs__ferritin_elevated_x_uln"],
            elevated_x_baseline=p["iec_hs__ferritin_elevated_x_baseline"],
            lag=timedelta(hours=p["iec_hs__ferritin_lag_hours"]), re_rise_factor=p["iec_hs__re_rise_factor"],
            rapid_rate=p["iec_hs__rapid_rise_ng_ml_per_hour"],
            rapid_window=timedelta(hours=p["iec_hs__rapid_rise_window_hours"]),
            timing_after_improvement=timedelta(hours=p["iec_hs__timing_after_improvement_hours"]),
            no_crs_timing_day=int(p["iec_hs__no_crs_timing_day"]),
        )


def ferritin_elevated(r: FerritinRules) -> pl.Expr:
    """> x ULN, and > x baseline when the baseline is above ULN (pre-infusion hyperferritinemia).

    A censored baseline that is not proven normal must be exceeded at its highest possible value
    (reaching it is enough when the baseline is strictly below it: `<1500` is under 1500).
    """
    value, comparator, uln, baseline = pl.col("value"), pl.col("comparator"), pl.col("uln"), pl.col("baseline")
    baseline_comparator = pl.col("baseline_comparator")
    limit = r.elevated_x_baseline * highest_possible(baseline, baseline_comparator)
    above_limit = (pl.when(baseline_comparator == "<").then(judged(value, comparator, ">=", limit))
                   .otherwise(judged(value, comparator, ">", limit)))
    above_baseline = (baseline.is_null() | judged(baseline, baseline_comparator, "<=", uln).fill_null(False)
                      | above_limit.fill_null(False))
    return (judged(value, comparator, ">", r.elevated_x_uln * uln) & above_baseline).fill_null(False)


def upper_bound_or_unbounded(value: pl.Expr, comparator: pl.Expr) -> pl.Expr:
    """The highest value a result allows, infinite for `>x` (so a running max or min counts it)."""
    return highest_possible(value, comparator).fill_null(float("inf"))


def _running(asked: pl.DataFrame, results: pl.DataFrame, how: str) -> pl.DataFrame:
    """For each lower bound asked (KEYS, _from, _inclusive), the running `how` ("max" / "min") of the
    infusion's results collected from it on, at each collection time, and the earliest time at which
    it took its value (`_reached_at`). results: KEYS + o_at, o_value."""
    group = [*KEYS, "_from", "_inclusive"]
    after = (pl.col("o_at") > pl.col("_from")) | (pl.col("_inclusive") & (pl.col("o_at") == pl.col("_from")))
    per_time = (asked.select(group).unique().join(results, on=KEYS).filter(after)
                .group_by([*group, "o_at"]).agg(getattr(pl.col("o_value"), how)()).sort([*group, "o_at"]))
    running = getattr(pl.col("o_value"), f"cum_{how}")().over(group)
    moved = pl.col("_running").shift(1).over(group)
    return per_time.with_columns(running.alias("_running")).with_columns(
        pl.when(moved.is_null() | (pl.col("_running") != moved)).then(pl.col("o_at")).forward_fill().over(group)
        .alias("_reached_at"))


def _as_of(asked: pl.DataFrame, running: pl.DataFrame, at: str, strictly_before: bool) -> pl.DataFrame:
    """Each asked row + the running value (`_running`, `_reached_at`) at its moment `at`."""
    return asked.sort(at).join_asof(running.sort("o_at"), left_on=at, right_on="o_at",
                                    by=[*KEYS, "_from", "_inclusive"], strategy="backward",
                                    allow_exact_matches=not strictly_before, check_sortedness=False)


def crs_phase_peaks(post: pl.DataFrame, r: FerritinRules) -> pl.DataFrame:
    """Highest ferritin from CRS onset to resolution + lag (inclusive), among results known at t.

    post: point_id, patient_id, infusion_id, t, value, onset_at, resolved_at (the CRS course as known
    at t). Output: point_id, crs_phase_peak, crs_phase_peak_at (the earliest result at that value).
    A running maximum from each onset an infusion's points know, read at each point's window end:
    no pairing of every result with every earlier one. Rule: iec_hs.ferritin_lag_hours.
    """
    window_end = pl.min_horizontal("t", pl.coalesce(pl.col("resolved_at") + r.lag, pl.col("t")))
    asked = post.filter(pl.col("onset_at").is_not_null()).select(
        "point_id", *KEYS, pl.col("onset_at").alias("_from"), pl.lit(True).alias("_inclusive"),
        window_end.alias("_to"))
    results = post.select(*KEYS, pl.col("t").alias("o_at"),
                          upper_bound_or_unbounded(pl.col("value"), pl.col("comparator")).alias("o_value"))
    return (_as_of(asked, _running(asked, results, "max"), "_to", strictly_before=False)
            .filter(pl.col("_running").is_not_null())
            .select("point_id", pl.col("_running").alias("crs_phase_peak"),
                    pl.col("_reached_at").alias("crs_phase_peak_at")))


def post_peak_nadirs(post: pl.DataFrame) -> pl.DataFrame:
    """Lowest ferritin after the CRS-phase peak and before t (no CRS: lowest since the infusion;
    CRS without a ferritin in its phase: lowest since CRS onset).

    post: point_id, patient_id, infusion_id, t, value, onset_at, crs_phase_peak_at.
    Output: point_id, post_peak_nadir (a running minimum from each point's lower bound, read just
    before t).
    """
    peak_at, onset_at = pl.col("crs_phase_peak_at"), pl.col("onset_at")
    asked = post.select("point_id", *KEYS, "t",
                        pl.coalesce(peak_at, onset_at, pl.lit(EARLIEST)).alias("_from"),       # after the peak,
                        (peak_at.is_null() & onset_at.is_not_null()).alias("_inclusive"))     # or from onset on
    results = post.select(*KEYS, pl.col("t").alias("o_at"),
                          upper_bound_or_unbounded(pl.col("value"), pl.col("comparator")).alias("o_value"))
    return (_as_of(asked, _running(asked, results, "min"), "t", strictly_before=True)
            .filter(pl.col("_running").is_not_null())
            .select("point_id", pl.col("_running").alias("post_peak_nadir")))


def rise_pairs(points: pl.DataFrame, results: pl.DataFrame, window: timedelta) -> pl.DataFrame:
    """Each point with every earlier result of the patient with 0 < gap <= window (a rise rule's
    window): results are bucketed by window, so a point meets only its own and the previous bucket,
    not the patient's whole history.

    points: point_id, patient_id, t. results: patient_id, o_at + any o_ columns. Output: point_id, t
    + the results' columns.
    """
    width = max(int(window / timedelta(microseconds=1)), 1)
    bucket = lambda at: pl.col(at).dt.epoch("us") // width   # noqa: E731
    near = pl.concat_list(bucket("t") - 1, bucket("t")).alias("_bucket")       # this bucket and the one before
    return (points.select("point_id", "patient_id", "t", near).explode("_bucket")
            .join(results.with_columns(bucket("o_at").alias("_bucket")), on=["patient_id", "_bucket"])
            .filter((pl.col("o_at") < pl.col("t")) & (pl.col("o_at") >= pl.col("t") - window)).drop("_bucket"))


def rise_rates(pairs: pl.DataFrame, r: FerritinRules) -> pl.DataFrame:
    """Steepest rise to each point from an earlier result with 0 < gap <= the rapid-rise window.

    pairs: rise_pairs output with value, comparator (the point's), o_value and o_comparator.
    Output: point_id, max_rate_ng_ml_h (the steepest rate proven: at least this), rapid_rise.
    Rules: iec_hs.rapid_rise_ng_ml_per_hour, iec_hs.rapid_rise_window_hours.
    """
    gap_s = (pl.col("t") - pl.col("o_at")).dt.total_microseconds() / 1e6
    # the least the rise can be: censored values count at the bound that makes it smallest
    rise = (lowest_possible(pl.col("value"), pl.col("comparator"))
            - highest_possible(pl.col("o_value"), pl.col("o_comparator")))
    return (pairs.filter(pl.col("o_at") >= pl.col("t") - r.rapid_window)
            .group_by("point_id").agg(
                (rise * SECONDS_PER_HOUR / gap_s).max().alias("max_rate_ng_ml_h"),
                (rise * SECONDS_PER_HOUR >= r.rapid_rate * gap_s).any().alias("rapid_rise")))   # CR 3 (b)


def ferritin_trajectory(ferritin: pl.DataFrame, crs_at: pl.DataFrame, r: FerritinRules,
                        rises: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per ferritin result with its signal, timing and status (watch / suspected / NULL).

    ferritin: point_id, patient_id, infusion_id, observed_at, day, value, uln, baseline, infused_at,
    + any pass-through columns (source, unit). crs_at: point_id, onset_at, improvement_at,
    reescalated_at, resolved_at (the CRS course as known at each point). rises: point_id, t, o_at,
    o_value (derived.ferritin_rises; made from `ferritin` by rise_pairs when not given). Results
    before the infusion get `elevated` only. Rules: iec_hs.* of FerritinRules.
    """
    f = ferritin.with_columns(ferritin_elevated(r).alias("elevated"),
                              (pl.col("observed_at") >= pl.col("infused_at")).alias("_post"))
    post = f.filter("_post").join(crs_at, on="point_id", how="left").rename({"observed_at": "t"})
    peaks = crs_phase_peaks(post, r)
    nadirs = post_peak_nadirs(post.join(peaks, on="point_id", how="left"))
    if rises is None:
        rises = rise_pairs(post.select("point_id", "patient_id", "t"),
                           f.select("patient_id", pl.col("observed_at").alias("o_at"),
                                    pl.col("value").alias("o_value"), pl.col("comparator").alias("o_comparator")),
                           r.rapid_window)
    rates = rise_rates(rises.join(post.select("point_id", "value", "comparator"), on="point_id"), r)
    assessed = (post.join(peaks, on="point_id", how="left").join(nadirs, on="point_id", how="left")
                .join(rates, on="point_id", how="left").pipe(_signal_and_status, r))
    unbounded_to_null = [pl.when(pl.col(c).is_infinite()).then(None).otherwise(pl.col(c)).alias(c)
                         for c in ("crs_phase_peak", "post_peak_nadir")]
    return (f.join(assessed.select("point_id", *JUDGED).with_columns(unbounded_to_null), on="point_id", how="left")
            .sort([*KEYS, "observed_at", "point_id"]).drop("_post"))


JUDGED = ["crs_phase_peak", "crs_phase_peak_at", "post_peak_nadir", "max_rate_ng_ml_h", "re_rise", "rapid_rise",
          "new_high", "signal", "timing_holds", "status", "timing_reason", "timing_from"]


def _signal_and_status(df: pl.DataFrame, r: FerritinRules) -> pl.DataFrame:
    t, value, comparator = pl.col("t"), pl.col("value"), pl.col("comparator")
    window_closed = pl.col("resolved_at").is_not_null() & (t > pl.col("resolved_at") + r.lag)
    df = df.with_columns(
        judged(value, comparator, ">=", r.re_rise_factor * pl.col("post_peak_nadir"))     # CR 3 (a)
        .fill_null(False).alias("re_rise"),
        pl.col("rapid_rise").fill_null(False),
        (window_closed & judged(value, comparator, ">", pl.col("crs_phase_peak"))).fill_null(False)  # CR 3 (c)
        .alias("new_high"),
    )
    first_signal = pl.when(pl.col(SIGNALS[0])).then(pl.lit(SIGNALS[0]))
    for name in SIGNALS[1:]:
        first_signal = first_signal.when(pl.col(name)).then(pl.lit(name))
    timing_from = pl.col("improvement_at") + r.timing_after_improvement
    after_improvement = (t > timing_from).fill_null(False)                               # CR 3: resolving CRS
    re_escalated = pl.col("reescalated_at").is_not_null()                                # worse after improving
    no_crs_by_day = pl.col("onset_at").is_null() & (pl.col("day") >= r.no_crs_timing_day)  # no CRS by day 15
    timing = after_improvement | re_escalated | no_crs_by_day
    df = df.with_columns(pl.when(pl.col("elevated")).then(first_signal).alias("signal"), timing.alias("timing_holds"),
                         _timing_reason(after_improvement, re_escalated, no_crs_by_day).alias("timing_reason"),
                         timing_from.alias("timing_from"))
    return df.with_columns(
        pl.when(pl.col("signal").is_null()).then(None)
        .when(pl.col("timing_holds")).then(pl.lit(SUSPECTED)).otherwise(pl.lit(WATCH)).alias("status"))


def _timing_reason(after_improvement: pl.Expr, re_escalated: pl.Expr, no_crs_by_day: pl.Expr) -> pl.Expr:
    """The first of TIMING_REASONS that applies at a post-infusion result."""
    held, not_held = TIMING_REASONS[:3], TIMING_REASONS[3:]
    reason = pl.when(after_improvement).then(pl.lit(held[0]))
    reason = reason.when(re_escalated).then(pl.lit(held[1])).when(no_crs_by_day).then(pl.lit(held[2]))
    return (reason.when(pl.col("onset_at").is_null()).then(pl.lit(not_held[0]))
            .when(pl.col("improvement_at").is_null()).then(pl.lit(not_held[1]))
            .otherwise(pl.lit(not_held[2])))
