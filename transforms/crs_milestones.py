"""CRS course milestones (CLINICAL_RULES 2): onset, peak, improvement, re-escalation, resolution.

One function reads them from any daily course, whether the whole course as of the build
(`derived.crs_episodes`) or the course as known at a ferritin result (the IEC-HS timing), so the
two can never disagree.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

MILESTONES = ["onset_day", "onset_at", "peak_grade", "peak_day", "peak_at", "improvement_day", "improvement_at",
              "reescalated_day", "reescalated_at", "resolved_day", "resolved_at"]


def crs_milestones(days: pl.DataFrame, by: list[str], resolution_days: int) -> pl.DataFrame:
    """Milestones of each course, one row per `by` group.

    days: by + day, grade, febrile, day_start_at, day_end_at, cutoff (the moment of evaluation),
    one row per calendar day, contiguous. Rule: crs.resolution_clear_hours (as `resolution_days`
    whole days at grade 0). Output: by + MILESTONES (NULL when not reached).
    """
    day, grade, febrile = pl.col("day"), pl.col("grade"), pl.col("febrile")
    first_day = lambda cond: day.filter(cond).min().over(by)   # noqa: E731
    d = days.sort([*by, "day"]).with_columns(first_day(grade > 0).alias("onset_day"))   # CR 2: onset, grade >= 1
    clear = (grade == 0) & (day > pl.col("onset_day")) & (pl.col("day_end_at") <= pl.col("cutoff"))
    d = d.with_columns(clear.fill_null(False).alias("_clear")).with_columns(
        (~pl.col("_clear")).cum_sum().over(by).alias("_run"))
    d = d.with_columns(pl.col("_clear").cast(pl.Int32).cum_sum().over([*by, "_run"]).alias("_streak"))
    d = d.with_columns(first_day(pl.col("_streak") >= resolution_days).alias("resolved_day"))  # CR 2: resolution
    in_course = (day >= pl.col("onset_day")) & (pl.col("resolved_day").is_null() | (day < pl.col("resolved_day")))
    running = pl.when(day >= pl.col("onset_day")).then(grade).otherwise(0).cum_max().over(by)
    d = d.with_columns(
        grade.filter(in_course).max().over(by).alias("peak_grade"),
        running.shift(1).over(by).alias("_highest_before"),
        grade.shift(1).over(by).alias("_prev_grade"),
        febrile.shift(1).over(by).alias("_prev_febrile"),
    )
    d = d.with_columns(
        first_day(in_course & (grade == pl.col("peak_grade"))).alias("peak_day"),       # CR 2: peak
        first_day((day > pl.col("onset_day")) & (grade < pl.col("_highest_before"))).alias("improvement_day"),
    )
    rise = (grade > pl.col("_prev_grade")) | (febrile & ~pl.col("_prev_febrile"))       # CR 2: re-escalation
    d = d.with_columns(first_day((day > pl.col("improvement_day")) & rise).alias("reescalated_day"))
    at = lambda name, col="day_start_at": pl.col(col).filter(day == pl.col(name)).first().alias(  # noqa: E731
        name.replace("_day", "_at"))
    return d.group_by(by, maintain_order=True).agg(
        pl.col("onset_day").first(), at("onset_day"), pl.col("peak_grade").first(),
        pl.col("peak_day").first(), at("peak_day"), pl.col("improvement_day").first(), at("improvement_day"),
        pl.col("reescalated_day").first(), at("reescalated_day"),
        pl.col("resolved_day").first(), at("resolved_day", "day_end_at"),
    ).select(*by, *MILESTONES)


def crs_episodes(milestones: pl.DataFrame, ferritin_lag_hours: float) -> pl.DataFrame:
    """One row per infusion with its CRS milestones, the ferritin CRS-phase window end and duration.

    Rules: iec_hs.ferritin_lag_hours. duration_days counts the days from onset to resolution
    (NULL while unresolved).
    """
    return milestones.with_columns(
        (pl.col("resolved_at") + pl.lit(timedelta(hours=ferritin_lag_hours))).alias("ferritin_window_end_at"),
        (pl.col("resolved_day") - pl.col("onset_day")).alias("duration_days"),
        pl.col("onset_day").is_not_null().alias("had_crs"),
    )
