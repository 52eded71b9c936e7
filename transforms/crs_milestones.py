"""CRS course milestones (clinical-rules.md §2): onset, peak, improvement, re-escalation, resolution.

One function reads them from a daily course, and serves both the whole course as of the build
(`derived.crs_episodes`) and the course as known at each ferritin result (the IEC-HS timing), so
the two can never disagree.

Every milestone is read as a running value: what the days up to this one show. Beside the course's
own days a sequence may hold *probes*: a day as known at a moment inside it (a ferritin result's
own day, graded from what was charted by then). A probe sees the course's days before its day and
itself; nothing sees a probe. So the course as known at every ferritin result comes out of one
pass over the course, not a copy of the course for each result.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

KEYS = ["patient_id", "infusion_id"]
MILESTONES = ["onset_day", "onset_at", "peak_grade", "peak_day", "peak_at", "improvement_day", "improvement_at",
              "reescalated_day", "reescalated_at", "resolved_day", "resolved_at"]
COURSE = "_course"       # True on the course's own days, False on probes
WORKING = ["_clear", "_run", "_streak", "_in_course", "_peak_before", "_highest_before", "_prev_grade",
           "_prev_febrile"]


def _before(value: pl.Expr, by: list[str], running: str | None = None) -> pl.Expr:
    """`value` on the course's last day before this row; with `running` ("cum_min", "cum_max"),
    that aggregate of `value` over all the course's days before this row."""
    seen = pl.when(pl.col(COURSE)).then(value)
    if running:
        seen = getattr(seen, running)()
    return seen.forward_fill().shift(1).over(by)


def _first(cond: pl.Expr, column: str, by: list[str]) -> pl.Expr:
    """`column` (day or a day boundary, both increasing) of the first day where `cond` held: among
    the course's days before this row, else this row."""
    here = pl.when(cond).then(pl.col(column))
    return pl.coalesce(_before(here, by, "cum_min"), here)


def _last(cond: pl.Expr, column: str, by: list[str]) -> pl.Expr:
    """`column` of the last day where `cond` held, this row first."""
    here = pl.when(cond).then(pl.col(column))
    return pl.coalesce(here, _before(here, by, "cum_max"))


def running_milestones(days: pl.DataFrame, by: list[str], resolution_days: int) -> pl.DataFrame:
    """days + MILESTONES as known at each row.

    days: by + day, grade, febrile, day_start_at, day_end_at, cutoff (the moment of evaluation),
    `_course`; the course's days contiguous from 0, a probe sorted before its day's own row.
    Rule: crs.resolution_clear_hours (as `resolution_days` whole days at grade 0).
    """
    day, grade, febrile = pl.col("day"), pl.col("grade"), pl.col("febrile")
    d = days.with_columns(_first(grade > 0, "day", by).alias("onset_day"),            # CR 2: onset, grade >= 1
                          _first(grade > 0, "day_start_at", by).alias("onset_at"))
    clear = ((grade == 0) & (day > pl.col("onset_day")) & (pl.col("day_end_at") <= pl.col("cutoff"))).fill_null(False)
    course_clear = pl.col(COURSE) & pl.col("_clear")
    d = d.with_columns(clear.alias("_clear")).with_columns(
        (pl.col(COURSE) & ~pl.col("_clear")).cum_sum().over(by).alias("_run"))
    streak_before = course_clear.cast(pl.Int32).cum_sum().over([*by, "_run"]) - course_clear.cast(pl.Int32)
    d = d.with_columns(pl.when("_clear").then(streak_before + 1).otherwise(0).alias("_streak"))
    resolved = pl.col("_streak") >= resolution_days                                     # CR 2: resolution
    d = d.with_columns(_first(resolved, "day", by).alias("resolved_day"),
                       _first(resolved, "day_end_at", by).alias("resolved_at"))
    in_course = (day >= pl.col("onset_day")) & pl.col("resolved_day").is_null()
    since_onset = pl.when(day >= pl.col("onset_day")).then(grade).otherwise(0)
    d = d.with_columns(in_course.fill_null(False).alias("_in_course"),
                       _before(pl.when(in_course).then(grade), by, "cum_max").alias("_peak_before"),
                       _before(since_onset, by, "cum_max").alias("_highest_before"),
                       _before(grade, by).alias("_prev_grade"), _before(febrile, by).alias("_prev_febrile"))
    new_peak = pl.col("_in_course") & (pl.col("_peak_before").is_null() | (grade > pl.col("_peak_before")))
    improved = (day > pl.col("onset_day")) & (grade < pl.col("_highest_before"))
    d = d.with_columns(
        pl.max_horizontal("_peak_before", pl.when("_in_course").then(grade)).alias("peak_grade"),
        _last(new_peak, "day", by).alias("peak_day"), _last(new_peak, "day_start_at", by).alias("peak_at"),   # CR 2
        _first(improved, "day", by).alias("improvement_day"), _first(improved, "day_start_at", by).alias(
            "improvement_at"))
    rise = (grade > pl.col("_prev_grade")) | (febrile & ~pl.col("_prev_febrile"))      # CR 2: re-escalation
    worse = (day > pl.col("improvement_day")) & rise
    return d.with_columns(_first(worse, "day", by).alias("reescalated_day"),
                          _first(worse, "day_start_at", by).alias("reescalated_at")).drop(WORKING)


def crs_milestones(days: pl.DataFrame, by: list[str], resolution_days: int) -> pl.DataFrame:
    """Milestones of each course as of its last day, one row per `by` group.

    days: by + day, grade, febrile, day_start_at, day_end_at, cutoff, one row per calendar day,
    contiguous. Output: by + MILESTONES (NULL when not reached).
    """
    course = days.with_columns(pl.lit(True).alias(COURSE)).sort([*by, "day"])
    return (running_milestones(course, by, resolution_days)
            .group_by(by, maintain_order=True).agg(pl.col(MILESTONES).last()))


def milestones_known_at(course: pl.DataFrame, probes: pl.DataFrame, resolution_days: int) -> pl.DataFrame:
    """The milestones of the course as known at each probe's moment: the course's days before the
    probe's day (whole days, all over by then), then the probe's day as known at its moment.

    course: patient_id, infusion_id, day, grade, febrile, day_start_at, day_end_at.
    probes: point_id, patient_id, infusion_id, day, grade, febrile, day_start_at, day_end_at, at.
    Output: point_id + MILESTONES.
    """
    cols = [*KEYS, "day", "grade", "febrile", "day_start_at", "day_end_at"]
    sequence = pl.concat([
        course.select(*cols, pl.col("day_end_at").alias("cutoff"), pl.lit(None, pl.Int64).alias("point_id"),
                      pl.lit(True).alias(COURSE)),
        probes.select(*cols, pl.col("at").alias("cutoff"), pl.col("point_id").cast(pl.Int64),
                      pl.lit(False).alias(COURSE)),
    ], how="vertical_relaxed").sort([*KEYS, "day", COURSE])
    return (running_milestones(sequence, KEYS, resolution_days).filter(~pl.col(COURSE))
            .select("point_id", *MILESTONES))


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
