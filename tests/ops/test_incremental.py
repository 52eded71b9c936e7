"""Incremental evaluation gives exactly what a full rebuild gives, night after night."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cartwatch.build import build
from cartwatch.incremental import evaluate, horizon, read_state
from cartwatch.store import open_store
from opsdata import at, dump

NY = "America/New_York"


def nights(first: date, count: int, step: int) -> list:
    return [at(first + timedelta(days=k * step), 2) for k in range(count)]


def compare_all(inc, full) -> None:
    tables = read_state(full)["tables"]
    assert read_state(inc)["tables"] == tables
    for table in tables:
        assert dump(inc, table) == dump(full, table), table


def late_correction(con, patient: str, when) -> None:
    """A cancellation of an old ferritin result, loaded now: exercises 'rows loaded since'."""
    row = con.execute("SELECT accession, observed_at FROM stg.lab_results WHERE patient_id = ? AND analyte = 'ferritin' "
                      "ORDER BY observed_at LIMIT 1 OFFSET 12", [patient]).fetchone()
    con.execute("INSERT INTO stg.lab_results (row_key, patient_id, analyte, loinc, value, unit, result_status, accession, "
                "observed_at, resulted_at, loaded_at, source_file, source_line, source_format, file_sha256, load_seq) "
                "VALUES ('late-x', ?, 'ferritin', '2276-4', NULL, 'ng/mL', 'X', ?, ?, ?, ?, 'late.csv', 2, 'csv', 'late', "
                "(SELECT max(load_seq) + 1 FROM stg.lab_results))", [patient, row[0], row[1], when, when])


def run_sequence(cohort_db, tmp_path, rules, as_loaded: bool, count: int, step: int):
    inc = open_store(cohort_db)
    full_path = tmp_path / "full.duckdb"
    full_path.write_bytes(cohort_db.read_bytes())
    full = open_store(full_path)
    modes = []
    for k, as_of in enumerate(nights(date(2026, 3, 4), count, step)):
        if k == count // 2:
            for con in (inc, full):
                late_correction(con, "P001", as_of - timedelta(hours=3))
        modes.append(evaluate(inc, rules, as_of=as_of, as_loaded=as_loaded, site_tz=NY))
        evaluate(full, rules, as_of=as_of, as_loaded=as_loaded, site_tz=NY, full=True)
        compare_all(inc, full)
    return inc, modes


@pytest.mark.parametrize("as_loaded", [False, True])
def test_incremental_equals_full_rebuild_every_night(cohort_db, tmp_path, rules, engine, as_loaded):
    inc, reports = run_sequence(cohort_db, tmp_path, rules, as_loaded, count=10, step=4)
    modes = [r.mode for r in reports]
    assert modes[0] == "full" and "incremental" in modes
    # patients long past their last data are carried over, not re-evaluated
    assert min(r.patients for r in reports[1:] if r.patients is not None) < 8
    assert inc.execute("SELECT count(*) FROM flags.windows").fetchone()[0] > 0


def test_incremental_equals_full_with_the_real_engine(cohort_db, tmp_path, rules):
    run_sequence(cohort_db, tmp_path, rules, False, count=2, step=18)


def test_a_build_by_another_command_forces_a_full_build(cohort_db, rules, engine):
    con = open_store(cohort_db)
    assert evaluate(con, rules, as_of=at(date(2026, 3, 20), 2), as_loaded=False, site_tz=NY).mode == "full"
    assert evaluate(con, rules, as_of=at(date(2026, 3, 21), 2), as_loaded=False, site_tz=NY).mode == "incremental"
    build(con, rules, as_of=at(date(2026, 3, 10), 2), as_loaded=False, site_tz=NY)     # e.g. export --as-of
    report = evaluate(con, rules, as_of=at(date(2026, 3, 22), 2), as_loaded=False, site_tz=NY)
    assert (report.mode, report.reason) == ("full", "the tables were rebuilt by another command since")
    assert evaluate(con, rules, as_of=at(date(2026, 3, 22), 2), as_loaded=False, site_tz=NY).mode == "unchanged"
    assert evaluate(con, rules, as_of=at(date(2026, 3, 12), 2), as_loaded=False, site_tz=NY).mode == "full"
    assert con.execute("SELECT count(*) FROM ref.scope").fetchone()[0] == 0


def test_horizon_covers_the_longest_rule_window(rules):
    longest_h = max([v for k, v in rules.values.items() if rules.raw["rules"][k]["unit"] == "h"]
                    + [v * 24 for k, v in rules.values.items() if rules.raw["rules"][k]["unit"] == "d"])
    assert horizon(rules) > timedelta(hours=longest_h)


def test_a_change_in_logic_a_step_imports_forces_a_full_build(cohort_db, rules, engine, tmp_path, monkeypatch):
    """transforms/crs_grading.py is imported by a step, not a step itself: changing it must still
    invalidate the last build (the fingerprint hashes every module under transforms/)."""
    import shutil

    import cartwatch.incremental as incremental

    con = open_store(cohort_db)
    assert evaluate(con, rules, as_of=at(date(2026, 3, 20), 2), as_loaded=False, site_tz=NY).mode == "full"
    assert evaluate(con, rules, as_of=at(date(2026, 3, 20), 2), as_loaded=False, site_tz=NY).mode == "unchanged"
    copy = tmp_path / "transforms"
    shutil.copytree(incremental.TRANSFORMS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(incremental, "CODE_HASHED", tuple(
        (copy if root == incremental.TRANSFORMS_DIR else root, suffixes) for root, suffixes in incremental.CODE_HASHED))
    assert evaluate(con, rules, as_of=at(date(2026, 3, 20), 2), as_loaded=False, site_tz=NY).mode == "unchanged"
    logic = copy / "crs_grading.py"
    logic.write_text(logic.read_text() + "\n# a change in imported logic\n")
    report = evaluate(con, rules, as_of=at(date(2026, 3, 20), 2), as_loaded=False, site_tz=NY)
    assert (report.mode, report.reason) == ("full", "rules, code (sql/, transforms/) or site zone changed")


@pytest.mark.parametrize("scope_type", ["INTEGER", "VARCHAR"])
def test_the_merge_replaces_the_scope_rows_and_keeps_the_others(scope_type):
    """The scope's rows replace theirs in the last build's table; when the scope typed a column
    differently (an all-NULL column, say), the others' rows are copied into the new table instead."""
    from cartwatch.incremental import _column_types, _merge

    con = open_store(":memory:")
    con.execute("CREATE TABLE derived.t__previous AS "
                "SELECT * FROM (VALUES ('A', 1), ('B', 2), ('B', 3)) v(patient_id, x)")
    con.execute(f"CREATE TABLE derived.t AS SELECT 'B' AS patient_id, CAST(NULL AS {scope_type}) AS x")
    con.execute("INSERT INTO ref.scope VALUES ('B')")
    types = _column_types(con)
    _merge(con, "derived.t", same_columns=types["derived.t"] == types["derived.t__previous"])
    assert sorted(con.execute("SELECT patient_id, CAST(x AS VARCHAR) FROM derived.t").fetchall(),
                  key=repr) == [("A", "1"), ("B", None)]
    assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 't__previous'").fetchone()[0]
