"""derived.lab_results (corrections as of) and derived.timeline (day, baseline, ULN multiples)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from cartwatch.build import build
from cartwatch.loader import load_file

UTC = timezone.utc
NY = "America/New_York"
LAB_HEADER = "patient_id,collected_at,loinc,value,unit,ref_low,ref_high,resulted_at,result_status,accession"
INF_HEADER = "patient_id,infused_at,product,infusion_id,site_timezone"


def load(store, ctx, tmp_path: Path, name: str, header: str, *rows: str) -> None:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    report = load_file(store, path, ctx)
    assert report.quarantined == 0, store.execute("SELECT reason FROM quarantine.rows").fetchall()


def rebuild(store, rules, as_of=datetime(2026, 11, 1, tzinfo=UTC)):
    build(store, rules, as_of=as_of, as_loaded=False, site_tz=NY)


def ferritin_values(store):
    return store.execute("SELECT value FROM derived.lab_results WHERE analyte = 'ferritin' "
                         "ORDER BY observed_at").fetchall()


def test_correction_replaces_from_its_resulted_time(store, ctx, rules, tmp_path):
    load(store, ctx, tmp_path, "labs.csv", LAB_HEADER,
         "P1,2026-06-03T08:00:00Z,2276-4,900,ng/mL,,,2026-06-03T10:00:00Z,F,A1",
         "P1,2026-06-03T08:00:00Z,2276-4,9000,ng/mL,,,2026-06-04T09:00:00Z,C,A1")
    rebuild(store, rules, as_of=datetime(2026, 6, 4, 8, 59, tzinfo=UTC))
    assert ferritin_values(store) == [(900.0,)]
    rebuild(store, rules, as_of=datetime(2026, 6, 4, 9, 0, tzinfo=UTC))   # exactly at resulted_at
    assert ferritin_values(store) == [(9000.0,)]


def test_cancellation_withdraws_and_preliminary_gives_way_to_final(store, ctx, rules, tmp_path):
    load(store, ctx, tmp_path, "labs.csv", LAB_HEADER,
         "P1,2026-06-03T08:00:00Z,2276-4,900,ng/mL,,,2026-06-03T10:00:00Z,F,A1",
         "P1,2026-06-03T08:00:00Z,2276-4,,ng/mL,,,2026-06-05T10:00:00Z,X,A1",
         "P1,2026-06-04T08:00:00Z,2276-4,700,ng/mL,,,2026-06-04T09:00:00Z,P,A2",
         "P1,2026-06-04T08:00:00Z,2276-4,750,ng/mL,,,2026-06-04T11:00:00Z,F,A2")
    rebuild(store, rules, as_of=datetime(2026, 6, 4, 10, tzinfo=UTC))
    assert ferritin_values(store) == [(900.0,), (700.0,)]
    rebuild(store, rules)
    assert ferritin_values(store) == [(750.0,)]


def test_tie_on_resulted_time_applies_f_then_c_then_x(store, ctx, rules, tmp_path):
    same = "2026-06-03T10:00:00Z"
    load(store, ctx, tmp_path, "labs.csv", LAB_HEADER,
         f"P1,2026-06-03T08:00:00Z,2276-4,950,ng/mL,,,{same},C,A1",
         f"P1,2026-06-03T08:00:00Z,2276-4,900,ng/mL,,,{same},F,A1")
    rebuild(store, rules)
    assert ferritin_values(store) == [(950.0,)]   # C wins over F even though F came later in the file


def test_day_post_infusion_across_a_dst_change(store, ctx, rules, tmp_path):
    # Infused 23:30 EST on Saturday 2026-03-07; clocks go forward at 02:00 on Sunday 03-08.
    load(store, ctx, tmp_path, "inf.csv", INF_HEADER, f"P1,2026-03-07T23:30:00-05:00,axi-cel,I1,{NY}")
    load(store, ctx, tmp_path, "labs.csv", LAB_HEADER,
         "P1,2026-03-07T23:59:00-05:00,2276-4,100,ng/mL,,,,F,A1",   # same evening: day 0
         "P1,2026-03-08T00:00:00-05:00,2276-4,110,ng/mL,,,,F,A2",   # midnight: day 1
         "P1,2026-03-08T23:59:00-04:00,2276-4,120,ng/mL,,,,F,A3",   # a 23-hour day: still day 1
         "P1,2026-03-09T00:00:00-04:00,2276-4,130,ng/mL,,,,F,A4",   # day 2
         "P1,2026-03-07T22:00:00-05:00,2276-4,90,ng/mL,,,,F,A5")    # before the infusion: day 0
    rebuild(store, rules)
    days = store.execute("SELECT value, day FROM derived.timeline ORDER BY observed_at").fetchall()
    assert days == [(90.0, 0), (100.0, 0), (110.0, 1), (120.0, 1), (130.0, 2)]


def test_site_time_zone_of_the_infusion_sets_the_calendar(store, ctx, rules, tmp_path):
    load(store, ctx, tmp_path, "inf.csv", INF_HEADER, "P1,2026-06-01T20:00:00Z,tisa-cel,I1,Europe/Madrid")
    load(store, ctx, tmp_path, "labs.csv", LAB_HEADER, "P1,2026-06-01T22:30:00Z,2276-4,100,ng/mL,,,,F,A1")
    rebuild(store, rules)
    # 22:30 UTC is 00:30 on June 2 in Madrid: day 1 there (it would be day 0 in New York)
    assert store.execute("SELECT day FROM derived.timeline").fetchall() == [(1,)]


def test_reinfusion_starts_its_own_episode_with_its_own_baseline(store, ctx, rules, tmp_path):
    load(store, ctx, tmp_path, "inf.csv", INF_HEADER,
         f"P1,2026-06-01T12:00:00Z,axi-cel,I1,{NY}", f"P1,2026-08-01T12:00:00Z,axi-cel,I2,{NY}")
    load(store, ctx, tmp_path, "labs.csv", LAB_HEADER,
         "P1,2026-05-30T12:00:00Z,2276-4,300,ng/mL,,,,F,A0",
         "P1,2026-06-05T12:00:00Z,2276-4,5000,ng/mL,,,,F,A1",
         "P1,2026-07-31T12:00:00Z,2276-4,800,ng/mL,,,,F,A2",
         "P1,2026-08-03T12:00:00Z,2276-4,1600,ng/mL,,,,F,A3")
    rebuild(store, rules)
    rows = store.execute("SELECT infusion_id, day, value, baseline, x_baseline FROM derived.timeline "
                         "ORDER BY observed_at").fetchall()
    assert rows == [("I1", -2, 300.0, 300.0, 1.0), ("I1", 4, 5000.0, 300.0, 5000 / 300),
                    ("I1", 60, 800.0, 300.0, 800 / 300), ("I2", 2, 1600.0, 800.0, 2.0)]


@pytest.mark.parametrize("hours_before, is_baseline", [(720, True), (720.0167, False), (0.0167, True)])
def test_baseline_lookback_window_edges(store, ctx, rules, tmp_path, hours_before, is_baseline):
    infused = datetime(2026, 7, 1, 12, tzinfo=UTC)
    drawn = datetime.fromtimestamp(infused.timestamp() - round(hours_before * 3600), UTC)
    load(store, ctx, tmp_path, "inf.csv", INF_HEADER, f"P1,{infused.isoformat()},axi-cel,I1,{NY}")
    load(store, ctx, tmp_path, "labs.csv", LAB_HEADER, f"P1,{drawn.isoformat()},2276-4,250,ng/mL,,,,F,A0",
         "P1,2026-07-03T12:00:00Z,2276-4,500,ng/mL,,,,F,A1")
    rebuild(store, rules)
    baseline = store.execute("SELECT baseline FROM derived.timeline WHERE value = 500").fetchone()[0]
    assert baseline == (250.0 if is_baseline else None)


def test_draw_at_the_infusion_instant_is_not_baseline(store, ctx, rules, tmp_path):
    load(store, ctx, tmp_path, "inf.csv", INF_HEADER, f"P1,2026-07-01T12:00:00Z,axi-cel,I1,{NY}")
    load(store, ctx, tmp_path, "labs.csv", LAB_HEADER, "P1,2026-07-01T12:00:00Z,2276-4,250,ng/mL,,,,F,A0")
    rebuild(store, rules)
    assert store.execute("SELECT day, baseline FROM derived.timeline").fetchall() == [(0, None)]


def test_uln_from_the_result_else_the_rules_default(store, ctx, rules, tmp_path):
    load(store, ctx, tmp_path, "inf.csv", INF_HEADER, f"P1,2026-07-01T12:00:00Z,axi-cel,I1,{NY}")
    load(store, ctx, tmp_path, "labs.csv", LAB_HEADER,
         "P1,2026-07-02T12:00:00Z,2276-4,800,ng/mL,20,300,,F,A1",
         "P1,2026-07-03T12:00:00Z,2276-4,800,ng/mL,,,,F,A2",
         "P1,2026-07-03T12:00:00Z,3255-7,1.2,g/L,2,4,,F,A3")   # range converts with the value
    rebuild(store, rules)
    rows = store.execute("SELECT analyte, uln, lln, x_uln FROM derived.timeline ORDER BY observed_at, analyte").fetchall()
    default = rules.analyte("ferritin")
    assert rows == [("ferritin", 300.0, 20.0, 800 / 300),
                    ("ferritin", default.default_high, default.default_low, 800 / default.default_high),
                    ("fibrinogen", 400.0, 200.0, 0.3)]
    assert store.execute("SELECT DISTINCT rules_version FROM derived.timeline").fetchall() == [(rules.version,)]
