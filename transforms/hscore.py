"""HScore (Fardet et al., Arthritis Rheumatol 2014) per day post-infusion, as a range.

Pure polars. Every band and point comes from the rules file's structured `hscore` block; item
thresholds written there in another unit (triglycerides in mmol/L, fibrinogen in g/L) are
converted to the analyte's canonical unit by the units module, never by a literal factor.

An item the data cannot show (no result that day, no documentation of organomegaly,
immunosuppression or hemophagocytosis) contributes its lowest points to `hscore_min` and its
highest to `hscore_max`: a range, never a silent zero (clinical-rules.md §4). Bands, as clinical-rules.md §4
writes them: temperature < 38.4 / 38.4-39.4 / > 39.4 C; ferritin < 2,000 / 2,000-6,000 / > 6,000;
triglycerides < 1.5 / 1.5-4 / > 4 mmol/L (inner bounds inclusive); fibrinogen <= 2.5 g/L;
AST >= 30 U/L; cytopenias count lineages with Hb <= 9.2 g/dL, WBC <= 5.0 and platelets <= 110
x10^9/L (0 or 1 lineage score the "1" points). Inputs as `transforms.criteria_hlh`.

A censored result (transforms.censored, clinical-rules.md §1) counts a band toward `hscore_min` only
when it proves it, and toward `hscore_max` unless it refutes it: ferritin `>6000` scores the top
band, `>2000` scores the middle band at least and the top band at most.

`status` is `met` when the minimum reaches the cut-off, `possible` when only the maximum does.
`status_at` is the first moment of the day the minimum reached the cut-off (the day's worst
values only get worse as the day goes on, so the minimum only rises); for `possible`, the day's start.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from transforms.criteria_hlh import (EVIDENCE, KEYS, LabTest, concat_items, evidence_item, event_member,
                                     lab_member, passes, unknown_evidence, worst_first)
from transforms.rules import Rules
from transforms.units import UnitConverter

ITEM_COLUMNS = [*KEYS, "points_min", "points_max", "steps", "evidence"]
# Cytopenia thresholds carry their unit in the key name (the block has no `unit` for them).
CYTOPENIA_KEYS = {"hemoglobin_le_g_dl": ("hemoglobin", "g/dL"), "wbc_le": ("wbc", "10*9/L"),
                  "platelets_le": ("platelets", "10*9/L")}
ORGANOMEGALY = ("hepatomegaly", "splenomegaly")
ORGANOMEGALY_BANDS = ("none", "one", "both")


@dataclass(frozen=True)
class Level:
    """A band reached when the day's worst value passes `op threshold`; worth `points` in total."""

    op: str
    threshold: float
    points: float


def _canonical(converter: UnitConverter, analyte: str, unit: str, value: float) -> float:
    """A threshold written in `unit`, in the analyte's canonical unit (12 significant digits)."""
    return float(f"{converter.to_canonical(analyte, unit).apply(float(value)):.12g}")


def lab_levels(rules: Rules, converter: UnitConverter) -> dict[str, tuple[str, float, list[Level]]]:
    """Per lab item: analyte, base points, and the levels above the base, in canonical units."""
    items = rules.hscore["items"]
    out = {}
    for item, analyte in (("temperature", "temperature"), ("ferritin", "ferritin"),
                          ("triglycerides", "triglycerides")):
        spec, pts = items[item], items[item]["points"]
        low, high = (_canonical(converter, analyte, spec["unit"], spec[k]) for k in ("low_lt", "high_gt"))
        out[item] = (analyte, float(pts["low"]),
                     [Level(">=", low, float(pts["mid"])), Level(">", high, float(pts["high"]))])
    for item, op, key in (("fibrinogen", "<=", "le"), ("ast", ">=", "ge")):
        spec, pts = items[item], items[item]["points"]
        out[item] = (item, float(pts["no"]),
                     [Level(op, _canonical(converter, item, spec["unit"], spec[key]), float(pts["yes"]))])
    return out


def lab_item(grid, obs, item: str, analyte: str, base: float, levels: list[Level]) -> pl.DataFrame:
    """Points of a banded lab item from the day's worst value; unknown days get the full range.

    A level counts toward the minimum from the first result that proves it, and toward the
    maximum when some result of the day does not refute it (a censored value's interval)."""
    first = pl.col("observed_at").min()
    tests = [passes(pl.col("value"), pl.col("comparator"), lv.op, lv.threshold) for lv in levels]
    reached = [pl.col("observed_at").filter(test).min().alias(f"level_{i}") for i, test in enumerate(tests)]
    possible = [test.fill_null(True).any().alias(f"possible_{i}") for i, test in enumerate(tests)]
    highest = levels[0].op in (">", ">=")
    worst = (pl.struct("value", "comparator", "unit", "observed_at", "source")
             .sort_by(**worst_first(highest)).first().alias("worst"))
    points, points_max = pl.lit(base), pl.lit(base)
    for i, lv in enumerate(levels):
        points = pl.when(pl.col(f"level_{i}").is_not_null()).then(pl.lit(lv.points)).otherwise(points)
        points_max = pl.when(pl.col(f"possible_{i}")).then(pl.lit(lv.points)).otherwise(points_max)
    previous = [base] + [lv.points for lv in levels[:-1]]
    steps = [pl.struct(at=pl.col("first_at"), points=pl.lit(base)),
             *[pl.struct(at=pl.col(f"level_{i}"), points=pl.lit(lv.points - prev))
               for i, (lv, prev) in enumerate(zip(levels, previous))]]
    w = pl.col("worst").struct
    known = (obs.filter(pl.col("analyte") == analyte).group_by(KEYS)
             .agg(first.alias("first_at"), *reached, *possible, worst)
             .pipe(concat_items, "steps", *steps)
             .with_columns(points_min=points, points_max=points_max, steps=_reached(pl.col("steps")),
                           evidence=pl.concat_list(evidence_item(
                               f"hscore.{item}", analyte, w.field("value"), w.field("unit"),
                               w.field("observed_at"), w.field("source"), w.field("comparator")))))
    all_points = [base] + [lv.points for lv in levels]
    return _with_unknown(grid, known, item, item, min(all_points), max(all_points))


def count_item(grid, members: list[pl.DataFrame], item: str, analyte: str,
               points_for: dict[int, float], n: int) -> pl.DataFrame:
    """Points by how many of `n` members (lineages, organs) are present; unknown ones widen the range."""
    met = pl.col("state").fill_null(False)
    counted = pl.concat([m.join(grid.select(*KEYS, "day_start_at"), on=KEYS)
                         .select(*KEYS, "day_start_at", "state", "at", "evidence") for m in members])
    agg = (counted.group_by(KEYS).agg(
        pl.col("day_start_at").first(), met_count=met.sum(), known=pl.col("state").is_not_null().sum(),
        ats=pl.col("at").filter(met).sort(),
        evidence=pl.col("evidence").list.explode(keep_nulls=False, empty_as_null=False)))

    def pts(count: pl.Expr) -> pl.Expr:
        expr = pl.lit(points_for[0])
        for c in range(1, n + 1):
            expr = pl.when(count == c).then(pl.lit(points_for[c])).otherwise(expr)
        return expr

    steps = [pl.struct(at=pl.col("day_start_at"), points=pl.lit(points_for[0])),
             *[pl.struct(at=pl.col("ats").list.get(c - 1, null_on_oob=True),
                         points=pl.lit(points_for[c] - points_for[c - 1])) for c in range(1, n + 1)]]
    known = agg.pipe(concat_items, "steps", *steps).with_columns(
        points_min=pts(pl.col("met_count")),
        points_max=pts(pl.col("met_count") + n - pl.col("known")),
        steps=_reached(pl.col("steps")))
    return _with_unknown(grid, known, item, analyte, min(points_for.values()), max(points_for.values()))


def event_item(grid, events, item: str, event_type: str, no: float, yes: float) -> pl.DataFrame:
    """Points of a documented yes/no finding known by the end of the day."""
    member = event_member(grid, events, f"hscore.{item}", event_type).join(
        grid.select(*KEYS, "day_start_at"), on=KEYS)
    points = pl.when(pl.col("state")).then(pl.lit(yes)).otherwise(pl.lit(no))
    known = (member.pipe(concat_items, "steps", pl.struct(at=pl.col("day_start_at"), points=pl.lit(no)),
                         pl.struct(at=pl.col("at"), points=pl.lit(yes - no)))
             .with_columns(points_min=points, points_max=points, steps=_reached(pl.col("steps"))))
    return _with_unknown(grid, known, item, event_type, min(no, yes), max(no, yes))


def _reached(steps: pl.Expr) -> pl.Expr:
    """The steps of a day that were reached (a level never reached has no moment)."""
    return steps.list.filter(pl.element().struct.field("at").is_not_null())


def _with_unknown(grid, known: pl.DataFrame, item: str, analyte: str, lowest: float,
                  highest: float) -> pl.DataFrame:
    """Every grid day: the known points, or the item's full range when nothing shows it."""
    out = grid.select(*KEYS, "day_start_at").join(
        known.select(ITEM_COLUMNS), on=KEYS, how="left")
    missing = pl.col("points_min").is_null()
    return out.with_columns(
        item=pl.lit(item),
        steps=pl.when(missing).then(pl.concat_list(pl.struct(
            at=pl.col("day_start_at"), points=pl.lit(lowest)))).otherwise(pl.col("steps")),
        evidence=pl.when(missing).then(pl.concat_list(unknown_evidence(f"hscore.{item}", analyte)))
        .otherwise(pl.col("evidence")),
        points_min=pl.col("points_min").fill_null(lowest),
        points_max=pl.col("points_max").fill_null(highest),
    ).select("item", *ITEM_COLUMNS)


def hscore_items(grid, obs, events, rules: Rules, converter: UnitConverter) -> pl.DataFrame:
    """All nine HScore items per grid day: `item, KEYS, points_min, points_max, steps, evidence`."""
    items = rules.hscore["items"]
    frames = [lab_item(grid, obs, item, analyte, base, levels)
              for item, (analyte, base, levels) in lab_levels(rules, converter).items()]
    cyto = items["cytopenias"]
    lineages = [lab_member(obs, LabTest(f"hscore.cytopenias.{key}", analyte, "<=",
                                        _canonical(converter, analyte, unit, cyto[key])))
                for key, (analyte, unit) in CYTOPENIA_KEYS.items()]
    cyto_points = {int(k): float(v) for k, v in cyto["points"].items()}
    cyto_points.setdefault(0, min(cyto_points.values()))  # no lineage scores as one lineage
    frames.append(count_item(grid, lineages, "cytopenias", "cytopenias", cyto_points, len(lineages)))
    organ_points = {i: float(items["organomegaly"]["points"][band])
                    for i, band in enumerate(ORGANOMEGALY_BANDS)}
    organs = [event_member(grid, events, f"hscore.organomegaly.{e}", e) for e in ORGANOMEGALY]
    frames.append(count_item(grid, organs, "organomegaly", "organomegaly", organ_points, len(organs)))
    for item in ("immunosuppression", "hemophagocytosis"):
        pts = items[item]["points"]
        frames.append(event_item(grid, events, item, item, float(pts["no"]), float(pts["yes"])))
    return pl.concat(frames)


def hscore_daily(grid, obs, events, rules: Rules, converter: UnitConverter) -> pl.DataFrame:
    """One row per grid day: each item's points (NULL while not determined), the range, status.

    Rules: hscore (structured block), hscore.cutoff.
    """
    cutoff = rules.value("hscore.cutoff")
    items = hscore_items(grid, obs, events, rules, converter)
    per_item = items.with_columns(points=pl.when(pl.col("points_min") == pl.col("points_max"))
                                  .then(pl.col("points_min"))).pivot(
        on="item", index=KEYS, values="points").rename(lambda c: c if c in KEYS else f"{c}_points")
    totals = items.group_by(KEYS).agg(
        hscore_min=pl.col("points_min").sum(), hscore_max=pl.col("points_max").sum(),
        unknown_items=pl.col("item").filter(pl.col("points_min") != pl.col("points_max")).sort(),
        evidence=pl.col("evidence").list.explode(keep_nulls=False, empty_as_null=False))
    reached = (items.select(*KEYS, "steps").explode("steps").unnest("steps")
               .sort([*KEYS, "at"])
               .with_columns(running=pl.col("points").cum_sum().over(KEYS))
               .filter(pl.col("running") >= cutoff)
               .group_by(KEYS).agg(met_at=pl.col("at").min()))
    out = (grid.join(per_item, on=KEYS, how="left").join(totals, on=KEYS, how="left")
           .join(reached, on=KEYS, how="left"))
    status = (pl.when(pl.col("hscore_min") >= cutoff).then(pl.lit("met"))
              .when(pl.col("hscore_max") >= cutoff).then(pl.lit("possible")))
    summary = [evidence_item("hscore.cutoff", name, pl.col(name), pl.lit("points"),
                             pl.col("status_at"), pl.lit("derived.hscore_daily"))
               for name in ("hscore_min", "hscore_max")]
    return (out.with_columns(status=status)
            .with_columns(status_at=pl.when(pl.col("status") == "met").then(pl.col("met_at"))
                          .when(pl.col("status") == "possible").then(pl.col("day_start_at")))
            .pipe(concat_items, "_evidence", pl.col("evidence").cast(EVIDENCE), *summary)
            .with_columns(pl.col("_evidence").alias("evidence")).drop("_evidence")
            .drop("met_at")
            .with_columns(rules_version=pl.lit(rules.version))
            .sort(KEYS))
