"""Data-quality rows sit at the lines the ground truth names, with the defect it names."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cartwatch.synth import oracle
from cartwatch.synth.cohort import judge
from cartwatch.synth.trajectories import TAG
from tests.synth.sample_files import read_rows

DEFECTS = {
    "impossible_date": lambda r: "-02-30T" in r["collected_at"],
    "non_numeric_value": lambda r: r["value"] == "pending",
    "unparseable_timestamp": lambda r: not r["collected_at"][:4].isdigit(),
    "future_timestamp": lambda r: r["collected_at"].startswith("2062-"),
    "unknown_loinc": lambda r: r["loinc"] == "33959-8",
    "unconvertible_unit": lambda r: r["loinc"] == "2276-4" and r["unit"] == "mmol/L",
    "missing_patient_id": lambda r: r["patient_id"] == "",
}


def _lines(folder, name):
    return {line: row for line, row in enumerate(read_rows(folder / name), start=2)}


def test_one_quarantined_row_per_reason_at_its_line(sample):
    truth, folder = sample
    labs = _lines(folder, "labs.csv")
    quarantined = [r for r in truth.rows if r.expect == "quarantine"]
    assert sorted(r.reason for r in quarantined) == sorted(DEFECTS)
    for r in quarantined:
        assert r.file == "labs.csv" and DEFECTS[r.reason](labs[r.line]), r
    flagged = {line for line, row in labs.items() if any(check(row) for check in DEFECTS.values())}
    assert flagged == {r.line for r in quarantined}


def test_odd_but_valid_values_are_accepted(sample):
    truth, folder = sample
    labs = _lines(folder, "labs.csv")
    accepted = {r.reason: labs[r.line] for r in truth.rows if r.expect == "accepted"}
    assert accepted["thousands_separator"]["value"] == "1,250"
    assert (accepted["ferritin_mg_per_l"]["value"], accepted["ferritin_mg_per_l"]["unit"]) == ("0.98", "mg/L")
    assert '"1,250"' in (folder / "labs.csv").read_text(encoding="utf-8")


def test_duplicates_repeat_their_original_line(sample):
    truth, folder = sample
    files = {name: _lines(folder, name) for name in ("labs.csv", "vitals.csv", "labs_resend.csv")}
    duplicates = [r for r in truth.rows if r.expect == "duplicate"]
    assert {r.file for r in duplicates} == set(files)
    for r in duplicates:
        _, file, _, line = r.note.split()
        assert files[r.file][r.line] == files[file][int(line)] and (file, int(line)) < (r.file, r.line)
    resend = files["labs_resend.csv"]
    assert all(r.expect == "duplicate" for r in truth.rows if r.file == "labs_resend.csv")
    assert len(resend) == sum(r.file == "labs_resend.csv" for r in truth.rows)


def test_versions_share_accession_and_loinc_and_come_later(sample):
    truth, folder = sample
    labs = _lines(folder, "labs.csv")
    linked = [r for r in truth.rows if r.expect in ("correction", "cancellation", "final_of_preliminary")]
    assert len(linked) == 3
    for r in linked:
        later, earlier = labs[r.line], labs[int(r.note.split()[-1])]
        assert (later["accession"], later["loinc"]) == (earlier["accession"], earlier["loinc"])
        assert later["resulted_at"] > earlier["resulted_at"]
    statuses = {r.expect: labs[r.line]["result_status"] for r in linked}
    assert statuses == {"correction": "C", "cancellation": "X", "final_of_preliminary": "F"}
    assert labs[next(r.line for r in linked if r.expect == "cancellation")]["value"] == ""


def test_file_counts_add_up(sample):
    truth, folder = sample
    for f in truth.files:
        assert f.rows_read == len(read_rows(folder / f.file)) == f.accepted + f.duplicate + f.quarantined


def test_ignoring_the_cancellation_would_change_the_verdict(cohort, rules):
    sim = next(s for s in cohort if s.patient.design.archetype == "corrections_and_cancellations")
    ignored = replace(sim, facts=[], verdicts=[], ambiguous=[],
                      labs=sim.labs | {"tag": np.where(sim.labs["tag"] == TAG["withdrawn"], 0, sim.labs["tag"])})
    judge(ignored, rules)
    order = oracle.STATUS_ORDER
    assert order.index(ignored.verdicts[0].status) >= order.index("suspected") > order.index(sim.verdicts[0].status)


def test_quarantine_counts_per_patient(sample):
    truth, _ = sample
    counted = {e.patient_id: e.quarantined_rows for e in truth.episodes if e.quarantined_rows}
    assert counted == {r.patient_id: 7 for r in truth.rows if r.expect == "quarantine"}
