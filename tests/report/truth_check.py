"""A synthetic cohort with ground truth, run through `cartwatch report`, and the report's figures
recomputed apart from it: IEC-HS from the generator's ground truth (ground_truth.json), the other
criteria sets from `export windows`, follow-up from `export flags`, with plain formulas (the
report uses statsmodels and lifelines)."""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import Counter
from datetime import datetime
from pathlib import Path

from cartwatch.cli import main
from cartwatch.synth import generate

IEC = "astct_iec_hs_2023"
ALERT = ("suspected", "criteria_met", "met")
Z95 = 1.959963984540054


def evaluate_in_store(db: Path, as_of: str) -> None:
    """What a nightly run leaves in the store: the evaluation as of then (without Prefect)."""
    from cartwatch.incremental import evaluate
    from cartwatch.settings import load_settings
    from cartwatch.store import open_store
    from transforms.rules import load_rules

    con = open_store(db, create=False)
    try:
        evaluate(con, load_rules(), as_of=datetime.fromisoformat(as_of.replace("Z", "+00:00")), as_loaded=False,
                 site_tz=load_settings().site_tz)
    finally:
        con.close()


def build_cohort(folder: Path, patients: int, seed: int) -> dict:
    """Generate, ingest, report (JSON and HTML) and export; returns what the checks read."""
    feeds, db = folder / "feeds", folder / "cohort.duckdb"
    generate(patients, seed, feeds)
    as_of = (feeds / "AS_OF").read_text().strip()
    assert main(["ingest", str(feeds), "--db", str(db), "--progress", "none"]) == 0
    evaluate_in_store(db, as_of)
    # the JSON report evaluates as of then in a scratch database; the HTML one and the exports read the store's
    assert main(["report", "--db", str(db), "--as-of", as_of, "--out", str(folder / "report.json")]) == 0
    assert main(["report", "--db", str(db), "--out", str(folder / "report.html")]) == 0
    for table in ("windows", "flags"):
        assert main(["export", table, "--db", str(db), "--out", str(folder / f"{table}.csv")]) == 0
    with open(folder / "windows.csv", newline="") as w, open(folder / "flags.csv", newline="") as f:
        windows, flags = list(csv.DictReader(w)), list(csv.DictReader(f))
    return {"doc": json.loads((folder / "report.json").read_text()), "html": (folder / "report.html").read_text(),
            "truth": json.loads((feeds / "ground_truth.json").read_text())["episodes"],
            "windows": windows, "flags": flags, "db": db, "folder": folder}


def wilson(k: int, n: int) -> tuple[float, float]:
    p, z2 = k / n, Z95 ** 2
    centre, half = (p + z2 / (2 * n)) / (1 + z2 / n), Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half


def truth_flagged(truth: list[dict]) -> dict[str, bool]:
    return {e["infusion_id"]: e["iec_hs_status"] in ALERT for e in truth}


def windows_flagged(windows: list[dict], criteria_set: str, infusions) -> dict[str, bool]:
    hit = {w["infusion_id"] for w in windows if w["criteria_set"] == criteria_set and w["status"] in ALERT}
    return {i: i in hit for i in infusions}


def kappa(x: dict[str, bool], y: dict[str, bool]) -> float | None:
    n = len(x)
    po = sum(x[i] == y[i] for i in x) / n
    px, py = sum(x.values()) / n, sum(y.values()) / n
    pe = px * py + (1 - px) * (1 - py)
    return None if pe == 1 else (po - pe) / (1 - pe)


def quartiles(values: list[float]) -> dict:
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"n": len(values), "median": median, "q1": q1, "q3": q3, "min": min(values), "max": max(values)}


def km_incidence(onsets: dict[str, int | None], follow_up: dict[str, int], days: list[int]) -> list[float]:
    """1 - the product-limit estimate, by hand: an event at the onset day, censored at follow-up."""
    times = {i: (onsets[i], True) if onsets[i] is not None else (follow_up[i], False) for i in onsets}
    out, survival = [], 1.0
    for day in days:
        at_risk = sum(1 for t, _ in times.values() if t >= day)
        events = sum(1 for t, e in times.values() if e and t == day)
        if at_risk:
            survival *= 1 - events / at_risk
        out.append(1 - survival)
    return out


def check_against_truth(built: dict) -> None:
    doc, truth, windows = built["doc"], built["truth"], built["windows"]
    flagged = truth_flagged(truth)
    infusions = sorted(flagged)
    assert doc["cohort"]["infusions"] == len(truth)
    assert doc["cohort"]["patients"] == len({e["patient_id"] for e in truth})

    # IEC-HS: flagged overall and by product, with the Wilson interval
    rows = {(r["criteria_set"], r["by"], r["group"]): r for r in doc["flagged"]}
    groups = {("overall", "all"): infusions}
    for e in truth:
        groups.setdefault(("product", e["car_t_product"]), []).append(e["infusion_id"])
    for (by, group), members in groups.items():
        k, n = sum(flagged[i] for i in members), len(members)
        row = rows[(IEC, by, group)]
        assert (row["flagged"], row["n"]) == (k, n), (by, group)
        low, high = wilson(k, n)
        assert math.isclose(row["ci_low"], low, abs_tol=1e-9) and math.isclose(row["ci_high"], high, abs_tol=1e-9)

    # the highest status reached, every status
    reached = Counter(e["iec_hs_status"] for e in truth)
    assert {r["highest_status"]: r["infusions"] for r in doc["highest_status"] if r["criteria_set"] == IEC} == reached

    # onset day, and days from CRS peak and from CRS improvement to onset
    alerts = [e for e in truth if flagged[e["infusion_id"]]]
    expected = {
        "onset_day": [e["iec_hs_onset_day"] for e in alerts],
        "days_from_crs_peak": [e["iec_hs_onset_day"] - e["crs_peak_day"] for e in alerts
                               if e["crs_peak_day"] is not None],
        "days_from_crs_improvement": [e["iec_hs_onset_day"] - e["crs"]["improvement_day"] for e in alerts
                                      if e["crs"] and e["crs"]["improvement_day"] is not None]}
    got = {r["measure"]: r for r in doc["onset"] if r["criteria_set"] == IEC}
    for measure, values in expected.items():
        assert {k: got[measure][k] for k in ("n", "median", "q1", "q3", "min", "max")} == quartiles(values), measure

    late = next(r for r in doc["late_onset"] if r["criteria_set"] == IEC)
    assert (late["flagged"], late["late"]) == (len(alerts), sum(e["late_onset"] for e in alerts))

    # cumulative incidence: Kaplan-Meier by hand, follow-up = the last day in `export flags`
    follow_up: dict[str, int] = {}
    for row in built["flags"]:
        follow_up[row["infusion_id"]] = max(follow_up.get(row["infusion_id"], 0), int(row["day"]))
    curve = next(c for c in doc["cumulative_incidence"]["curves"] if c["criteria_set"] == IEC)
    assert doc["cumulative_incidence"]["method"] == "kaplan_meier"
    onsets = {e["infusion_id"]: e["iec_hs_onset_day"] if flagged[e["infusion_id"]] else None for e in truth}
    by_hand = km_incidence(onsets, follow_up, curve["days"])
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(curve["incidence"], by_hand, strict=True))
    times = {i: onsets[i] if onsets[i] is not None else follow_up[i] for i in onsets}
    assert curve["at_risk"] == [sum(t >= day for t in times.values()) for day in curve["days"]]

    # agreement of IEC-HS (ground truth) with every other set (exported windows)
    for pair in (p for p in doc["agreement"] if p["a"] == IEC):
        other = windows_flagged(windows, pair["b"], infusions)
        both = sum(flagged[i] and other[i] for i in infusions)
        assert (pair["both"], pair["only_a"], pair["only_b"]) == (
            both, sum(flagged.values()) - both, sum(other.values()) - both), pair["b"]
        expected_kappa = kappa(flagged, other)
        assert (pair["kappa"] is None) if expected_kappa is None else math.isclose(
            pair["kappa"], expected_kappa, abs_tol=1e-6), pair["b"]
        assert [d["infusion_id"] for d in pair["disagreements"]] == [i for i in infusions if flagged[i] != other[i]]
