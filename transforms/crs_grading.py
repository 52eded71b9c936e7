"""ASTCT 2019 CRS grade as a daily course per infusion (clinical-rules.md §2), as pure functions.

Readings (vitals and documented events) become cumulative inputs of each calendar day post-infusion
at each reading time (`crs_intraday`: the day as known at that moment); the last of them is the
day's input. A day's grade depends on the day before: an episode opened by fever goes on without
fever until a grade-0 day, the tocilizumab/corticosteroid waiver lasts until the episode resolves,
and documented grades are carried forward. That recursion is `grade_days`, written once on arrays:
`grade_course` applies it to the n-th day of every infusion at once, for n = 0, 1, ... (a loop as
long as the longest course, not the cohort), and `grade_partial_days` to every ferritin result's
own day as known at its moment, in one call; `grade_step` is the same rule for one day. The state
is a few small values carried from one day to the next, which this recursion states exactly and a
chain of window expressions would only imitate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, NamedTuple

import numpy as np
import polars as pl

from transforms.rules import Rules

KEYS = ["patient_id", "infusion_id"]
DOSE_EVENTS = ("tocilizumab", "corticosteroid")        # CR 2: after these, fever is no longer required
LOW_FLOW_DEVICE, HIGH_FLOW_DEVICE = "nasal_cannula", "high_flow"
HOURS_PER_DAY = 24
DOCUMENTED, DERIVED = "documented", "derived"

INPUT_SCHEMA = {
    "max_temp_c": pl.Float64, "hypotension_grade": pl.Int32, "o2_grade": pl.Int32,
    "o2_support": pl.Boolean, "spo2_low": pl.Boolean, "dose": pl.Boolean,
    "doc_max": pl.Int32, "doc_last": pl.Int32,
}


@dataclass(frozen=True)
class CrsRules:
    """The rule values CRS grading reads (crs.* in clinical_rules.yaml, o2_devices)."""

    fever_c: float
    sbp_lt: float
    map_lt: float
    spo2_lt: float
    low_flow_max: float
    several_vasopressors: float
    grade_fever: int
    grade_no_pressor: int
    grade_one_pressor: int
    grade_several_pressors: int
    device_grades: Mapping[str, int]
    hold_days: int
    resolution_days: int

    @property
    def grade_low_flow(self) -> int:
        return self.device_grades[LOW_FLOW_DEVICE]

    @property
    def grade_high_flow(self) -> int:
        return self.device_grades[HIGH_FLOW_DEVICE]

    @classmethod
    def from_params(cls, params: Mapping, rules: Rules) -> CrsRules:
        """From the build's named parameters (scalar rules) and the rules file's o2_devices."""
        p = params
        return cls(
            fever_c=p["crs__fever_c"], sbp_lt=p["crs__hypotension_sbp_lt_mmhg"],
            map_lt=p["crs__hypotension_map_lt_mmhg"], spo2_lt=p["crs__hypoxia_spo2_lt_pct"],
            low_flow_max=p["crs__low_flow_max_l_min"], several_vasopressors=p["crs__grade4_min_vasopressors"],
            grade_fever=int(p["crs__grade_fever_only"]),
            grade_no_pressor=int(p["crs__grade_hypotension_no_vasopressor"]),
            grade_one_pressor=int(p["crs__grade_hypotension_one_vasopressor"]),
            grade_several_pressors=int(p["crs__grade_hypotension_several_vasopressors"]),
            device_grades=dict(rules.o2_devices), hold_days=int(p["crs__documented_grade_hold_days"]),
            resolution_days=max(1, math.ceil(p["crs__resolution_clear_hours"] / HOURS_PER_DAY)),
        )


def crs_readings(vitals: pl.DataFrame, events: pl.DataFrame, r: CrsRules) -> pl.DataFrame:
    """What each post-infusion reading says about CRS, one row per reading.

    vitals: patient_id, infusion_id, day, observed_at, kind, value, value_text.
    events: patient_id, infusion_id, day, observed_at, event_type, value_num.
    Output: patient_id, infusion_id, day, at + the INPUT_SCHEMA contributions of that reading.
    Rules: crs.hypotension_*, crs.hypoxia_spo2_lt_pct, crs.low_flow_max_l_min, crs.grade*, o2_devices.
    """
    kind, value = pl.col("kind"), pl.col("value")
    device_grade = pl.col("value_text").replace_strict(dict(r.device_grades), default=None,
                                                       return_dtype=pl.Int32)
    o2_grade = (pl.when(kind == "o2_device").then(device_grade)
                .when((kind == "o2_flow") & (value > r.low_flow_max)).then(r.grade_high_flow)   # ASTCT: > 6 L/min
                .when((kind == "o2_flow") & (value > 0)).then(r.grade_low_flow))                # ASTCT: low-flow
    v = vitals.select(
        *KEYS, "day", pl.col("observed_at").alias("at"),
        pl.when(kind == "temperature").then(value).alias("max_temp_c"),
        pl.when(((kind == "sbp") & (value < r.sbp_lt)) | ((kind == "map") & (value < r.map_lt)))
        .then(r.grade_no_pressor).alias("hypotension_grade"),              # ASTCT: hypotension, no vasopressor
        o2_grade.alias("o2_grade"),
        (o2_grade > 0).alias("o2_support"),
        ((kind == "spo2") & (value < r.spo2_lt)).alias("spo2_low"),
    )
    etype, count = pl.col("event_type"), pl.col("value_num")
    e = events.select(
        *KEYS, "day", pl.col("observed_at").alias("at"),
        pl.when((etype == "vasopressor") & (count >= r.several_vasopressors)).then(r.grade_several_pressors)
        .when((etype == "vasopressor") & (count > 0)).then(r.grade_one_pressor)   # ASTCT: one vasopressor
        .alias("hypotension_grade"),
        etype.is_in(DOSE_EVENTS).alias("dose"),
        pl.when(etype == "crs_grade").then(count).alias("doc_max"),
    )
    out = pl.concat([v.pipe(_typed), e.pipe(_typed)], how="diagonal_relaxed").pipe(_typed)
    return out.with_columns(pl.col("doc_max").alias("doc_last"))


def _typed(df: pl.DataFrame) -> pl.DataFrame:
    cols = [pl.col(c).cast(t) if c in df.columns else pl.lit(None, t).alias(c) for c, t in INPUT_SCHEMA.items()]
    return df.select(*KEYS, pl.col("day").cast(pl.Int32), "at", *cols)


def crs_intraday(readings: pl.DataFrame) -> pl.DataFrame:
    """Each day's inputs as known at each reading time (cumulative within the calendar day).

    Input: crs_readings output. Output grain: one row per patient, infusion, day and reading time,
    columns as crs_readings (doc_max the worst and doc_last the latest grade documented so far).
    """
    day_keys = [*KEYS, "day"]
    worst = [pl.col(c).cum_max().forward_fill() for c in ("max_temp_c", "hypotension_grade", "o2_grade", "doc_max")]
    seen = [pl.col(c).fill_null(False).cum_max() for c in ("o2_support", "spo2_low", "dose")]
    cum = (readings.sort([*day_keys, "at"])
           .with_columns(*(e.over(day_keys) for e in worst + seen),
                         pl.col("doc_last").forward_fill().over(day_keys)))
    return cum.unique(subset=[*day_keys, "at"], keep="last", maintain_order=True)


def day_inputs(intraday: pl.DataFrame) -> pl.DataFrame:
    """The inputs of each whole day (as of the build): the last intraday row of the day."""
    return intraday.unique(subset=[*KEYS, "day"], keep="last", maintain_order=True).drop("at")


def with_day_components(df: pl.DataFrame, r: CrsRules) -> pl.DataFrame:
    """febrile, hypotension_grade, hypoxia_grade from cumulative inputs (nulls: nothing charted).

    Rules: crs.fever_c; crs.hypoxia_spo2_lt_pct (only when no supplemental oxygen is charted).
    """
    spo2_fallback = pl.when(pl.col("spo2_low") & ~pl.col("o2_support")).then(r.grade_low_flow).otherwise(0)
    return df.with_columns(
        (pl.col("max_temp_c") >= r.fever_c).fill_null(False).alias("febrile"),       # ASTCT: fever >= 38.0 C
        pl.col("hypotension_grade").fill_null(0).cast(pl.Int32),
        pl.max_horizontal(pl.col("o2_grade").fill_null(0), spo2_fallback).cast(pl.Int32).alias("hypoxia_grade"),
        pl.col("dose").fill_null(False),
    )


class DayState(NamedTuple):
    """What a day inherits from the day before: scalars for one day, or arrays (one element per day
    graded, NO_VALUE for an absent grade or day) for many."""

    prev_grade: int = 0
    waiver: bool = False            # a tocilizumab/corticosteroid dose waives fever until resolution
    held_grade: int | None = None   # last documented grade, carried forward
    held_day: int | None = None


STATE_TYPES = (pl.Int32, pl.Boolean, pl.Int32, pl.Int32)
NO_VALUE = -1     # an absent grade or day inside the integer arrays (grades and days are >= 0)


def grade_days(day, febrile, organ, dose, doc_max, doc_last, state: DayState, r: CrsRules):
    """The grade of each day, whether it is documented, and the state the next day inherits.

    Arguments are numpy arrays, one element per day graded (absent grades and days: NO_VALUE).
    clinical-rules.md §2.
    """
    waiver = state.waiver | dose
    held = (state.held_grade != NO_VALUE) & ((r.hold_days == 0) | (day - state.held_day <= r.hold_days))
    documented = (doc_max != NO_VALUE) | held
    grade = np.where(doc_max != NO_VALUE, doc_max,                  # documented grades win
                     np.where(held, state.held_grade,              # held until the next documented grade
                              np.where(febrile, np.maximum(r.grade_fever, organ),   # fever opens an episode
                                       np.where((state.prev_grade > 0) | waiver, organ, 0))))  # open episode,
    resolved = (grade == 0) & (state.prev_grade > 0)                # or after tocilizumab/steroid
    has_doc = doc_last != NO_VALUE
    return grade, documented, DayState(grade, waiver & ~resolved, np.where(has_doc, doc_last, state.held_grade),
                                       np.where(has_doc, day, state.held_day))


def grade_step(day: int, febrile: bool, organ_grade: int, dose: bool, doc_max: int | None,
               doc_last: int | None, state: DayState, r: CrsRules) -> tuple[int, str, DayState]:
    """One day's grade and source, and the state the next day inherits (grade_days for one day)."""
    def absent(v):
        return np.array([NO_VALUE if v is None else v])

    def given(v):
        return None if v[0] == NO_VALUE else int(v[0])

    grade, documented, nxt = grade_days(
        np.array([day]), np.array([febrile]), np.array([organ_grade]), np.array([dose]), absent(doc_max),
        absent(doc_last), DayState(np.array([state.prev_grade]), np.array([state.waiver]),
                                   absent(state.held_grade), absent(state.held_day)), r)
    return (int(grade[0]), DOCUMENTED if documented[0] else DERIVED,
            DayState(int(nxt.prev_grade[0]), bool(nxt.waiver[0]), given(nxt.held_grade), given(nxt.held_day)))


def _step_inputs(days: pl.DataFrame) -> dict[str, np.ndarray]:
    """with_day_components output as the arrays grade_days reads."""
    ints = {c: days[c].cast(pl.Int64).fill_null(NO_VALUE).to_numpy()
            for c in ("day", "hypotension_grade", "hypoxia_grade", "doc_max", "doc_last")}
    return {"day": ints["day"], "febrile": days["febrile"].to_numpy(), "dose": days["dose"].to_numpy(),
            "organ": np.maximum(ints["hypotension_grade"], ints["hypoxia_grade"]),
            "doc_max": ints["doc_max"], "doc_last": ints["doc_last"]}


def _graded(df: pl.DataFrame, grade: np.ndarray, documented: np.ndarray) -> pl.DataFrame:
    return df.with_columns(pl.Series("grade", grade).cast(pl.Int32),
                           pl.Series("grade_source", np.where(documented, DOCUMENTED, DERIVED)))


def grade_course(calendar: pl.DataFrame, inputs: pl.DataFrame, r: CrsRules) -> pl.DataFrame:
    """The graded course: one row per patient, infusion and calendar day of `calendar`.

    calendar: patient_id, infusion_id, day, day_start_at, day_end_at (contiguous days from 0).
    inputs: day_inputs output. Output: calendar + max_temp_c, febrile, hypotension_grade,
    hypoxia_grade, grade, grade_source, and the inherited state (state_prev_grade, state_waiver,
    state_held_grade, state_held_day) that `grade_partial_days` needs.
    """
    days = (calendar.with_columns(pl.col("day").cast(pl.Int32))
            .join(inputs, on=[*KEYS, "day"], how="left").sort([*KEYS, "day"]).pipe(with_day_components, r))
    a = _step_inputs(days)
    starts = np.flatnonzero(days.select(pl.struct(KEYS).is_first_distinct()).to_series().to_numpy())
    lengths = np.diff(np.append(starts, days.height))
    grade, documented = np.zeros(days.height, np.int64), np.zeros(days.height, bool)
    inherited = DayState(*(np.zeros(days.height, t) for t in (np.int64, bool, np.int64, np.int64)))
    state = DayState(np.zeros(len(starts), np.int64), np.zeros(len(starts), bool),
                     np.full(len(starts), NO_VALUE), np.full(len(starts), NO_VALUE))
    for n in range(int(lengths.max(initial=0))):       # the n-th day of every course still running
        running = lengths > n
        rows = starts[running] + n
        today = DayState(*(field[running] for field in state))
        for field, values in zip(inherited, today):
            field[rows] = values
        grade[rows], documented[rows], tomorrow = grade_days(
            *(a[c][rows] for c in ("day", "febrile", "organ", "dose", "doc_max", "doc_last")), today, r)
        for field, values in zip(state, tomorrow):
            field[running] = values
    return _graded(days, grade, documented).with_columns(*_state_columns(inherited))


def _state_columns(state: DayState) -> list[pl.Series]:
    """state_<field> columns from arrays (NO_VALUE back to null)."""
    out = []
    for name, values, dtype in zip(DayState._fields, state, STATE_TYPES):
        series = pl.Series(f"state_{name}", values)
        out.append(series.cast(dtype) if dtype == pl.Boolean else series.set(series == NO_VALUE, None).cast(dtype))
    return out


def _state_arrays(df: pl.DataFrame) -> DayState:
    return DayState(*(df[f"state_{f}"].cast(pl.Int64).fill_null(NO_VALUE).to_numpy() if t != pl.Boolean
                      else df[f"state_{f}"].to_numpy() for f, t in zip(DayState._fields, STATE_TYPES)))


def grade_partial_days(points: pl.DataFrame, course: pl.DataFrame, intraday: pl.DataFrame,
                       r: CrsRules) -> pl.DataFrame:
    """The grade of each point's own day as known at the point's moment (readings stamped <= at).

    points: point_id, patient_id, infusion_id, day, at (a day present in `course`).
    Output: point_id, patient_id, infusion_id, day, day_start_at, day_end_at, grade, febrile.
    """
    known = (points.with_columns(pl.col("day").cast(pl.Int32)).sort("at")
             .join_asof(intraday.sort("at").rename({"at": "reading_at"}), left_on="at", right_on="reading_at",
                        by=[*KEYS, "day"], strategy="backward", check_sortedness=False)
             .pipe(with_day_components, r)
             .join(course.select(*KEYS, "day", "day_start_at", "day_end_at", pl.col("^state_.*$")),
                   on=[*KEYS, "day"], how="inner"))
    a = _step_inputs(known)
    grade, documented, _ = grade_days(*(a[c] for c in ("day", "febrile", "organ", "dose", "doc_max", "doc_last")),
                                      _state_arrays(known), r)
    return _graded(known, grade, documented).select("point_id", *KEYS, "day", "day_start_at", "day_end_at",
                                                    "grade", "febrile")
