"""The `make bench` harness: budgets kill a step's whole process tree and the run still reports it;
a tiny run writes every row of the results file."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil
import pytest

from benchmarks import run_all
from tests.sample_paths import REPO


def _step(tmp_path, code: str, budget: run_all.Budget) -> run_all.Step:
    step = run_all.Step("probe", None)
    return run_all.run_step(step, [sys.executable, "-c", code], budget, tmp_path / "probe.log",
                            {"PYTHONUNBUFFERED": "1"})


def test_a_step_over_its_memory_budget_is_killed_and_reported(tmp_path):
    step = _step(tmp_path, "import time; x = bytearray(600 * 2**20); x[::4096] = b'1' * len(x[::4096]); "
                           "time.sleep(30)", run_all.Budget(max_rss_gb=0.25, max_seconds=60))
    assert step.status == "killed" and step.seconds < 20
    assert step.outcome().startswith("did not finish: killed at ") and "(budget 0.25 GB)" in step.outcome()
    assert step.peak_tree_rss > 0.25 * run_all.GB


def test_a_step_over_its_time_budget_is_killed_with_what_it_started(tmp_path):
    pid_file = tmp_path / "child.pid"
    code = ("import subprocess, sys, time; "
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)")
    step = _step(tmp_path, code, run_all.Budget(max_rss_gb=4, max_seconds=2))
    assert step.status == "killed" and "budget 2 s" in step.note
    child = int(pid_file.read_text())
    deadline = time.time() + 5
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.time() < deadline, "the step's child outlived the kill"
        time.sleep(0.1)


def test_a_failing_step_keeps_its_last_line(tmp_path):
    step = _step(tmp_path, "import sys; print('first'); sys.exit('cannot read the cohort')",
                 run_all.Budget(max_rss_gb=4, max_seconds=30))
    assert step.status == "failed" and step.note == "exit 1: cannot read the cohort"


def _run_bench(tmp_path, *args: str) -> dict:
    out = tmp_path / "results"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--work", str(tmp_path / "work"),
                    "--out", str(out), *args], cwd=REPO, check=True, capture_output=True, timeout=900)
    return json.loads((out / "latest.json").read_text()), (out / "latest.md").read_text()


def _check_every_row(results: dict, markdown: str, sizes: list[int]) -> None:
    reported = [(s["name"], s["size"]) for s in results["steps"]]
    assert reported == run_all.expected_rows(sizes)
    for name, size in reported:
        assert run_all.STEP_TEXT[name] in markdown
    for key in ("cpu_model", "cores_logical", "memory_gb", "load_average_at_start", "date", "versions"):
        assert results["machine"][key]
    assert len(results["ratios"]) == len(sizes) + (len(sizes) >= 2) + len(sizes)
    for heading in ("## Machine", "## Cohorts", "## Steps", "## Ratios", "## Parsers", "## Profiles"):
        assert heading in markdown


def test_a_tiny_run_reports_every_step(tmp_path):
    """20 patients, the quick steps only (the others are reported as not selected); the slow test
    below runs them all."""
    results, markdown = _run_bench(tmp_path, "--sizes", "20", "--parser-results", "2000",
                                   "--steps", "synth,reference,ingest,evaluate,parsers")
    _check_every_row(results, markdown, [20])
    by_name = {s["name"]: s for s in results["steps"]}
    for name in ("synth", "reference", "ingest", "evaluate", "parsers"):
        assert by_name[name]["status"] == "ok", by_name[name]
        assert by_name[name]["peak_rss"] > 0 and by_name[name]["seconds"] > 0
    assert by_name["ingest"]["extra"]["quarantined"] == 0
    assert by_name["nightly_first"]["outcome"] == "skipped: not selected (--steps)"
    assert results["ratios"][0]["ratio"] > 0
    assert "results/s**" in markdown


@pytest.mark.slow
def test_a_quick_run_completes_every_step(tmp_path):
    results, markdown = _run_bench(tmp_path, "--quick", "--sizes", "20,30")
    _check_every_row(results, markdown, [20, 30])
    assert [s["outcome"] for s in results["steps"]] == ["ok"] * len(results["steps"])
    assert all("ratio" in row for row in results["ratios"])
    assert "Project functions, inclusive time" in markdown
