"""ASTCT 2023 IEC-HS statuses at each evaluation point and the onset windows they make
(clinical-rules.md §3: statuses, onset window), as pure polars functions.

Inputs are the ferritin trajectory (derived.ferritin_trajectory: signal, timing, watch/suspected at
each post-infusion result) and the manifestation results (flags.astct_iec_hs_2023_manifestations).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Mapping

import polars as pl

from transforms.censored import judged

KEYS = ["patient_id", "infusion_id"]
CRITERIA_SET = "astct_iec_hs_2023"
WATCH, SUSPECTED, CRITERIA_MET = "watch", "suspected", "criteria_met"
RANK = {WATCH: 1, SUSPECTED: 2, CRITERIA_MET: 3}
IEC_HS, WATCH_ONLY = "iec_hs", "watch"
COMMON = "common"
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=timezone.utc)
ISO = "%Y-%m-%dT%H:%M:%S%:z"
# contract.md §5 evidence object (rule, analyte, value, unit, at as ISO 8601 text in UTC, source), plus
# the IEC-HS status at the result and why it counts (detail); kept as a struct until the export.
# `comparator`: a censored result's ('>' of `>100000`, clinical-rules.md §1), null for an exact value
ITEM = pl.Struct({"rule": pl.String, "analyte": pl.String, "value": pl.Float64, "comparator": pl.String,
                  "unit": pl.String, "at": pl.String, "source": pl.String, "status": pl.String,
                  "detail": pl.String})
ITEM_FIELDS = list(ITEM.to_schema())
NO_EVIDENCE = pl.lit([], dtype=pl.List(ITEM))
WATCH_NOTE = "CRS-associated hyperferritinemia (timing does not hold): not an IEC-HS window"


@dataclass(frozen=True)
class IecHsRules:
    manifestation_window: timedelta
    quiet: timedelta
    late_onset_day: int

    @classmethod
    def from_params(cls, p: Mapping) -> IecHsRules:
        return cls(manifestation_window=timedelta(hours=p["iec_hs__manifestation_window_hours"]),
                   quiet=timedelta(hours=p["iec_hs__window_close_quiet_hours"]),
                   late_onset_day=int(p["iec_hs__late_onset_day"]))


def onset_windows(ferritin: pl.DataFrame, common: pl.DataFrame, r: IecHsRules, as_of: datetime) -> pl.DataFrame:
    """Onset windows: runs of results during which a criterion holds, opened by a suspected result.

    ferritin: patient_id, infusion_id, at, day, elevated, status (post-infusion results).
    common: patient_id, infusion_id, at (most-common manifestation results).
    A window stays open while ferritin is elevated or a manifestation is found, and closes
    `quiet` after ferritin is back below its threshold and no manifestation came (CR 3). A run
    that only reaches watch is a `watch` window. Output: patient_id, infusion_id, window_kind,
    onset_at, onset_day, end_at (NULL while open), closes_at (NULL while ferritin stays elevated).
    Rule: iec_hs.window_close_quiet_hours.
    """
    items = pl.concat([
        ferritin.select(*KEYS, "at", pl.col("day").cast(pl.Int32), pl.lit(True).alias("is_ferritin"), "elevated",
                        "status"),
        common.select(*KEYS, "at", pl.lit(None, pl.Int32).alias("day"), pl.lit(False).alias("is_ferritin"),
                      pl.lit(None, pl.Boolean).alias("elevated"), pl.lit(None, pl.String).alias("status")),
    ]).sort([*KEYS, "at", "is_ferritin"], descending=[False, False, False, True])
    low_at = pl.when(pl.col("is_ferritin") & ~pl.col("elevated")).then(pl.col("at"))
    items = items.with_columns(
        pl.col("elevated").forward_fill().over(KEYS).fill_null(False).alias("_ferritin_high"),
        low_at.shift(-1).backward_fill().over(KEYS).alias("_next_low"),
    )
    quiet_from = (pl.when(~pl.col("is_ferritin") & ~pl.col("_ferritin_high")).then(pl.col("at"))
                  .otherwise(pl.col("_next_low")))
    hot = (items.filter(pl.col("elevated") | ~pl.col("is_ferritin"))
           .with_columns((quiet_from + r.quiet).fill_null(FAR_FUTURE).alias("_closes")))
    hot = hot.with_columns(pl.col("_closes").cum_max().shift(1).over(KEYS).alias("_prev_closes"))
    hot = hot.with_columns((pl.col("_prev_closes").is_null() | (pl.col("at") > pl.col("_prev_closes")))
                           .cum_sum().over(KEYS).alias("_run"))
    first_at = lambda s: pl.col("at").filter(pl.col("status") == s).min()   # noqa: E731
    runs = hot.group_by([*KEYS, "_run"]).agg(
        first_at(SUSPECTED).alias("_suspected_at"), first_at(WATCH).alias("_watch_at"),
        pl.col("_closes").max().alias("_closes"),
        pl.col("day").filter(pl.col("at") == pl.coalesce(first_at(SUSPECTED), first_at(WATCH))).first().alias(
            "onset_day"))
    closes = pl.when(pl.col("_closes") < FAR_FUTURE).then(pl.col("_closes"))
    return (runs.filter(pl.col("_suspected_at").is_not_null() | pl.col("_watch_at").is_not_null())
            .select(*KEYS,
                    pl.when(pl.col("_suspected_at").is_not_null()).then(pl.lit(IEC_HS)).otherwise(pl.lit(WATCH_ONLY))
                    .alias("window_kind"),
                    pl.coalesce("_suspected_at", "_watch_at").alias("onset_at"), "onset_day",
                    pl.when(closes <= as_of).then(closes).alias("end_at"), closes.alias("closes_at"))
            .sort([*KEYS, "onset_at"]))


def in_window(df: pl.DataFrame, windows: pl.DataFrame) -> pl.DataFrame:
    """df (patient_id, infusion_id, at, ...) + window_kind, window_onset_at of the window holding it."""
    w = windows.select(*KEYS, "window_kind", pl.col("onset_at").alias("window_onset_at"),
                       pl.col("end_at").alias("_end"))
    marked = df.with_row_index("_row")
    hits = (marked.select("_row", *KEYS, "at").join(w, on=KEYS)
            .filter(pl.col("at").is_between(pl.col("window_onset_at"), pl.col("_end").fill_null(FAR_FUTURE)))
            .select("_row", "window_kind", "window_onset_at"))
    return marked.join(hits, on="_row", how="left").drop("_row")


def criteria_pairs(suspected: pl.DataFrame, common: pl.DataFrame, r: IecHsRules) -> pl.DataFrame:
    """Most-common manifestations within the window (inclusive, either side) of a suspected
    ferritin of the same onset window, with the moment the pair was known.

    suspected: patient_id, infusion_id, at, window_onset_at. common: patient_id, infusion_id, m_id, at.
    Output: patient_id, infusion_id, window_onset_at, m_id, known_at. Rule: iec_hs.manifestation_window_hours.
    """
    return (suspected.select(*KEYS, "window_onset_at", pl.col("at").alias("s_at"))
            .join(common.select(*KEYS, "m_id", pl.col("at").alias("m_at")), on=KEYS)
            .filter((pl.col("m_at") - pl.col("s_at")).abs() <= r.manifestation_window)
            .group_by([*KEYS, "window_onset_at", "m_id"])
            .agg(pl.max_horizontal("s_at", "m_at").min().alias("known_at")))


def evidence_items(df: pl.DataFrame, **fields: pl.Expr | str) -> pl.DataFrame:
    """Rows -> one evidence item (ITEM) each, in column `item`, with its moment in `_item_at`."""
    exprs = {f: fields.get(f, pl.col(f) if f in df.columns else pl.lit(None, pl.String)) for f in ITEM_FIELDS}
    exprs = {f: (pl.col(e) if isinstance(e, str) else e) for f, e in exprs.items()}
    exprs["at"] = exprs["at"].dt.to_string(ISO)
    return df.with_columns(pl.struct(**exprs).cast(ITEM).alias("item"), pl.col("at").alias("_item_at"))


def evidence_lists(items: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """One list of items per `by` group, duplicates removed, in time order (then by content, so
    the same evidence is listed the same way every run)."""
    return (items.unique(subset=[*by, "item"]).sort([*by, "_item_at", "item"])
            .group_by(by, maintain_order=True).agg(pl.col("item").alias("evidence")))


def ferritin_detail() -> pl.Expr:
    return (pl.when(pl.col("signal") == "re_rise").then(pl.format("post-peak nadir {}", pl.col("post_peak_nadir")))
            .when(pl.col("signal") == "rapid_rise")
            .then(pl.format("steepest rise {} ng/mL/h", pl.col("max_rate_ng_ml_h").round(1)))
            .when(pl.col("signal") == "new_high").then(pl.format("CRS-phase peak {}", pl.col("crs_phase_peak"))))


def evaluation_points(trajectory: pl.DataFrame, manifestations: pl.DataFrame, windows: pl.DataFrame,
                      r: IecHsRules) -> pl.DataFrame:
    """The IEC-HS status at each ferritin result and at each manifestation result collected within
    the manifestation window after a suspected one, using only what was collected by then.

    trajectory: derived.ferritin_trajectory rows after the infusion (+ `at`). manifestations:
    flags.astct_iec_hs_2023_manifestations rows (+ m_id). windows: onset_windows output.
    Output: one row per point: patient_id, infusion_id, at, day, point_kind, rule, analyte, value,
    comparator, unit, source, status, ferritin_signal, timing_holds, window_kind, window_onset_at,
    manifestations (list of the most-common ones found by then), evidence (list of ITEM: the
    point's own result and, per manifestation found, the first result of it that paired with a
    suspected ferritin of the window).
    """
    ferr = in_window(trajectory, windows)
    suspected = ferr.filter((pl.col("status") == SUSPECTED) & (pl.col("window_kind") == IEC_HS))
    after_suspected = (manifestations.join(suspected.select(*KEYS, "window_onset_at", pl.col("at").alias("s_at")),
                                           on=KEYS)
                       .filter(pl.col("at").is_between(pl.col("s_at"), pl.col("s_at") + r.manifestation_window,
                                                       closed="right"))
                       .unique(subset="m_id", keep="first").drop("s_at")
                       .with_columns(pl.lit(IEC_HS).alias("window_kind")))
    points = pl.concat([
        ferr.select(*KEYS, "at", pl.col("day").cast(pl.Int32), pl.lit("ferritin").alias("point_kind"),
                    pl.col("signal").alias("rule"), pl.lit("ferritin").alias("analyte"), "value", "comparator",
                    "unit", "source",
                    "status", pl.col("signal").alias("ferritin_signal"), "timing_holds", "window_kind",
                    "window_onset_at", pl.lit(None, pl.Int64).alias("m_id"), ferritin_detail().alias("detail")),
        after_suspected.select(*KEYS, "at", pl.col("day").cast(pl.Int32), pl.lit("manifestation").alias("point_kind"),
                               "rule", "analyte", "value", "comparator", "unit", "source",
                               pl.lit(SUSPECTED).alias("status"),
                               pl.lit(None, pl.String).alias("ferritin_signal"),
                               pl.lit(None, pl.Boolean).alias("timing_holds"), "window_kind", "window_onset_at",
                               pl.col("m_id").cast(pl.Int64), "detail"),
    ], how="vertical_relaxed").with_row_index("point_id")
    common = manifestations.filter(pl.col("manifestation_class") == COMMON)
    # per window and manifestation rule, the first pair known (bounded: at most one per rule)
    first_by_rule = (criteria_pairs(suspected, common, r).join(common.select("m_id", "rule"), on="m_id")
                     .sort("known_at", "m_id").unique(subset=[*KEYS, "window_onset_at", "rule"], keep="first"))
    found = (points.filter(pl.col("status") == SUSPECTED).select("point_id", *KEYS, "window_onset_at", "at")
             .join(first_by_rule, on=[*KEYS, "window_onset_at"]).filter(pl.col("known_at") <= pl.col("at"))
             .join(common.select("m_id", "analyte", "value", "comparator", "unit", "source", "detail",
                                 pl.col("at").alias("m_at")),
                   on="m_id"))
    met = found.group_by("point_id").agg(pl.col("rule").sort().alias("_found"))
    points = points.join(met, on="point_id", how="left").with_columns(
        pl.when(pl.col("_found").is_not_null()).then(pl.lit(CRITERIA_MET)).otherwise(pl.col("status")).alias("status"))
    own = evidence_items(points.filter(pl.col("rule").is_not_null()), status="status")
    other = evidence_items(found.join(points.select("point_id", pl.col("status").alias("point_status")),
                                      on="point_id"), at="m_at", status="point_status")
    evidence = evidence_lists(pl.concat([own.select("point_id", "item", "_item_at"),
                                         other.select("point_id", "item", "_item_at")]), ["point_id"])
    return (points.join(evidence, on="point_id", how="left")
            .with_columns(pl.col("_found").fill_null(pl.lit([], dtype=pl.List(pl.String))).alias("manifestations"),
                          pl.col("evidence").fill_null(NO_EVIDENCE))
            .sort([*KEYS, "at", "point_kind"]).drop("_found"))


def window_rows(windows: pl.DataFrame, points: pl.DataFrame, manifestations: pl.DataFrame,
                crs_episodes: pl.DataFrame, baselines: pl.DataFrame, r: IecHsRules, as_of: datetime) -> pl.DataFrame:
    """One row per onset window with the CONTRACT `export windows` columns (end_day aside: it needs
    the site zone) and every result that made it as evidence (a list of ITEM).

    windows: onset_windows output. points: evaluation_points output. manifestations: + m_id.
    crs_episodes: derived.crs_episodes. baselines: patient_id, infusion_id, value, comparator, uln,
    at, source of each infusion's baseline ferritin result (listed when proven above ULN). Rule: iec_hs.late_onset_day,
    iec_hs.manifestation_window_hours.
    """
    w = windows.rename({"onset_at": "window_onset_at"})
    status = (points.filter(pl.col("window_kind") == IEC_HS).group_by([*KEYS, "window_onset_at"])
              .agg(pl.col("status").replace_strict(RANK, default=0).max().alias("_rank")))
    names = {rank: name for name, rank in RANK.items()}
    signals = points.filter((pl.col("point_kind") == "ferritin") & pl.col("rule").is_not_null()
                            & pl.col("window_kind").is_not_null())
    ferritin_items = evidence_items(signals.join(w.select(*KEYS, "window_onset_at", "window_kind"),
                                                 on=[*KEYS, "window_onset_at", "window_kind"]),
                                    detail=pl.when(pl.col("window_kind") == WATCH_ONLY)
                                    .then(pl.format("{}; {}", pl.col("detail"), pl.lit(WATCH_NOTE)))
                                    .otherwise(pl.col("detail")))
    suspected = signals.filter(pl.col("status").is_in([SUSPECTED, CRITERIA_MET]))
    near = (manifestations.join(suspected.select(*KEYS, "window_onset_at", pl.col("at").alias("s_at")), on=KEYS)
            .filter((pl.col("at") - pl.col("s_at")).abs() <= r.manifestation_window))
    kept_open = (manifestations.filter(pl.col("manifestation_class") == COMMON)
                 .join(w.filter(pl.col("window_kind") == IEC_HS).select(*KEYS, "window_onset_at", "end_at"), on=KEYS)
                 .filter((pl.col("at") >= pl.col("window_onset_at"))
                         & (pl.col("at") <= pl.col("end_at").fill_null(as_of))))
    manifestation_items = evidence_items(pl.concat([near.drop("s_at"), kept_open.drop("end_at")],
                                                   how="diagonal_relaxed"), status=pl.lit(None, pl.String))
    baseline_items = evidence_items(
        baselines.filter(judged(pl.col("value"), pl.col("comparator"), ">", pl.col("uln")))
        .join(w.select(*KEYS, "window_onset_at"), on=KEYS),
        rule=pl.lit("pre_infusion_hyperferritinemia"), analyte=pl.lit("ferritin"),
        detail=pl.lit("baseline above ULN: elevated is judged against the baseline too"))
    by = [*KEYS, "window_onset_at"]
    evidence = evidence_lists(pl.concat([i.select(*by, "item", "_item_at")
                                         for i in (ferritin_items, manifestation_items, baseline_items)]), by)
    crs = crs_episodes.select(*KEYS, pl.col("onset_day").alias("crs_onset_day"),
                              pl.col("peak_day").alias("crs_peak_day"),
                              pl.col("resolved_day").alias("crs_resolved_day"))
    return (w.join(status, on=by, how="left").join(evidence, on=by, how="left").join(crs, on=KEYS, how="left")
            .select(*KEYS, pl.lit(CRITERIA_SET).alias("criteria_set"),
                    pl.when(pl.col("window_kind") == WATCH_ONLY).then(pl.lit(WATCH))
                    .otherwise(pl.col("_rank").replace_strict(names, default=None, return_dtype=pl.String))
                    .alias("status"),
                    pl.col("window_onset_at").alias("onset_at"), pl.col("onset_day").cast(pl.Int32), "end_at",
                    "crs_onset_day", "crs_peak_day", "crs_resolved_day",
                    (pl.col("onset_day") >= r.late_onset_day).alias("late_onset"),
                    pl.col("evidence").fill_null(NO_EVIDENCE))
            .sort([*KEYS, "onset_at"]))
