"""derived.ferritin_rises: each post-infusion ferritin result with the patient's earlier results
inside the longest rise window, paired once per build (transforms.ferritin_signal.rise_pairs) for
the two rules that read a rise rate: the IEC-HS rapid rise (derived.ferritin_trajectory) and the
UCSF MAS-L rise (flags.windows_ucsf_masl_2020)."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import polars as pl

from transforms.build_context import BuildContext
from transforms.ferritin_signal import rise_pairs
from transforms.tables import read_frame, write_table

FERRITIN_SQL = """
SELECT t.patient_id, t.infusion_id, t.observed_at, t.value, t.comparator, t.unit, t.source, t.load_seq,
    t.observed_at >= i.infused_at AS after_infusion
FROM derived.timeline AS t
JOIN derived.infusion_episodes AS i ON t.patient_id = i.patient_id AND t.infusion_id = i.infusion_id
WHERE t.analyte = 'ferritin' AND t.value IS NOT NULL
"""
EARLIER = {"observed_at": "o_at", "value": "o_value", "comparator": "o_comparator", "unit": "o_unit",
           "source": "o_source"}


def rise_window(ctx: BuildContext) -> timedelta:
    """The longest window a rise rule measures over (iec_hs.rapid_rise_window_hours, ucsf.rise_window_hours)."""
    return timedelta(hours=max(ctx.params["iec_hs__rapid_rise_window_hours"], ctx.params["ucsf__rise_window_hours"]))


def build(con: duckdb.DuckDBPyConnection, ctx: BuildContext) -> None:
    """derived.ferritin_rises: pairs (a ferritin result, an earlier one) a rise rate can be read from.

    Grain: one row per ferritin result collected at or after its infusion and per earlier ferritin
    result of the same patient (any episode, before the infusion too) with 0 < gap <= the longest
    rise window; columns patient_id, infusion_id, observed_at, value, comparator, unit, source,
    load_seq (the later result), earlier_at, earlier_value, earlier_comparator, earlier_unit,
    earlier_source, rules_version. A censored value keeps its comparator: the rules bound the rate
    with it (clinical-rules.md §1).
    Source criterion: clinical-rules.md §3 (rapid rise: against any earlier result within the window)
    and 4 (UCSF MAS-L: against any earlier ferritin of the patient within the window); each rule
    applies its own window and rate to these pairs.
    Parameters: $iec_hs__rapid_rise_window_hours, $ucsf__rise_window_hours.
    Upstream tables: derived.timeline, derived.infusion_episodes.
    """
    ferritin = read_frame(con, FERRITIN_SQL).with_row_index("point_id")
    later = ferritin.filter("after_infusion").select("point_id", "patient_id", pl.col("observed_at").alias("t"))
    earlier = ferritin.select("patient_id", *(pl.col(c).alias(o) for c, o in EARLIER.items()))
    pairs = rise_pairs(later, earlier, rise_window(ctx)).join(
        ferritin.select("point_id", "infusion_id", "observed_at", "value", "comparator", "unit", "source", "load_seq"),
        on="point_id")
    write_table(con, "derived.ferritin_rises", pairs.select(
        "patient_id", "infusion_id", "observed_at", "value", "comparator", "unit", "source", "load_seq",
        *(pl.col(o).alias(f"earlier_{c if c != 'observed_at' else 'at'}") for c, o in EARLIER.items()),
        pl.lit(ctx.rules.version).alias("rules_version")).sort("patient_id", "observed_at", "load_seq", "earlier_at"))
