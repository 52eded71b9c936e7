"""transforms.ferritin_signal: elevated, re-rise, rapid rise, new high, timing (clinical-rules.md §3),
on tiny frames, with the boundaries of each rule."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from transforms.ferritin_signal import FerritinRules, ferritin_elevated, ferritin_trajectory
from transforms.rules import load_rules

INFUSED = datetime(2026, 3, 1, 0, 0, tzinfo=timezone.utc)
RULES = FerritinRules.from_params(load_rules().sql_params())
ULN = 400.0


def h(hours: float) -> datetime:
    return INFUSED + timedelta(hours=hours)


def run(results: list[tuple], crs: dict[str, float] | None = None, baseline: float | None = None,
        day_of=lambda hours: int(hours // 24)) -> list[dict]:
    """results: (hours after infusion, value[, comparator]); crs: milestone -> hours (the same at
    every point)."""
    results = [(t, v, c[0] if c else None) for t, v, *c in results]
    ferritin = pl.DataFrame({
        "point_id": list(range(len(results))), "patient_id": "P", "infusion_id": "I",
        "observed_at": [h(t) for t, _, _ in results], "day": [day_of(t) for t, _, _ in results],
        "value": [float(v) for _, v, _ in results], "comparator": [c for _, _, c in results],
        "uln": ULN, "baseline": baseline, "baseline_comparator": None, "infused_at": INFUSED,
    }, schema_overrides={"baseline": pl.Float64, "comparator": pl.String, "baseline_comparator": pl.String})
    crs = crs or {}
    crs_at = pl.DataFrame({"point_id": list(range(len(results)))}).with_columns(
        pl.lit(h(crs[m]) if m in crs else None, pl.Datetime("us", "UTC")).alias(m)
        for m in ("onset_at", "improvement_at", "reescalated_at", "resolved_at"))
    return ferritin_trajectory(ferritin, crs_at, RULES).sort("observed_at").to_dicts()


@pytest.mark.parametrize("value, baseline, elevated", [
    (800, None, False),        # exactly 2 x ULN: not elevated (strictly greater)
    (800.01, None, True),
    (900, 300, True),          # baseline within range: judged against ULN only
    (2500, 1500, False),       # pre-infusion hyperferritinemia: > 2 x ULN but not > 2 x baseline
    (3000, 1500, False),       # exactly 2 x baseline
    (3001, 1500, True),
])
def test_elevated_is_strictly_above_twice_uln_and_twice_an_abnormal_baseline(value, baseline, elevated):
    frame = pl.DataFrame({"value": [float(value)], "comparator": [None], "uln": [ULN], "baseline": [baseline],
                          "baseline_comparator": [None]},
                         schema_overrides={"baseline": pl.Float64, "comparator": pl.String,
                                           "baseline_comparator": pl.String})
    assert frame.select(ferritin_elevated(RULES)).item() is elevated


@pytest.mark.parametrize("rise, gap_hours, rapid", [
    (2400, 24, True),          # exactly 100 ng/mL/h over the whole window
    (2399, 24, False),
    (100, 1, True),            # exactly 100 ng/mL/h over one hour
    (5000, 24.01, False),      # earlier result just outside the 24 h window
])
def test_rapid_rise_is_at_least_100_per_hour_within_24_hours(rise, gap_hours, rapid):
    start = 15 * 24.0          # no CRS, day 15: timing holds, so a rapid rise is suspected
    rows = run([(start, 6000), (start + gap_hours, 6000 + rise)])   # far below 2 x nadir: no re-rise
    assert rows[1]["rapid_rise"] is rapid
    assert rows[1]["signal"] == ("rapid_rise" if rapid else None)
    assert rows[1]["status"] == ("suspected" if rapid else None)


def test_re_rise_against_the_post_peak_nadir_and_the_signal_order():
    crs = {"onset_at": 24, "improvement_at": 72, "resolved_at": 96}
    rows = run([(30, 3000), (60, 6000), (150, 2000), (200, 1500), (260, 3000), (300, 2999)], crs)
    peak = rows[1]
    assert peak["crs_phase_peak"] == 6000 and peak["crs_phase_peak_at"] == h(60)
    assert [r["post_peak_nadir"] for r in rows[2:]] == [None, 2000, 1500, 1500]
    assert rows[4]["re_rise"] and rows[4]["signal"] == "re_rise"      # exactly 2 x nadir
    assert not rows[5]["re_rise"] and rows[5]["signal"] is None       # just below 2 x nadir, below the peak


def test_result_exactly_at_lag_end_is_crs_phase_and_new_high_only_after():
    crs = {"onset_at": 24, "improvement_at": 48, "resolved_at": 72}
    lag_end = 72 + RULES.lag.total_seconds() / 3600
    rows = run([(30, 5000), (lag_end, 6000), (lag_end + 30, 7000)], crs)
    at_end, after = rows[1], rows[2]
    assert at_end["crs_phase_peak"] == 6000 and at_end["crs_phase_peak_at"] == h(lag_end)   # still CRS phase
    assert not at_end["new_high"]
    assert after["crs_phase_peak"] == 6000 and after["new_high"] and after["signal"] == "new_high"
    assert after["status"] == "suspected"


@pytest.mark.parametrize("after_improvement_hours, timing", [(48, False), (48 + 1 / 60, True)])
def test_timing_holds_strictly_after_improvement_plus_48_hours(after_improvement_hours, timing):
    crs = {"onset_at": 24, "improvement_at": 72}
    t = 72 + after_improvement_hours
    rows = run([(30, 3000), (t - 20, 1000), (t, 2500)], crs)
    assert rows[2]["re_rise"] and rows[2]["timing_holds"] is timing
    assert rows[2]["status"] == ("suspected" if timing else "watch")
    # the reason is stored for `cartwatch explain`, with the moment the timing holds from
    assert rows[2]["timing_reason"] == ("after_improvement" if timing else "within_improvement_hours")
    assert rows[2]["timing_from"] == h(72 + 48)


def test_reescalation_makes_timing_hold_before_improvement_plus_48_hours():
    crs = {"onset_at": 24, "improvement_at": 72, "reescalated_at": 96}
    rows = run([(30, 3000), (80, 1000), (100, 2500)], crs)
    assert rows[2]["timing_holds"] and rows[2]["status"] == "suspected"
    assert rows[2]["timing_reason"] == "re_escalated"


@pytest.mark.parametrize("day, status", [(14, "watch"), (15, "suspected")])
def test_without_crs_timing_holds_from_day_15(day, status):
    rows = run([(24, 500), (24 * day + 1, 1200)])
    assert rows[1]["post_peak_nadir"] == 500 and rows[1]["re_rise"]
    assert rows[1]["day"] == day and rows[1]["status"] == status
    assert rows[1]["timing_reason"] == ("no_crs_by_day" if status == "suspected" else "no_crs_yet")


def test_results_before_the_infusion_are_judged_elevated_only_and_feed_the_rate():
    rows = run([(-10, 500), (10, 2500)])
    assert rows[0]["status"] is None and rows[0]["max_rate_ng_ml_h"] is None
    assert rows[1]["max_rate_ng_ml_h"] == pytest.approx(100.0) and rows[1]["rapid_rise"]
    assert rows[1]["post_peak_nadir"] is None     # the nadir is since the infusion only
    assert rows[1]["status"] == "watch"           # day 0, no CRS yet: CRS may still be coming


def test_crs_without_ferritin_in_its_phase_takes_the_nadir_since_crs_onset():
    crs = {"onset_at": 48, "improvement_at": 72, "resolved_at": 96}
    rows = run([(10, 300), (200, 1000), (250, 2000)], crs)             # nothing drawn in the CRS phase
    assert rows[2]["crs_phase_peak"] is None and rows[2]["post_peak_nadir"] == 1000   # not the pre-CRS 300
    assert rows[2]["re_rise"] and rows[2]["status"] == "suspected"
    assert not rows[1]["re_rise"]


def test_peaks_nadirs_and_rise_pairs_match_the_definitions_over_every_pair():
    """The running maxima and minima (one pass per lower bound) and the bucketed rise pairs give
    what pairing every result with every earlier one gives, whatever the CRS course known at each
    result (onset, resolution, none) and with results drawn at the same moment."""
    import random

    from transforms.ferritin_signal import crs_phase_peaks, post_peak_nadirs, rise_pairs

    rng = random.Random(11)
    rows = []
    for infusion in ("A", "B", "C"):
        onset, resolved = rng.choice([(None, None), (30.0, None), (30.0, 120.0), (50.0, 60.0)])
        for k in range(40):
            t = rng.choice([k * 7.0, (k - 1) * 7.0 if k else 0.0])            # some share a moment
            known_onset = onset if onset is not None and t >= onset else None
            rows.append({"point_id": len(rows), "patient_id": "P", "infusion_id": infusion, "t": h(t),
                         "value": float(rng.choice([300, 900, 2500, 2500, 6000, 12000])), "comparator": None,
                         "onset_at": h(known_onset) if known_onset is not None else None,
                         "resolved_at": (h(resolved) if known_onset is not None and resolved and t > resolved
                                         else None)})
    post = pl.DataFrame(rows, schema_overrides={"comparator": pl.String, "onset_at": pl.Datetime("us", "UTC"),
                                                 "resolved_at": pl.Datetime("us", "UTC")})
    earlier = post.select("patient_id", "infusion_id", pl.col("t").alias("o_at"), pl.col("value").alias("o_value"))
    pairs = post.join(earlier, on=["patient_id", "infusion_id"]).filter(pl.col("o_at") <= pl.col("t"))
    end = pl.coalesce(pl.col("resolved_at") + RULES.lag, pl.col("t"))
    in_phase = pl.col("onset_at").is_not_null() & pl.col("o_at").is_between(pl.col("onset_at"), end)
    expected_peaks = pairs.filter(in_phase) \
        .group_by("point_id").agg(pl.col("o_value").max().alias("crs_phase_peak"),
                                  pl.col("o_at").filter(pl.col("o_value") == pl.col("o_value").max()).min()
                                  .alias("crs_phase_peak_at"))
    peaks = crs_phase_peaks(post, RULES)
    assert peaks.sort("point_id").equals(expected_peaks.sort("point_id").select(peaks.columns))
    after = (pl.when(pl.col("crs_phase_peak_at").is_not_null()).then(pl.col("o_at") > pl.col("crs_phase_peak_at"))
             .when(pl.col("onset_at").is_not_null()).then(pl.col("o_at") >= pl.col("onset_at")).otherwise(True))
    expected_nadirs = pairs.join(peaks, on="point_id", how="left").filter((pl.col("o_at") < pl.col("t")) & after) \
        .group_by("point_id").agg(pl.col("o_value").min().alias("post_peak_nadir"))
    nadirs = post_peak_nadirs(post.join(peaks, on="point_id", how="left"))
    assert nadirs.sort("point_id").equals(expected_nadirs.sort("point_id"))
    earlier = earlier.drop("infusion_id")
    every = post.select("point_id", "patient_id", "t").join(earlier, on="patient_id").filter(
        (pl.col("o_at") < pl.col("t")) & (pl.col("o_at") >= pl.col("t") - RULES.rapid_window))
    found = rise_pairs(post.select("point_id", "patient_id", "t"), earlier, RULES.rapid_window)
    assert found.sort(pl.all()).equals(every.select(found.columns).sort(pl.all()))
    assert min(peaks.height, nadirs.height, found.height) > 20


# --- censored results (clinical-rules.md §1): a conclusion only when every allowed value gives it ---

@pytest.mark.parametrize("comparator, value, baseline, elevated", [
    (">", 2 * ULN, (None, None), True),       # above 800: every value is elevated
    (">=", 2 * ULN, (None, None), False),     # may be exactly 800: not proven
    ("<", 10 * ULN, (None, None), False),     # may be anything below 4000: not proven
    (None, 2500, ("<", 1500), False),         # the baseline may be 1499 (abnormal): 2500 is not 2 x that
    (None, 3000, ("<", 1500), True),          # above 2 x any baseline below 1500
    (None, 900, ("<", ULN), True),            # the baseline is proven normal: ULN alone
    (None, 900, (">", ULN), False),           # proven abnormal, unbounded: nothing is 2 x it for sure
])
def test_censored_elevated_only_when_proven(comparator, value, baseline, elevated):
    frame = pl.DataFrame({"value": [float(value)], "comparator": [comparator], "uln": [ULN],
                          "baseline": [baseline[1]], "baseline_comparator": [baseline[0]]},
                         schema_overrides={"baseline": pl.Float64, "comparator": pl.String,
                                           "baseline_comparator": pl.String})
    assert frame.select(ferritin_elevated(RULES)).item() is elevated


def test_censored_rapid_rise_uses_the_least_rise_the_results_allow():
    start, rise = 15 * 24.0, RULES.rapid_rate * 24
    proven = run([(start, 5000), (start + 24, 5000 + rise, ">")])          # at least 100 ng/mL/h
    assert (proven[1]["rapid_rise"], proven[1]["max_rate_ng_ml_h"], proven[1]["status"]) == (
        True, RULES.rapid_rate, "suspected")
    both_above = run([(start, 100000, ">"), (start + 24, 100000, ">")])     # proves nothing about a rise
    assert (both_above[1]["rapid_rise"], both_above[1]["max_rate_ng_ml_h"], both_above[1]["signal"]) == (
        False, None, None)
    earlier_below = run([(start, 5000, "<"), (start + 24, 5000 + rise)])    # the earlier was at most 5000
    assert earlier_below[1]["rapid_rise"] is True


def test_censored_nadir_and_peak_are_the_highest_values_allowed():
    no_crs = 15 * 24.0
    below = run([(no_crs, 3000), (no_crs + 48, 1000, "<"), (no_crs + 96, 2000)])
    assert (below[2]["post_peak_nadir"], below[2]["re_rise"]) == (1000, True)      # 2000 >= 2 x (at most 1000)
    above = run([(no_crs, 3000), (no_crs + 48, 1000, ">"), (no_crs + 96, 2000)])
    assert (above[2]["post_peak_nadir"], above[2]["re_rise"]) == (3000, False)     # the nadir may still be 3000
    just_under = run([(no_crs, 1000), (no_crs + 96, 1999, ">")])                    # may be 1999.5: not proven
    assert just_under[1]["re_rise"] is False
    crs = {"onset_at": 24, "improvement_at": 72, "resolved_at": 96}
    unbounded_peak = run([(30, 6000, ">"), (300, 50000)], crs)                     # the peak may be any height
    assert (unbounded_peak[1]["crs_phase_peak"], unbounded_peak[1]["new_high"]) == (None, False)
