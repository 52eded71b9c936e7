"""HLH-94 and HLH-2004 evaluated per day post-infusion, from the day's worst values.

Pure polars: frames in, frames out (STYLE 4). The step that reads and writes the store is
`transforms/derived/hlh_criteria_daily.py`. The building blocks (one criterion item per day,
"at least k of n") are shared with `transforms.hscore`.

Inputs (contract.md §5: the day's worst values and the events known by the end of that day):
- grid: `patient_id, infusion_id, day, day_start_at, day_end_at` (days post-infusion with data)
- obs: `patient_id, infusion_id, day, analyte, value, comparator, unit, observed_at, source` (labs
  in canonical units, plus body temperature as analyte `temperature`), days >= 0
- events: `patient_id, infusion_id, day, event_type, value_num, observed_at, source` (booleans as
  1/0), every day of the episode (an event known before the day counts on the day)

Each item of a day is True (met), False (known not met) or None (unknown: nothing documented that
day, or only censored results that neither prove nor refute it: `<200` against fibrinogen <= 150).
Lab values are judged by what they prove (transforms.censored, clinical-rules.md §1; obs carries their
`comparator`): a day's item is True when one of its results proves it, False when all refute it. "At least k of n" is True when k items are met, False when even every unknown item could not
make k, else None (undecided). The moment a day's criteria first held is the k-th earliest moment
an item began to hold that day (an item from an earlier day holds from the day's start).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from transforms.censored import judged
from transforms.rules import Rules

KEYS = ["patient_id", "infusion_id", "day"]
# Values are rounded before any comparison so that unit-conversion float noise (4 mmol/L stored as
# 354.28000000000003 mg/dL) cannot move a value that sits on a bound; not a clinical number.
DECIMALS = 9
UTC_US = pl.Datetime("us", "UTC")
# contract.md §5 evidence object; `at` is ISO 8601 text in UTC, as the windows export writes it.
# `comparator` is the censored result's ('>' of `>100000`), null for an exact value.
EVIDENCE_ITEM = pl.Struct({"rule": pl.String, "analyte": pl.String, "value": pl.Float64,
                           "comparator": pl.String, "unit": pl.String, "at": pl.String,
                           "source": pl.String})
ISO_UTC = "%Y-%m-%dT%H:%M:%S+00:00"
EVIDENCE = pl.List(EVIDENCE_ITEM)
MEMBER_COLUMNS = [*KEYS, "state", "at", "evidence"]


@dataclass(frozen=True)
class LabTest:
    """One item read from the day's worst value of an analyte: `value op threshold` (canonical unit)."""

    rule: str
    analyte: str
    op: str
    threshold: float

    @property
    def worst_is_highest(self) -> bool:
        return self.op in (">", ">=")


def passes(value: pl.Expr, comparator: pl.Expr, op: str, threshold: float) -> pl.Expr:
    """`value op threshold` on the value rounded to DECIMALS (see above), judged by what a
    censored value proves: True, False or null (unknown)."""
    return judged(value.round(DECIMALS), comparator, op, threshold)


def evidence_item(rule: str, analyte: str | pl.Expr, value: pl.Expr, unit: pl.Expr, at: pl.Expr,
                  source: pl.Expr, comparator: pl.Expr | None = None) -> pl.Expr:
    """One contract.md §5 evidence object (`rule, analyte, value, comparator, unit, at, source`) as a
    struct; `comparator` null for an exact value and for counts."""
    analyte = pl.lit(analyte) if isinstance(analyte, str) else analyte
    comparator = pl.lit(None) if comparator is None else comparator
    return pl.struct(rule=pl.lit(rule), analyte=analyte.cast(pl.String),
                     value=value.cast(pl.Float64), comparator=comparator.cast(pl.String),
                     unit=unit.cast(pl.String),
                     at=at.cast(UTC_US).dt.convert_time_zone("UTC").dt.strftime(ISO_UTC),
                     source=source.cast(pl.String))


def concat_items(df: pl.DataFrame, name: str, *parts: pl.Expr) -> pl.DataFrame:
    """df + `name`: per row, the items of `parts` (list columns or single structs), in order.

    What pl.concat_list(*parts) gives; but polars 2.1 concatenates lists of structs row by row
    (about 20 us a row, once the largest cost of the HLH and HScore steps), and exploding the parts
    and regrouping them by row is some fifty times faster. No part is ever null here.
    """
    rows = df.with_row_index("_row")
    pieces = [rows.select("_row", part.alias("_item")) for part in parts]
    long = pl.concat([p.explode("_item") if isinstance(p.schema["_item"], pl.List) else p for p in pieces])
    lists = long.filter(pl.col("_item").is_not_null()).group_by("_row", maintain_order=True).agg("_item")
    return (rows.join(lists, on="_row", how="left")
            .with_columns(pl.col("_item").fill_null(pl.lit([], dtype=lists.schema["_item"])).alias(name))
            .drop("_row", "_item" if name != "_item" else []))


def unknown_evidence(rule: str, analyte: str) -> pl.Expr:
    """An item the data cannot show (nothing documented): listed, never a silent zero."""
    return evidence_item(rule, analyte, pl.lit(None), pl.lit(None), pl.lit(None), pl.lit("unknown"))


def worst_first(highest: bool) -> dict:
    """sort_by arguments putting the day's worst result first: highest (or lowest) value, and on a
    tie the earliest reading, then the source, so the evidence is the same every run."""
    return {"by": ["value", "observed_at", "source"], "descending": [highest, False, False]}


def worst_of_day(obs: pl.DataFrame, analyte: str, highest: bool) -> pl.DataFrame:
    """The day's worst result of one analyte: `KEYS, value, unit, observed_at, source` (a censored
    result ranks at its bound)."""
    return (obs.filter(pl.col("analyte") == analyte)
            .sort("observed_at")
            .group_by(KEYS)
            .agg(pl.all().exclude(KEYS).sort_by(**worst_first(highest)).first())
            .select(*KEYS, "value", "unit", "observed_at", "source"))


def lab_member(obs: pl.DataFrame, test: LabTest) -> pl.DataFrame:
    """Per day with a result of the test's analyte: does the worst pass, since when, with what.

    Output: MEMBER_COLUMNS; `at` is the first result of the day that passes (the item holds
    from then on; the day's worst can only get worse), the evidence is the day's worst result.
    State: True when a result proves the test, False when every result refutes it, else null
    (censored results that prove neither: the item is not evaluable that day).
    """
    ok = passes(pl.col("value"), pl.col("comparator"), test.op, test.threshold)
    worst = (pl.struct("value", "comparator", "unit", "observed_at", "source")
             .sort_by(**worst_first(test.worst_is_highest)).first())
    w = pl.col("worst").struct
    return (obs.filter(pl.col("analyte") == test.analyte)
            .group_by(KEYS)
            .agg(state=ok.any(ignore_nulls=False), at=pl.col("observed_at").filter(ok).min(), worst=worst)
            .with_columns(evidence=pl.concat_list(evidence_item(
                test.rule, test.analyte, w.field("value"), w.field("unit"), w.field("observed_at"),
                w.field("source"), w.field("comparator"))))
            .select(MEMBER_COLUMNS))


def event_member(grid: pl.DataFrame, events: pl.DataFrame, rule: str, event_type: str) -> pl.DataFrame:
    """Per grid day: a documented yes/no finding known by the end of the day.

    True once any documentation of the episode up to that day says yes (a finding seen stays
    seen), False when all of it says no, absent (unknown) when there is none. `at` is when the
    first yes was recorded, or the day's start when that was an earlier day.
    """
    positive = pl.col("value_num").cast(pl.Boolean)
    # rows are sorted by time before grouping, and groups keep that order
    first_yes = pl.struct("value_num", "observed_at", "source").filter(positive).first()
    last_doc = pl.struct("value_num", "observed_at", "source").last()
    shown = pl.coalesce(pl.col("first_yes"), pl.col("last_doc"))
    return (grid.select(*KEYS, "day_start_at")
            .join(events.filter(pl.col("event_type") == event_type)
                  .select("patient_id", "infusion_id", pl.col("day").alias("event_day"),
                          "value_num", "observed_at", "source"),
                  on=["patient_id", "infusion_id"])
            .filter(pl.col("event_day") <= pl.col("day"))
            .sort("observed_at")
            .group_by(KEYS)
            .agg(pl.col("day_start_at").first(), state=positive.any(), first_yes=first_yes,
                 last_doc=last_doc)
            .with_columns(
                at=pl.when(pl.col("state")).then(pl.max_horizontal(
                    pl.col("first_yes").struct.field("observed_at"), pl.col("day_start_at"))),
                evidence=pl.concat_list(evidence_item(
                    rule, event_type, shown.struct.field("value_num"), pl.lit(None),
                    shown.struct.field("observed_at"), shown.struct.field("source"))))
            .select(MEMBER_COLUMNS))


def at_least(grid: pl.DataFrame, members: list[pl.DataFrame], k: int, n: int) -> pl.DataFrame:
    """Per grid day: are at least `k` of `n` items met (members absent on a day are unknown)?

    Output: `KEYS, met_count, known_count, state, at, evidence` where `at` is the k-th earliest
    moment an item began to hold (None unless met) and the evidence lists the met items.
    """
    met = pl.col("state").fill_null(False)
    counted = (pl.concat([m.select(MEMBER_COLUMNS) for m in members]) if members
               else pl.DataFrame(schema={**grid.select(KEYS).schema, "state": pl.Boolean,
                                         "at": UTC_US, "evidence": EVIDENCE}))
    counts = counted.group_by(KEYS).agg(
        met_count=met.sum().cast(pl.Int32), known_count=pl.col("state").is_not_null().sum()
        .cast(pl.Int32), ats=pl.col("at").filter(met).sort(),
        evidence=pl.col("evidence").filter(met).list.explode(keep_nulls=False, empty_as_null=False))
    out = grid.select(KEYS).join(counts, on=KEYS, how="left").with_columns(
        pl.col("met_count", "known_count").fill_null(0),
        pl.col("evidence").fill_null(pl.lit([], dtype=EVIDENCE)))
    unknown = n - pl.col("known_count")
    return out.with_columns(
        state=pl.when(pl.col("met_count") >= k).then(True)
        .when(pl.col("met_count") + unknown < k).then(False),
        at=pl.col("ats").list.get(k - 1, null_on_oob=True),
    ).select(*KEYS, "met_count", "known_count", "state", "at", "evidence")


def as_member(combined: pl.DataFrame) -> pl.DataFrame:
    """A combined item ("cytopenias in >= 2 lineages") used as one item of a larger set."""
    return combined.select(MEMBER_COLUMNS)


def cytopenia_tests(rules: Rules, prefix: str = "hlh_2004") -> list[LabTest]:
    """HLH-2004 lineages (HLH-94 uses the same thresholds): Hb, platelets and ANC below cut-off."""
    return [LabTest(f"{prefix}.hemoglobin_lt_g_dl", "hemoglobin", "<",
                    rules.value("hlh_2004.hemoglobin_lt_g_dl")),
            LabTest(f"{prefix}.platelets_lt", "platelets", "<", rules.value("hlh_2004.platelets_lt")),
            LabTest(f"{prefix}.anc_lt", "anc", "<", rules.value("hlh_2004.anc_lt"))]


def lipid_fibrinogen_tests(rules: Rules, prefix: str = "hlh_2004") -> list[LabTest]:
    """Hypertriglyceridemia and/or hypofibrinogenemia (HLH-2004 thresholds, also for HLH-94)."""
    return [LabTest(f"{prefix}.triglycerides_ge_mg_dl", "triglycerides", ">=",
                    rules.value("hlh_2004.triglycerides_ge_mg_dl")),
            LabTest(f"{prefix}.fibrinogen_le_mg_dl", "fibrinogen", "<=",
                    rules.value("hlh_2004.fibrinogen_le_mg_dl"))]


def any_of(grid, obs, tests: list[LabTest], k: int) -> pl.DataFrame:
    return as_member(at_least(grid, [lab_member(obs, t) for t in tests], k, len(tests)))


# Item names, in the order of hlh_2004_items / hlh_94_items: the per-day item states are stored
# under them (`<set>_items`), so `cartwatch explain` can say which item was met, not met or unknown.
HLH_2004_ITEMS = ("fever", "splenomegaly", "cytopenias", "triglycerides_or_fibrinogen", "hemophagocytosis",
                  "nk_activity", "ferritin", "scd25")
HLH_94_ITEMS = ("fever", "splenomegaly", "cytopenias", "triglycerides_or_fibrinogen", "hemophagocytosis")
ITEM_STATE = {True: "met", False: "not_met"}     # absent (no data that day): "unknown"


def hlh_2004_items(grid, obs, events, rules: Rules) -> list[pl.DataFrame | None]:
    """The 8 HLH-2004 criteria as day items; NK activity has no feed, so it is always unknown."""
    return [
        lab_member(obs, LabTest("hlh_2004.fever_c", "temperature", ">=", rules.value("hlh_2004.fever_c"))),
        event_member(grid, events, "hlh_2004.splenomegaly", "splenomegaly"),
        any_of(grid, obs, cytopenia_tests(rules), int(rules.value("hlh_2004.cytopenia_lineages_required"))),
        any_of(grid, obs, lipid_fibrinogen_tests(rules), 1),  # "and/or": one of the two
        event_member(grid, events, "hlh_2004.hemophagocytosis", "hemophagocytosis"),
        None,  # low/absent NK-cell activity: not in any feed (contract.md §1), never known
        lab_member(obs, LabTest("hlh_2004.ferritin_ge", "ferritin", ">=", rules.value("hlh_2004.ferritin_ge"))),
        lab_member(obs, LabTest("hlh_2004.scd25_ge_u_ml", "scd25", ">=", rules.value("hlh_2004.scd25_ge_u_ml"))),
    ]


def hlh_94_items(grid, obs, events, rules: Rules) -> list[pl.DataFrame]:
    """The 5 HLH-94 criteria as day items (cytopenia, lipid and fibrinogen cut-offs as HLH-2004)."""
    return [
        lab_member(obs, LabTest("hlh_94.fever_c", "temperature", ">=", rules.value("hlh_94.fever_c"))),
        event_member(grid, events, "hlh_94.splenomegaly", "splenomegaly"),
        any_of(grid, obs, cytopenia_tests(rules, "hlh_94"),
               int(rules.value("hlh_94.cytopenia_lineages_required"))),
        any_of(grid, obs, lipid_fibrinogen_tests(rules, "hlh_94"), 1),
        event_member(grid, events, "hlh_94.hemophagocytosis", "hemophagocytosis"),
    ]


def item_states(grid: pl.DataFrame, items: list[pl.DataFrame | None], names: tuple[str, ...]) -> pl.Expr:
    """Per grid day, a struct of each item's state (`met`, `not_met`, `unknown`), by item name."""
    out = grid.select(KEYS)
    for name, member in zip(names, items, strict=True):
        if member is None:
            out = out.with_columns(pl.lit(None, pl.Boolean).alias(name))
        else:
            out = out.join(member.select(*KEYS, pl.col("state").alias(name)), on=KEYS, how="left")
    states = [pl.col(n).replace_strict(ITEM_STATE, default="unknown", return_dtype=pl.String).alias(n)
              for n in names]
    return out.select(*KEYS, pl.struct(states).alias("_items"))


def evaluate_set(grid, items: list[pl.DataFrame | None], k: int, name: str,
                 summary_rule: str, names: tuple[str, ...]) -> pl.DataFrame:
    """`KEYS` + `<name>_met_count, _evaluable_count, _met, _evaluable, _met_at, _evidence, _items`.

    `_met` is False on an undecided day; `_evaluable` says whether the day could be decided.
    The evidence lists the met items, then the met and evaluable counts (unit `count`).
    """
    present = [m for m in items if m is not None]
    summary = [evidence_item(summary_rule, label, pl.col(column), pl.lit("count"), pl.col("at"),
                             pl.lit("derived.hlh_criteria_daily"))
               for label, column in (("criteria_met", "met_count"), ("criteria_evaluable", "known_count"))]
    result = concat_items(at_least(grid, present, k, len(items)), "_evidence", pl.col("evidence"), *summary)
    return result.select(
        *KEYS,
        pl.col("met_count").alias(f"{name}_met_count"),
        pl.col("known_count").alias(f"{name}_evaluable_count"),
        pl.col("state").fill_null(False).alias(f"{name}_met"),
        pl.col("state").is_not_null().alias(f"{name}_evaluable"),
        pl.col("at").alias(f"{name}_met_at"),
        pl.col("_evidence").alias(f"{name}_evidence"),
    ).join(item_states(grid, items, names).rename({"_items": f"{name}_items"}), on=KEYS, how="left")


DAY_WORST = {"temperature": True, "ferritin": True, "triglycerides": True, "ast": True,
             "scd25": True, "hemoglobin": False, "wbc": False, "platelets": False, "anc": False,
             "fibrinogen": False}


def day_worst_values(grid: pl.DataFrame, obs: pl.DataFrame) -> pl.DataFrame:
    """contract.md §5: the day's highest temperature, ferritin, triglycerides, AST (and sCD25) and
    lowest Hb, WBC, platelets, ANC and fibrinogen, as `<analyte>_max` / `<analyte>_min`."""
    out = grid.select(KEYS)
    for analyte, highest in DAY_WORST.items():
        worst = worst_of_day(obs, analyte, highest).select(
            *KEYS, pl.col("value").alias(f"{analyte}_{'max' if highest else 'min'}"))
        out = out.join(worst, on=KEYS, how="left")
    return out


def hlh_criteria_daily(grid: pl.DataFrame, obs: pl.DataFrame, events: pl.DataFrame,
                       rules: Rules) -> pl.DataFrame:
    """One row per grid day: the day's worst values, HLH-2004 (5 of 8) and HLH-94 (all five).

    Rules: hlh_2004.* (every threshold, criteria_required), hlh_94.fever_c,
    hlh_94.cytopenia_lineages_required.
    """
    hlh_2004 = evaluate_set(grid, hlh_2004_items(grid, obs, events, rules),
                            int(rules.value("hlh_2004.criteria_required")), "hlh_2004",
                            "hlh_2004.criteria_required", HLH_2004_ITEMS)
    items_94 = hlh_94_items(grid, obs, events, rules)
    hlh_94 = evaluate_set(grid, items_94, len(items_94), "hlh_94", "hlh_94.all_required", HLH_94_ITEMS)
    findings = [event_member(grid, events, f"events.{e}", e).select(*KEYS, pl.col("state").alias(e))
                for e in ("splenomegaly", "hemophagocytosis")]
    out = grid.join(day_worst_values(grid, obs), on=KEYS, how="left")
    for frame in (*findings, hlh_2004, hlh_94):
        out = out.join(frame, on=KEYS, how="left")
    return out.with_columns(rules_version=pl.lit(rules.version)).sort(KEYS)
