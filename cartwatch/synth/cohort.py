"""A cohort in memory: each patient designed, simulated, written in its units, and judged.

A patient is redrawn (same archetype, next attempt of its random stream) when its verdict would
depend on a reading the rules leave open, or contradicts the archetype's intent: the ground truth
is then the oracle's verdict on the values actually written, and unambiguous.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import numpy as np

from cartwatch.synth import oracle, units
from cartwatch.synth.archetypes import HORIZON_DAYS, Patient, build_patient, roster
from cartwatch.synth.sites import Calendar
from cartwatch.synth.trajectories import A, TAG, Episode, simulate_episode
from transforms.rules import Rules, load_rules

MAX_ATTEMPTS = 40
# Rows that are not the version in force once everything is known.
NOT_FINAL = np.array([TAG["superseded"], TAG["withdrawn"], TAG["cancellation"], TAG["preliminary"]])
ORACLE_LABS = ("fibrinogen", "ast", "alt", "anc", "platelets", "hemoglobin")


@dataclass
class SimPatient:
    patient: Patient
    episodes: list[Episode]
    labs: dict[str, np.ndarray]      # all episodes, + written, decimals, unit, as_read, ref columns
    vitals: dict[str, np.ndarray]    # + written, decimals, unit
    events: list[tuple[int, str, str]]
    facts: list[oracle.CrsFacts | None]
    verdicts: list[oracle.Verdict]
    ambiguous: list[list[str]]       # per episode: readings under which the verdict would differ
    attempts: int


def simulate(patient: Patient, rules: Rules) -> SimPatient:
    rng = np.random.default_rng(patient.seed)
    design, episodes, next_draw = patient.design, [], 0
    for i, course in enumerate(design.episodes):
        cal = Calendar.around(design.site.timezone, patient.infusion_days[i], -7, course.last_day + 1)
        ep = Episode(course, cal, int(cal.at(0, patient.infusion_minutes[i])), f"{patient.patient_id}-I{i + 1}")
        next_draw = simulate_episode(ep, rng, next_draw, corrections="corrections" in design.quality)
        episodes.append(ep)
    labs = written_labs(_concat([ep.labs for ep in episodes]), design, rules)
    vitals = _concat([ep.vitals for ep in episodes])
    vitals["written"], vitals["decimals"], vitals["unit"], _ = units.write(
        design.units, units.VITAL_KINDS, vitals["kind"], vitals["value"])
    events = sorted(e for ep in episodes for e in ep.events)
    sim = SimPatient(patient, episodes, labs, vitals, events, [], [], [], 0)
    judge(sim, rules)
    return sim


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def written_labs(labs: dict[str, np.ndarray], design, rules: Rules) -> dict[str, np.ndarray]:
    """Values and reference ranges as the site writes them, and what a reader gets back."""
    profile = design.units
    labs["written"], labs["decimals"], labs["unit"], labs["as_read"] = units.write(
        profile, units.LAB_ANALYTES, labs["analyte"], labs["value"])
    for end, attr in (("low", "default_low"), ("high", "default_high")):
        default = np.array([getattr(rules.analyte(a), attr) for a in units.LAB_ANALYTES])[labs["analyte"]]
        sent = np.full(len(default), np.nan)
        if design.site.sends_ranges:
            sent = np.where(default > 0, default, np.nan)   # a "< x" range has no lower limit
        written, _, _, as_read = units.write(profile, units.LAB_ANALYTES, labs["analyte"], sent)
        labs[f"ref_{end}_written"] = written
        labs[f"ref_{end}"] = np.where(np.isnan(as_read), default, as_read)
    return labs


def judge(sim: SimPatient, rules: Rules) -> None:
    """The oracle's verdict per episode, from the final versions of the written results."""
    labs = sim.labs
    final = ~np.isin(labs["tag"], NOT_FINAL)
    results = {name: _results(labs, final & (labs["analyte"] == A[name])) for name in ("ferritin",) + ORACLE_LABS}
    hemophagocytosis = tuple(t for t, kind, value in sim.events if kind == "hemophagocytosis" and value == "true")
    for i, ep in enumerate(sim.episodes):
        ends = sim.episodes[i + 1].infusion_at if i + 1 < len(sim.episodes) else None
        facts = oracle.crs_facts(ep.course.crs, ep.cal, ep.evidence_at)
        inputs = oracle.Episode(ep.infusion_at, ends, ep.cal, facts, results["ferritin"],
                                {k: results[k] for k in ORACLE_LABS}, hemophagocytosis)
        verdict, differing = oracle.verdicts(inputs, rules)
        sim.facts.append(facts)
        sim.verdicts.append(verdict)
        sim.ambiguous.append(differing)


def _results(labs: dict[str, np.ndarray], rows: np.ndarray) -> tuple[oracle.Result, ...]:
    idx = np.flatnonzero(rows)
    idx = idx[np.argsort(labs["t"][idx], kind="stable")]
    return tuple(oracle.Result(int(labs["t"][i]), float(labs["as_read"][i]), float(labs["ref_low"][i]),
                               float(labs["ref_high"][i])) for i in idx)


def acceptable(sim: SimPatient) -> bool:
    """Unambiguous, within the horizon, and as the archetype intends."""
    design = sim.patient.design
    if any(sim.ambiguous):
        return False
    if design.expect and any(v.status not in allowed for v, allowed in zip(sim.verdicts, design.expect)):
        return False
    return sim.verdicts[-1].late == design.late


def build_cohort(patients: int, seed: int, start: date, rules: Rules, workers: int = 1) -> list[SimPatient]:
    """Every patient of the roster, each redrawn until acceptable (or MAX_ATTEMPTS).

    Patients are independent (each has its own random stream), so `workers` processes give the
    same cohort as one."""
    slots = (np.random.default_rng([seed, 1]).permutation(patients) + 0.5) / max(patients, 1)
    jobs = [(number, archetype, kwargs, dst, seed, start, float(slots[number - 1]), str(rules.path))
            for number, (archetype, kwargs, dst) in enumerate(roster(patients, seed), start=1)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            return list(pool.map(_build_one, jobs, chunksize=max(1, len(jobs) // (8 * workers))))
    return [_build_one(job, rules) for job in jobs]


@lru_cache(maxsize=4)
def _rules_at(path: str) -> Rules:
    return load_rules(path)


def _build_one(job: tuple, rules: Rules | None = None) -> SimPatient:
    number, archetype, kwargs, dst, seed, start, slot, rules_path = job
    rules = rules or _rules_at(rules_path)
    for attempt in range(MAX_ATTEMPTS):
        patient = build_patient(number, archetype, kwargs, dst, seed, start, slot, attempt)
        sim = simulate(patient, rules)
        sim.attempts = attempt + 1
        if acceptable(sim):
            return sim
    raise RuntimeError(f"{patient.patient_id} ({archetype}): no acceptable draw in {MAX_ATTEMPTS} attempts; "
                       f"last verdicts {[v.key() for v in sim.verdicts]}, ambiguous under {sim.ambiguous}")


def horizon(start: date) -> date:
    """The cohort's "now": every result is dated before it."""
    return start + timedelta(days=HORIZON_DAYS)
