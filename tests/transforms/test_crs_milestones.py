"""transforms.crs_milestones: a probe sees the course's days before its own day and itself, and
nothing sees a probe (the course as known at a ferritin result, without a copy per result)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from transforms.crs_milestones import MILESTONES, crs_milestones, milestones_known_at

T0 = datetime(2026, 5, 1, 4, 0, tzinfo=timezone.utc)
GRADES = [0, 1, 2, 3, 2, 1, 0, 0, 0, 2, 1, 0, 0, 0]    # onset, peak, improvement, resolution, re-escalation


def course(grades: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"patient_id": "P", "infusion_id": "I", "day": list(range(len(grades))),
                         "grade": grades, "febrile": [g > 0 for g in grades],
                         "day_start_at": [T0 + timedelta(days=d) for d in range(len(grades))],
                         "day_end_at": [T0 + timedelta(days=d + 1) for d in range(len(grades))]},
                        schema_overrides={"day": pl.Int32, "grade": pl.Int32})


@pytest.mark.parametrize("resolution_days", [1, 2])
def test_each_probe_gets_the_milestones_of_the_course_cut_at_its_moment(resolution_days):
    whole = course(GRADES)
    probes = pl.DataFrame({"point_id": range(len(GRADES)), "patient_id": "P", "infusion_id": "I",
                           "day": range(len(GRADES)), "grade": [min(g + 1, 4) for g in GRADES],
                           "febrile": [True] * len(GRADES)}, schema_overrides={"day": pl.Int32, "grade": pl.Int32})
    probes = probes.join(whole.select("day", "day_start_at", "day_end_at"), on="day").with_columns(
        (pl.col("day_start_at") + timedelta(hours=9)).alias("at"))
    known = milestones_known_at(whole, probes, resolution_days).sort("point_id")
    for probe in probes.iter_rows(named=True):
        cut = pl.concat([whole.filter(pl.col("day") < probe["day"]).with_columns(pl.col("day_end_at").alias("cutoff")),
                         pl.DataFrame([probe]).select(*whole.columns, pl.col("at").alias("cutoff"))
                         .cast(whole.schema | {"cutoff": whole.schema["day_end_at"]})])
        alone = crs_milestones(cut, ["patient_id", "infusion_id"], resolution_days).select(MILESTONES)
        assert known.filter(pl.col("point_id") == probe["point_id"]).select(MILESTONES).to_dicts() == alone.to_dicts()
