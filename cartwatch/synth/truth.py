"""The ground truth: what the pipeline must conclude from the generated files, and why.

One row per patient and infusion (the re-infused patient has two), each with a one-line story
that states the reasoning with the rules' numbers; one row per file line the loader must treat
specially (quarantine, duplicate, correction...); expected counts per file.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl

from cartwatch.synth.cohort import SimPatient
from cartwatch.synth.dataquality import REASONS
from cartwatch.synth.oracle import READINGS, Verdict
from cartwatch.synth.sites import HOME_TIMEZONE, zone
from cartwatch.synth.trajectories import Episode
from cartwatch.synth.units import profiles
from transforms.rules import Rules

# ground_truth.csv: no header may match a feed's required columns (the loader would read it as one).
EPISODE_COLUMNS = ("patient_id", "infusion_id", "archetype", "car_t_product", "site_timezone", "infused_at",
                   "crs_onset_day", "crs_peak_grade", "crs_peak_day", "crs_resolution_day", "iec_hs_status",
                   "iec_hs_onset_day", "iec_hs_criteria_met_day", "late_onset", "quarantined_rows",
                   "quarantine_reasons", "story")


@dataclass(frozen=True)
class EpisodeTruth:
    patient_id: str
    infusion_id: str
    archetype: str
    car_t_product: str
    site_timezone: str
    infused_at: str
    crs_onset_day: int | None
    crs_peak_grade: int | None
    crs_peak_day: int | None
    crs_resolution_day: int | None      # the first full grade-0 day; resolution at its end
    iec_hs_status: str
    iec_hs_onset_day: int | None
    iec_hs_criteria_met_day: int | None
    late_onset: bool
    quarantined_rows: int
    quarantine_reasons: str
    story: str
    detail: dict                        # JSON only: CRS instants, ferritin signals, evidence


@dataclass(frozen=True)
class RowTruth:
    file: str
    line: int                          # header = line 1
    patient_id: str
    expect: str                        # quarantine, duplicate, accepted, superseded, correction, ...
    reason: str
    note: str


@dataclass(frozen=True)
class FileTruth:
    file: str
    rows_read: int
    accepted: int
    duplicate: int
    quarantined: int


@dataclass(frozen=True)
class GroundTruth:
    seed: int
    patients: int
    start: date
    as_of: str
    rules_version: str
    episodes: tuple[EpisodeTruth, ...]
    rows: tuple[RowTruth, ...]
    files: tuple[FileTruth, ...]

    def by_patient(self, patient_id: str) -> list[EpisodeTruth]:
        return [e for e in self.episodes if e.patient_id == patient_id]


def iso(at: int | None, tz: str) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, zone(tz)).isoformat()


# --- stories --------------------------------------------------------------------------------------

def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:g}"


def crs_story(sim: SimPatient, i: int) -> str:
    facts, course = sim.facts[i], sim.episodes[i].course
    if facts is None:
        return "No CRS."
    source = "documented daily grades" if course.documented else "derived from vitals"
    if not course.vitals:
        source = "documented daily grades only (no vitals)"
    parts = [f"CRS grade {facts.peak_grade} ({source}): onset day {facts.onset_day}, peak day {facts.peak_day}"]
    if facts.improvement_day is not None:
        parts.append(f"improves day {facts.improvement_day}")
    if facts.re_escalation_day is not None:
        parts.append(f"re-escalates day {facts.re_escalation_day}")
    parts.append(f"resolves at the end of day {facts.resolution_day}")
    return ", ".join(parts) + "."


def _signal_text(s, rules: Rules) -> str:
    why = []
    if "re_rise" in s.rules:
        why.append(f">= {rules.value('iec_hs.re_rise_factor'):g} x nadir {_fmt(s.nadir)}")
    if "rapid_rise" in s.rules:
        why.append(f"rise >= {rules.value('iec_hs.rapid_rise_ng_ml_per_hour'):g} ng/mL/h within "
                   f"{rules.value('iec_hs.rapid_rise_window_hours'):g} h")
    if "new_high" in s.rules:
        why.append(f"above the CRS-phase peak {_fmt(s.peak)}")
    return (f"ferritin {_fmt(s.value)} ng/mL on day {s.day} (> {_fmt(s.elevated_above)}; "
            f"{' and '.join(why)})")


def verdict_story(v: Verdict, rules: Rules) -> str:
    base = (f" Baseline ferritin {_fmt(v.baseline_ferritin)} is above ULN, so elevated means > "
            f"{rules.value('iec_hs.ferritin_elevated_x_baseline'):g} x baseline too." if v.against_baseline else "")
    watch = [s for s in v.signals if s.status == "watch"]
    suspected = [s for s in v.signals if s.status == "suspected"]
    if v.status == "none":
        return f"{base} No ferritin result is both elevated and worsening: expected none.".lstrip()
    text = base
    if watch:
        text += f" Watch from {_signal_text(watch[0], rules)} while {watch[0].timing}."
    if suspected:
        s = suspected[0]
        text += f" Suspected at {_signal_text(s, rules)}, timing holds ({s.timing})."
    if v.manifestation:
        m = v.manifestation
        text += (f" Criteria met on day {v.criteria_met_day}: {m.analyte} {_fmt(m.value)} on day {m.day} "
                 f"({m.rule}, limit {_fmt(m.limit)}), within "
                 f"{rules.value('iec_hs.manifestation_window_hours'):g} h of a suspected ferritin.")
    elif suspected:
        text += " No most-common manifestation within 48 h: suspected, not criteria met."
    if v.late:
        text += f" Onset day {v.onset_day} >= {rules.value('iec_hs.late_onset_day'):g}: late onset."
    return f"{text.strip()} Expected {v.status.replace('_', ' ')}."


# --- building -------------------------------------------------------------------------------------

def episode_truths(cohort: list[SimPatient], rows: list[RowTruth], rules: Rules) -> list[EpisodeTruth]:
    quarantined: dict[str, list[str]] = {}
    for r in rows:
        if r.expect == "quarantine":
            quarantined.setdefault(r.patient_id, []).append(r.reason)
    out = []
    for sim in cohort:
        p, design = sim.patient, sim.patient.design
        reasons = quarantined.get(p.patient_id, [])
        for i, (ep, v, facts) in enumerate(zip(sim.episodes, sim.verdicts, sim.facts)):
            story = (f"{ep.course.product.name} in {design.site.city}: {design.intent}. {crs_story(sim, i)} "
                     f"{verdict_story(v, rules)}")
            if design.units != "canonical":
                story += f" Units: {_units_note(design.units)}."
            out.append(EpisodeTruth(
                patient_id=p.patient_id, infusion_id=ep.infusion_id, archetype=design.archetype,
                car_t_product=ep.course.product.name, site_timezone=design.site.timezone,
                infused_at=iso(ep.infusion_at, design.site.timezone),
                crs_onset_day=facts and facts.onset_day, crs_peak_grade=facts and facts.peak_grade,
                crs_peak_day=facts and facts.peak_day, crs_resolution_day=facts and facts.resolution_day,
                iec_hs_status=v.status, iec_hs_onset_day=v.onset_day,
                iec_hs_criteria_met_day=v.criteria_met_day, late_onset=v.late,
                quarantined_rows=len(reasons) if i == 0 else 0,
                quarantine_reasons=";".join(sorted(reasons)) if i == 0 else "",
                story=story, detail=_detail(sim, i, ep, v)))
    return out


def _units_note(profile: str) -> str:
    changed = {k: w.unit for k, w in profiles()[profile].items() if w != profiles()["canonical"][k]}
    return ", ".join(f"{k} in {u}" for k, u in changed.items())


def _detail(sim: SimPatient, i: int, ep: Episode, v: Verdict) -> dict:
    tz, facts, course = ep.cal.tz, sim.facts[i], ep.course
    crs = None if facts is None else {
        "onset_day": facts.onset_day, "peak_grade": facts.peak_grade, "peak_day": facts.peak_day,
        "improvement_day": facts.improvement_day, "improvement_at": iso(facts.improvement_at, tz),
        "re_escalation_day": facts.re_escalation_day, "resolution_day": facts.resolution_day,
        "resolved_at": iso(facts.resolved_at, tz), "onset_seen_at": iso(facts.onset_seen, tz),
        "grades_by_day": list(course.crs),
        "grade_source": "documented" if course.documented else "derived"}
    return {
        "intent": sim.patient.design.intent, "units": sim.patient.design.units, "crs": crs,
        "baseline_ferritin": v.baseline_ferritin, "judged_against_baseline": v.against_baseline,
        "iec_hs_onset_at": iso(v.onset_at, tz), "iec_hs_criteria_met_at": iso(v.criteria_met_at, tz),
        "ferritin_signals": [{"at": iso(s.at, tz), "day": s.day, "value": s.value, "rules": list(s.rules),
                              "status": s.status, "elevated_above": s.elevated_above, "nadir": s.nadir,
                              "crs_phase_peak": s.peak, "timing": s.timing} for s in v.signals],
        "criteria_met_by": None if v.manifestation is None else asdict(v.manifestation) | {
            "at": iso(v.manifestation.at, tz)},
        "draw_attempts": sim.attempts,
    }


def row_truths(frames: dict[str, pl.DataFrame]) -> list[RowTruth]:
    """Rows with an expectation, with their file line (header = 1) and what they refer to."""
    originals = _original_lines(frames)
    out = []
    for feed, frame in frames.items():
        marked = frame.with_row_index("_i").filter(pl.col("_expect") != "")
        for r in marked.iter_rows(named=True):
            line = r["_i"] + 2
            note = (REASONS.get(r["_reason"], "") if r["_expect"] == "quarantine" else
                    "repeats {} line {}".format(*originals[(feed, line)]) if r["_expect"] == "duplicate" else "")
            out.append(RowTruth(f"{feed}.csv", line, r["patient_id"] or f"CW-{r['_n']:04d}", r["_expect"],
                                r["_reason"], note))
    return out


def _original_lines(frames: dict[str, pl.DataFrame]) -> dict[tuple[str, int], tuple[str, int]]:
    """(feed, line) of each duplicate -> (file, line) where the same row first appears; files of a
    family (labs, labs_resend) are read in name order, as the loader does."""
    patients = {n for f in frames.values() for n in f.filter(pl.col("_expect") == "duplicate")["_n"].to_list()}
    found, first = {}, {}
    for feed in sorted(frames):
        frame = frames[feed].with_row_index("_i").filter(pl.col("_n").is_in(list(patients)))
        content = [c for c in frame.columns if not c.startswith("_")]
        for row in frame.iter_rows(named=True):
            key = (feed.split("_")[0],) + tuple(row[c] for c in content)
            where = (f"{feed}.csv", row["_i"] + 2)
            if row["_expect"] == "duplicate":
                found[(feed, row["_i"] + 2)] = first[key]
            first.setdefault(key, where)
    return found


def link_versions(rows: list[RowTruth], frames: dict[str, pl.DataFrame]) -> list[RowTruth]:
    """Notes tying each correction, cancellation and final to the version it replaces."""
    labs = frames["labs"].with_row_index("_i")
    pairs = {"correction": "superseded", "cancellation": "withdrawn", "final_of_preliminary": "preliminary"}
    verbs = {"correction": "corrects", "cancellation": "cancels", "final_of_preliminary": "replaces preliminary"}
    out = []
    for r in rows:
        if r.file == "labs.csv" and r.expect in pairs:
            row = labs.row(r.line - 2, named=True)
            partner = labs.filter((pl.col("accession") == row["accession"]) & (pl.col("loinc") == row["loinc"])
                                  & (pl.col("_expect") == pairs[r.expect]))
            r = RowTruth(**(asdict(r) | {"note": f"{verbs[r.expect]} line {partner['_i'][0] + 2}"}))
        out.append(r)
    return out


def file_truths(frames: dict[str, pl.DataFrame]) -> list[FileTruth]:
    out = []
    for feed, frame in frames.items():
        expect = frame["_expect"]
        quarantined, duplicate = int((expect == "quarantine").sum()), int((expect == "duplicate").sum())
        out.append(FileTruth(f"{feed}.csv", frame.height, frame.height - quarantined - duplicate,
                             duplicate, quarantined))
    return out


# --- writing --------------------------------------------------------------------------------------

def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write(truth: GroundTruth, out_dir: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EPISODE_COLUMNS)
    for e in truth.episodes:
        writer.writerow([_cell(getattr(e, c)) for c in EPISODE_COLUMNS])
    (out_dir / "ground_truth.csv").write_text(buffer.getvalue(), encoding="utf-8")
    doc = {
        "generator": "cartwatch.synth", "seed": truth.seed, "patients": truth.patients,
        "start": truth.start.isoformat(), "as_of": truth.as_of, "rules_version": truth.rules_version,
        "naive_times_are_in": HOME_TIMEZONE,
        "status_semantics": "evaluated as of as_of with every correction and cancellation applied; "
                            "days are local calendar days post-infusion in site_timezone",
        "readings_checked": len(READINGS),
        "quarantine_reason_words": REASONS,
        "episodes": [{c: getattr(e, c) for c in EPISODE_COLUMNS} | e.detail for e in truth.episodes],
        "rows": [asdict(r) for r in truth.rows],
        "files": [asdict(f) for f in truth.files],
    }
    (out_dir / "ground_truth.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n",
                                               encoding="utf-8")


def as_of_text(horizon: date) -> str:
    return datetime(horizon.year, horizon.month, horizon.day, tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
