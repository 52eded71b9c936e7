"""Patient partitions (the backfill on Dask, without Dask): the partitions' nights put together equal
the whole cohort's night; a worker with other code refuses; a partition's written nights are reused."""

from __future__ import annotations

import json
from datetime import date

import pytest

from cartwatch import backfill as bf
from flows.cli import main
from cartwatch.settings import load_settings
from cartwatch.store import open_store
from sample_paths import SAMPLE

NIGHT = date(2026, 9, 30)      # the sample's October IEC-HS cases have open windows then


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory):
    folder = tmp_path_factory.mktemp("partitions")
    db = folder / "db.duckdb"
    feeds = [str(SAMPLE / f"{feed}.csv") for feed in ("labs", "vitals", "infusions", "events")]
    assert main(["ingest", "--db", str(db), *feeds]) == 0
    return db


def _rows(table):
    return sorted(table.to_pylist(), key=repr)


def test_partitions_together_equal_the_whole_cohort(sample_db, tmp_path, rules):
    settings = load_settings(db_path=sample_db)
    con = open_store(sample_db)
    try:
        plan = bf.make_plan(con, rules, settings, start=NIGHT, end=NIGHT)
        (night, as_of), = plan.nights
        sources = bf.read_sources(con, plan.patients, rules, settings, as_loaded=False)
        whole = bf.evaluate_night(sources, night, as_of)
        sources.close()
        parts = bf.write_partitions(con, plan, rules, settings, tmp_path / "parts", size=10)
    finally:
        con.close()
    assert [p.patients for p in parts] == [10, 10, len(plan.patients) - 20]
    for part in parts:
        assert bf.evaluate_partition(part.folder, plan.nights)["nights"] == 1
    joined = bf.read_partitioned_night(parts, night, as_of)
    assert whole.windows.num_rows > 0 and whole.snapshot["windows"]
    assert _rows(joined.windows) == _rows(whole.windows)
    assert _rows(joined.daily) == _rows(whole.daily)
    assert json.dumps(joined.snapshot, sort_keys=True) == json.dumps(whole.snapshot, sort_keys=True)
    # a second attempt at a partition (a resumed backfill) reuses the nights it wrote
    assert bf.evaluate_partition(parts[0].folder, plan.nights)["nights"] == 0


def test_a_worker_with_other_code_refuses(sample_db, tmp_path, rules):
    settings = load_settings(db_path=sample_db)
    con = open_store(sample_db)
    try:
        plan = bf.make_plan(con, rules, settings, start=NIGHT, end=NIGHT)
        part = bf.write_partitions(con, plan, rules, settings, tmp_path / "parts", size=100)[0]
    finally:
        con.close()
    manifest = tmp_path / "parts" / "part-00000" / bf.MANIFEST
    manifest.write_text(json.dumps(json.loads(manifest.read_text()) | {"fingerprint": "another build"}))
    with pytest.raises(bf.PartitionError, match="differs from the flow's"):
        bf.evaluate_partition(part.folder, plan.nights)
    with pytest.raises(bf.PartitionError, match="workers need access"):
        bf.evaluate_partition(str(tmp_path / "elsewhere"), plan.nights)


def test_snapshots_merge_lists_and_counts_and_refuse_disagreement():
    a = {"as_of": "t", "monitored_episodes": 2, "windows": [1], "patients": ["p1"]}
    b = {"as_of": "t", "monitored_episodes": 3, "windows": [2, 3], "patients": ["p2"]}
    assert bf.merge_snapshots([a, b]) == {"as_of": "t", "monitored_episodes": 5, "windows": [1, 2, 3],
                                          "patients": ["p1", "p2"]}
    with pytest.raises(bf.PartitionError):
        bf.merge_snapshots([a, b | {"as_of": "u"}])
