"""From a designed course to timed rows: vitals graded as designed, labs following three levels.

Every lab value is a baseline times the effects of three levels in [0, 1] at the draw time: CRS
(the day's grade / 3), IEC-HS (a trapezoid from the designed onset) and lymphodepletion (counts
suppressed until recovery). Ferritin has its own shape (archetypes.Ferritin) and exact pins. The
vitals make each local day's derived ASTCT grade equal the designed grade: fever on febrile CRS
days, oxygen or hypotension from the slot where a rising grade shows, nothing abnormal otherwise.

Times are UTC epoch seconds; `minute` is minutes after local midnight of a day (Calendar.at).
Effect sizes below are simulation parameters (how a typical course looks), not clinical rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cartwatch.synth.archetypes import Course, Pin, resolution_day
from cartwatch.synth.sites import Calendar
from cartwatch.synth.units import LAB_ANALYTES, O2_DEVICES, VITAL_KINDS

A = {name: i for i, name in enumerate(LAB_ANALYTES)}
K = {name: i for i, name in enumerate(VITAL_KINDS)}
DEVICE = {name: i for i, name in enumerate(O2_DEVICES)}
DAY = 86_400

# Baseline range and log-effects of full CRS, full IEC-HS (x severity) and lymphodepletion.
MODEL = {
    "crp": ((2.0, 8.0), 3.6, 2.2, 0.0),
    "il6": ((2.0, 6.0), 5.0, 2.5, 0.0),
    "fibrinogen": ((290.0, 380.0), 0.45, -1.5, 0.0),
    "ast": ((16.0, 32.0), 0.5, 2.6, 0.0),
    "alt": ((14.0, 35.0), 0.4, 2.4, 0.0),
    "ldh": ((160.0, 230.0), 0.5, 1.3, 0.0),
    "bilirubin_total": ((0.3, 0.8), 0.2, 1.2, 0.0),
    "triglycerides": ((90.0, 160.0), 0.2, 0.9, 0.0),
    "creatinine": ((0.7, 1.0), 0.25, 0.3, 0.0),
    "platelets": ((150.0, 260.0), 0.0, -1.6, -1.1),
    "anc": ((2.2, 5.0), 0.0, -1.2, -3.5),
    "hemoglobin": ((11.4, 13.2), 0.0, -0.3, -0.15),
    "wbc": ((0.5, 1.2), 0.0, -0.5, -1.5),      # lymphocytes and monocytes; WBC adds ANC
    "pt": ((11.3, 12.8), 0.05, 0.3, 0.0),
    "inr": ((1.0, 1.0), 0.0, 0.0, 0.0),         # PT / 12 s, below
    "aptt": ((27.0, 33.0), 0.05, 0.35, 0.0),
    "d_dimer": ((0.2, 0.45), 1.6, 2.0, 0.0),
}
# Highest value the simulation lets an analyte reach (it saturates, as physiology does); well
# inside the rules file's plausibility bounds, which would quarantine the row.
CAP = {"crp": 400.0, "il6": 8000.0, "ast": 4000.0, "alt": 3000.0, "ldh": 4000.0, "bilirubin_total": 12.0,
       "triglycerides": 800.0, "creatinine": 4.0, "pt": 40.0, "aptt": 90.0, "d_dimer": 40.0}
NOISE_SD = {"ferritin": 0.04, "platelets": 0.05, "anc": 0.06, "wbc": 0.05, "hemoglobin": 0.025,
            "pt": 0.02, "inr": 0.0, "aptt": 0.03}   # others 0.05
PANELS = {
    "cbc": ("platelets", "anc", "hemoglobin", "wbc"),
    "chem": ("ferritin", "crp", "ast", "alt", "ldh", "bilirubin_total", "creatinine"),
    "fib": ("fibrinogen",),
    "coag": ("pt", "inr", "aptt", "d_dimer"),
    "tg": ("triglycerides",),
    "il6": ("il6",),
}
PANEL_CODE = {name: i for i, name in enumerate(PANELS)}
TURNAROUND_MIN = {"cbc": (40, 70), "chem": (90, 150), "fib": (60, 100), "coag": (60, 100),
                  "tg": (90, 150), "il6": (2 * 1440, 3 * 1440)}
STATUS = {"F": 0, "C": 1, "X": 2, "P": 3}
# Row tags: what the ground truth says about a lab row besides "accepted".
TAG = {"": 0, "superseded": 1, "correction": 2, "withdrawn": 3, "cancellation": 4,
       "preliminary": 5, "final_of_preliminary": 6}


@dataclass(frozen=True)
class Draw:
    day: int
    minute: int
    panels: tuple[str, ...]


@dataclass
class Episode:
    """One simulated infusion episode: its calendar, rows and the CRS evidence times."""

    course: Course
    cal: Calendar
    infusion_at: int
    infusion_id: str
    labs: dict[str, np.ndarray] = field(default_factory=dict)
    vitals: dict[str, np.ndarray] = field(default_factory=dict)
    events: list[tuple[int, str, str]] = field(default_factory=list)
    evidence_at: dict[int, int] = field(default_factory=dict)   # CRS day -> first instant of its grade
    resolved_at: int | None = None

    def x(self, t: np.ndarray) -> np.ndarray:
        """Days since the infusion instant."""
        return (np.asarray(t) - self.infusion_at) / DAY


# --- schedules ---------------------------------------------------------------------------------

def discharge_day(course: Course) -> int:
    if max(course.crs, default=0) == 0:
        return 7
    return max(9, resolution_day(course.crs) + 3)


def hlh_days(course: Course) -> range:
    if course.hlh is None:
        return range(0)
    return range(course.hlh.onset_day - 1, course.hlh.onset_day + int(course.hlh.duration_days) + 1)


def inpatient_days(course: Course) -> set[int]:
    return set(range(0, discharge_day(course) + 1)) | set(hlh_days(course))


def active_days(course: Course) -> set[int]:
    """Days watched closely: CRS grade >= 1 or the IEC-HS phase."""
    return {d for d in range(len(course.crs)) if course.crs[d] >= 1} | set(hlh_days(course))


def lab_days(course: Course, rng: np.random.Generator) -> list[int]:
    """Post-infusion draw days: daily for two weeks and through IEC-HS, then every 2-4 days."""
    if course.sparse_every:
        low, high = course.sparse_every
        days, d = [], 1
        while d <= course.follow_up_days:
            days.append(d)
            d += int(rng.integers(low, high + 1))
        return days
    days = set(range(1, 15)) | set(hlh_days(course)) | set(course.extra_visits) | dict(course.draw_minutes).keys()
    d = 14
    while d < course.follow_up_days:
        d += int(rng.integers(2, 5))
        days.add(min(d, course.follow_up_days))
    return sorted(x for x in days if x <= course.last_day)


def lab_draws(course: Course, rng: np.random.Generator) -> list[Draw]:
    everything = tuple(PANELS)
    draws = [Draw(-5, int(rng.integers(540, 630)), everything),
             Draw(0, int(rng.integers(360, 400)), everything)]   # day 0 before the infusion: baseline
    inpatient, active, timed = inpatient_days(course), active_days(course), dict(course.draw_minutes)
    for day in lab_days(course, rng):
        panels = ["cbc", "chem", "fib"]
        if day in active or day % 2 == 0 or course.sparse_every:
            panels.append("coag")
        if day in (7, 14) or day in hlh_days(course) or course.sparse_every:
            panels.append("tg")
        if day in (1, 3, 5, 7) or day in active:
            panels.append("il6")
        minute = int(rng.integers(360, 400)) if day in inpatient else int(rng.integers(510, 660))
        draws.append(Draw(day, timed.get(day, minute), tuple(panels)))
    return draws


# --- levels ------------------------------------------------------------------------------------

def crs_level(ep: Episode, t: np.ndarray) -> np.ndarray:
    days = np.arange(ep.cal.first_day, ep.cal.last_day + 1)
    mids = ep.x(ep.cal.at(days, 720))
    grades = np.array([ep.course.grade(d) for d in days]) / 3.0
    return np.interp(ep.x(t), mids, grades)


def hlh_level(ep: Episode, t: np.ndarray) -> np.ndarray:
    """0 before the designed onset day; 1 from its evening through `duration`; back to 0 in 5 days."""
    hlh = ep.course.hlh
    if hlh is None:
        return np.zeros(len(t))
    start = ep.x(ep.cal.start(hlh.onset_day))
    xs = [start - 0.75, start + 0.75, start + hlh.duration_days, start + hlh.duration_days + 5]
    return np.interp(ep.x(t), xs, [0.0, 1.0, 1.0, 0.0])


def lymphodepletion_level(ep: Episode, t: np.ndarray, lag: float) -> np.ndarray:
    """Counts fall after fludarabine/cyclophosphamide (days -5 to -3) and recover about day
    `counts_recover_day` (+ `lag` for platelets and hemoglobin)."""
    r = ep.course.counts_recover_day + lag
    return np.interp(ep.x(t), [-4.0, 0.0, r - 4.0, r + 3.0], [0.0, 1.0, 1.0, 0.0])


def ferritin_curve(ep: Episode, t: np.ndarray) -> np.ndarray:
    """The CRS-driven shape plus the IEC-HS re-rise to its plateau."""
    hlh, x = ep.course.hlh, ep.x(t)
    shape = _ferritin_crs_shape(ep, x)
    if hlh is None or (hlh.ferritin_factor <= 0 and hlh.ferritin_plateau is None):
        return shape
    onset_level = _ferritin_crs_shape(ep, ep.x(np.array([ep.cal.start(hlh.onset_day)])))[0]
    plateau = hlh.ferritin_plateau or hlh.ferritin_factor * onset_level
    return shape + (plateau - onset_level) * hlh_level(ep, t)


def _ferritin_crs_shape(ep: Episode, x: np.ndarray) -> np.ndarray:
    f = ep.course.ferritin
    if max(ep.course.crs, default=0) == 0 or f.peak <= 0:
        return f.baseline * (1 + f.drift * np.clip(x / ep.course.follow_up_days, 0, 1))
    onset = next(d for d, g in enumerate(ep.course.crs) if g >= 1)
    onset_x = float(ep.x(ep.cal.start(onset))) + 0.5
    peak_x = _ferritin_peak_x(ep)
    rise = np.exp(np.interp(x, [onset_x, peak_x], [np.log(f.baseline), np.log(f.peak)]))
    fall = f.floor + (f.peak - f.floor) * 0.5 ** ((x - peak_x) / f.half_life_days)
    return np.where(x <= peak_x, rise, fall)


def _ferritin_peak_x(ep: Episode) -> float:
    f, grades = ep.course.ferritin, ep.course.crs
    if f.peak_after_resolution_h is not None:
        return float(ep.x(ep.resolved_at + f.peak_after_resolution_h * 3600))
    peak_day = grades.index(max(grades))
    return float(ep.x(ep.cal.at(peak_day, 720))) + f.peak_lag_days


def noise(rng: np.random.Generator, sd: float, n: int) -> np.ndarray:
    return np.exp(np.clip(rng.normal(0.0, sd, n), -2 * sd, 2 * sd)) if sd else np.ones(n)


def lab_values(ep: Episode, rng: np.random.Generator, analyte: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Canonical values of the rows (analyte index, collection time)."""
    levels = {"crs": crs_level(ep, t), "hlh": hlh_level(ep, t) * (ep.course.hlh.severity if ep.course.hlh else 0),
              "ld": lymphodepletion_level(ep, t, 0.0), "ld_slow": lymphodepletion_level(ep, t, 5.0)}
    base = baseline_values(ep.course, rng)
    values = np.empty(len(t))
    for name, (_, c_crs, c_hlh, c_ld) in MODEL.items():
        rows = analyte == A[name]
        ld = levels["ld_slow" if name in ("platelets", "hemoglobin") else "ld"][rows]
        log_v = np.log(base[name]) + c_crs * levels["crs"][rows] + c_hlh * levels["hlh"][rows] + c_ld * ld
        values[rows] = np.minimum(np.exp(log_v), CAP.get(name, np.inf)) * noise(rng, NOISE_SD.get(name, 0.05),
                                                                                 int(rows.sum()))
    # every coag panel has PT and INR, every CBC ANC and WBC: same-draw rows align in order
    values[analyte == A["inr"]] = values[analyte == A["pt"]] / 12.0
    values[analyte == A["wbc"]] += values[analyte == A["anc"]]
    rows = analyte == A["ferritin"]
    values[rows] = ferritin_curve(ep, t[rows]) * noise(rng, NOISE_SD["ferritin"], int(rows.sum()))
    return values


def baseline_values(course: Course, rng: np.random.Generator) -> dict[str, float]:
    base = {name: float(rng.uniform(*rng_range)) for name, (rng_range, *_) in MODEL.items()}
    return base | dict(course.baseline_overrides)


# --- vitals and the CRS grade they imply ------------------------------------------------------

def day_support(course: Course, day: int) -> str:
    """What makes the day's grade above 1: '', nasal_cannula, hypotension, high_flow, vasopressor, bipap."""
    grade = course.grade(day)
    if grade == 2:
        return "nasal_cannula" if course.grade2_by == "hypoxia" else "hypotension"
    return {3: course.grade3_by, 4: "bipap"}.get(grade, "")


def is_febrile(course: Course, day: int) -> bool:
    return course.grade(day) >= 1 and (course.afebrile_from is None or day < course.afebrile_from)


def vitals_minutes(course: Course, draws: list[Draw], rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """(day, minutes after local midnight) of the vitals sets: q4h on CRS days, q6h through
    IEC-HS, q8h otherwise while inpatient, one set at each outpatient visit. Minutes avoid 01:00-02:59, the hour DST
    skips or repeats, so naive local times stay unambiguous."""
    inpatient, crs = inpatient_days(course), {d for d in range(len(course.crs)) if course.crs[d] >= 1}
    sets = []
    for day in sorted(inpatient):
        hours = ([8, 12, 16, 20] if day == 0 else [0, 4, 8, 12, 16, 20] if day in crs
                 else [0, 6, 12, 18] if day in hlh_days(course) else [0, 8, 16])
        sets.append((day, np.array(hours) * 60 + rng.integers(5, 56, len(hours))))
    sets += [(dr.day, np.array([dr.minute + 10])) for dr in draws if dr.day not in inpatient]
    return sorted(sets, key=lambda s: s[0])


def first_sign_slot(course: Course, day: int, n: int, rng: np.random.Generator) -> int:
    """The slot from which a day's grade shows: at random on the onset day, early on a rising day."""
    if day == 0 or course.grade(day) <= course.grade(day - 1):
        return 0
    if course.escalation_slot is not None:
        return min(course.escalation_slot, n - 1)
    return int(rng.integers(0, n if course.grade(day - 1) == 0 else min(2, n)))


def simulate_vitals(ep: Episode, draws: list[Draw], rng: np.random.Generator) -> None:
    """Fill ep.vitals and the CRS evidence times; vasopressor start/stop go to ep.events.

    Per day: the grade's features (fever, oxygen, hypotension) from the slot where a rising grade
    first shows; per set (vectorized): the readings."""
    course, sets = ep.course, vitals_minutes(ep.course, draws, rng)
    days, counts = np.array([d for d, _ in sets]), np.array([len(m) for _, m in sets])
    first = np.array([first_sign_slot(course, int(d), int(n), rng) for d, n in zip(days, counts)])
    support = np.array([day_support(course, int(d)) for d in days])
    per_set = lambda values: np.repeat(values, counts)  # noqa: E731
    n = int(counts.sum())
    slot = np.arange(n) - per_set(np.cumsum(counts) - counts)
    k, kind_of_day = per_set(first), per_set(support)
    after = slot >= k
    febrile = per_set(np.array([is_febrile(course, int(d)) for d in days]))
    fever = febrile & ((after & (rng.random(n) < 0.6)) | (slot == k))
    warm = per_set(np.array([course.grade(int(d)) >= 1 or int(d) in hlh_days(course) for d in days]))
    temp = np.where(fever, rng.uniform(38.2, 39.6, n), np.minimum(rng.normal(np.where(warm, 37.4, 36.9), 0.25), 37.7))
    low_bp = after & np.isin(kind_of_day, ("hypotension", "vasopressor"))
    on_pressor = after & (kind_of_day == "vasopressor") & (slot > k)
    sbp = np.where(low_bp, rng.uniform(80, 88, n), np.clip(rng.normal(121, 9, n), 104, 148))
    sbp = np.where(on_pressor, rng.uniform(90, 99, n), sbp).round()
    dbp = (sbp * rng.uniform(0.56, 0.66, n)).round()
    device = np.full(n, DEVICE["room_air"])
    for name in ("nasal_cannula", "high_flow", "bipap"):
        device[after & (kind_of_day == name)] = DEVICE[name]
    flow = np.select([device == DEVICE["nasal_cannula"], device == DEVICE["high_flow"]],
                     [rng.integers(2, 5, n), rng.integers(30, 51, n)], 0).astype(float)
    spo2 = np.where(device == DEVICE["room_air"], rng.integers(94, 100, n), rng.integers(91, 97, n))
    heart = rng.normal(80, 7, n) + 18 * fever + 12 * low_bp
    times = ep.cal.at(per_set(days), np.concatenate([m for _, m in sets]))
    readings = {"temperature": temp, "sbp": sbp, "dbp": dbp, "map": ((sbp + 2 * dbp) / 3).round(),
                "heart_rate": heart.round(), "spo2": spo2.astype(float), "o2_flow": flow,
                "o2_device": device.astype(float)}
    _record_signs(ep, days, counts, first, support, times)
    _vitals_rows(ep, times, readings)


def _record_signs(ep: Episode, days, counts, first, support, times) -> None:
    """The instant each CRS day's grade first shows, and vasopressor start (1) / stop (0) events."""
    start_of_day = np.cumsum(counts) - counts
    on_pressor = False
    for day, begin, k, kind in zip(days.tolist(), start_of_day.tolist(), first.tolist(), support.tolist()):
        if ep.course.grade(day) >= 1:
            ep.evidence_at.setdefault(day, int(times[begin + k]))
        if kind == "vasopressor":
            ep.events.append((int(times[begin + k]), "vasopressor", "1"))
        elif on_pressor:
            ep.events.append((int(times[begin]), "vasopressor", "0"))
        on_pressor = kind == "vasopressor"


def _vitals_rows(ep: Episode, times: np.ndarray, readings: dict[str, np.ndarray]) -> None:
    """Long rows (time, kind, value) in time then kind order; o2_flow only while on oxygen."""
    keep = {kind: values > 0 if kind == "o2_flow" else np.ones(len(values), bool) for kind, values in readings.items()}
    t = np.concatenate([times[keep[k]] for k in readings])
    kind = np.concatenate([np.full(int(keep[k].sum()), K[k]) for k in readings])
    value = np.concatenate([readings[k][keep[k]] for k in readings])
    order = np.lexsort((kind, t))
    ep.vitals = {"t": t[order], "kind": kind[order], "value": value[order]}


# --- events ------------------------------------------------------------------------------------

def crs_days(course: Course) -> list[int]:
    """Days from onset through the resolution day (the first grade-0 day after onset)."""
    if max(course.crs, default=0) == 0:
        return []
    onset = next(d for d, g in enumerate(course.crs) if g >= 1)
    return list(range(onset, resolution_day(course.crs) + 1))


def documented_grades(ep: Episode, rng: np.random.Generator) -> None:
    """Daily crs_grade assessments at about 09:00 from onset to resolution day; a grade is
    evident from the earlier of its assessment and its vitals."""
    for day in crs_days(ep.course):
        at = int(ep.cal.at(day, 540 + int(rng.integers(0, 31))))
        ep.events.append((at, "crs_grade", str(ep.course.grade(day))))
        if ep.course.grade(day) >= 1:
            ep.evidence_at[day] = min(ep.evidence_at.get(day, at), at)


def crs_treatments(ep: Episode, rng: np.random.Generator) -> None:
    """Tocilizumab at the first grade >= 2 and at a re-escalation; dexamethasone at grade >= 3
    or a re-escalation (ASTCT practice)."""
    course, peak_so_far = ep.course, 0
    for day in crs_days(course):
        grade = course.grade(day)
        escalates_again = peak_so_far > course.grade(day - 1) and grade > course.grade(day - 1)
        evident = ep.evidence_at.get(day)
        if evident is None:
            continue
        if grade >= 2 and (peak_so_far < 2 or escalates_again):
            ep.events.append((evident + 60 * int(rng.integers(45, 121)), "tocilizumab", "8 mg/kg"))
        if (grade >= 3 and peak_so_far < 3) or escalates_again:
            ep.events.append((evident + 60 * int(rng.integers(130, 181)), "corticosteroid",
                              "dexamethasone 10 mg"))
        peak_so_far = max(peak_so_far, grade)


def hlh_treatments(ep: Episode) -> None:
    """Anakinra daily and dexamethasone once IEC-HS is recognised; ruxolitinib, marrow and
    imaging findings in the severe ones."""
    hlh = ep.course.hlh
    if hlh is None or hlh.severity <= 0:
        return
    start = hlh.onset_day + (0 if ep.course.escalation_slot is not None else 1)
    for day in range(start, start + int(np.ceil(hlh.duration_days))):
        ep.events.append((int(ep.cal.at(day, 600)), "anakinra", "100 mg"))
    ep.events.append((int(ep.cal.at(start, 630)), "corticosteroid", "dexamethasone 10 mg"))
    if hlh.severity > 1.35:
        ep.events.append((int(ep.cal.at(start + 2, 840)), "hemophagocytosis", "true"))
        ep.events.append((int(ep.cal.at(start + 3, 600)), "ruxolitinib", "10 mg"))
    if hlh.onset_day > 28:
        ep.events.append((int(ep.cal.at(start, 900)), "splenomegaly", "true"))


def simulate_events(ep: Episode, rng: np.random.Generator) -> None:
    if ep.course.documented:
        documented_grades(ep, rng)
    crs_treatments(ep, rng)
    hlh_treatments(ep)
    ep.events += [(int(ep.cal.at(day, 660)), "icans_grade", str(grade)) for day, grade in ep.course.icans]
    ep.events.sort()


# --- labs --------------------------------------------------------------------------------------

def lab_rows(ep: Episode, draws: list[Draw], rng: np.random.Generator, first_draw: int) -> dict[str, np.ndarray]:
    """One row per analyte of each drawn panel, collected at the draw time."""
    analyte, draw_no, panel, t, t_result = [], [], [], [], []
    for i, dr in enumerate(draws):
        at = int(ep.cal.at(dr.day, dr.minute))
        for name in dr.panels:
            names = PANELS[name]
            turnaround = 60 * int(rng.integers(*TURNAROUND_MIN[name]))
            analyte += [A[n] for n in names]
            draw_no += [first_draw + i] * len(names)
            panel += [PANEL_CODE[name]] * len(names)
            t += [at] * len(names)
            t_result += [at + turnaround] * len(names)
    rows = {"analyte": np.array(analyte), "draw": np.array(draw_no), "panel": np.array(panel),
            "t": np.array(t, dtype=np.int64), "t_result": np.array(t_result, dtype=np.int64)}
    rows["value"] = lab_values(ep, rng, rows["analyte"], rows["t"])
    return rows


def pin_ferritin(ep: Episode, rows: dict[str, np.ndarray], draws: list[Draw], next_draw: int) -> dict[str, np.ndarray]:
    """Set the exact ferritin values of the design's pins, adding the extra draws they ask for."""
    extra = []
    for pin in ep.course.ferritin.pins:
        at = _pin_time(ep, pin, draws)
        hit = (rows["analyte"] == A["ferritin"]) & (rows["t"] == at)
        if hit.any():
            rows["value"][hit] = pin.value
        else:
            extra.append((at, pin.value))
    for i, (at, value) in enumerate(sorted(extra)):
        rows = append_rows(rows, analyte=A["ferritin"], draw=next_draw + i, panel=PANEL_CODE["chem"],
                           t=at, t_result=at + 100 * 60, value=value)
    return rows


def _pin_time(ep: Episode, pin: Pin, draws: list[Draw]) -> int:
    if pin.after_resolution_h is not None:
        return int(ep.resolved_at + pin.after_resolution_h * 3600)
    if pin.minute is not None:
        return int(ep.cal.at(pin.day, pin.minute))
    draw = next(dr for dr in draws if dr.day == pin.day)
    return int(ep.cal.at(draw.day, draw.minute))


def append_rows(rows: dict[str, np.ndarray], **new) -> dict[str, np.ndarray]:
    """Rows plus one more (missing columns: 0), in collection then result order, as an extract
    sorted by time lists a preliminary before its final and a correction after it."""
    out = {k: np.append(v, new.get(k, 0)).astype(v.dtype) for k, v in rows.items()}
    order = np.lexsort((out["t_result"], out["t"]))
    return {k: v[order] for k, v in out.items()}


def add_corrections(rows: dict[str, np.ndarray], ep: Episode, next_draw: int) -> dict[str, np.ndarray]:
    """The corrections archetype: F then C (diluted re-run), a wrong-patient F then X, P then F."""
    ferritin = np.flatnonzero(rows["analyte"] == A["ferritin"])
    day = ep.cal.day_of(rows["t"][ferritin])
    onset = crs_days(ep.course)[0]
    corrected = ferritin[np.flatnonzero(day == onset + 1)[0]]
    rows["tag"][corrected] = TAG["superseded"]
    final_value = rows["value"][corrected]
    rows["value"][corrected] = round(final_value * 0.9, -1)   # the undiluted first run read low
    rows = append_rows(rows, **_copy(rows, corrected, status=STATUS["C"], value=final_value,
                                     t_result=rows["t_result"][corrected] + 5 * 3600, tag=TAG["correction"]))
    ferritin = np.flatnonzero(rows["analyte"] == A["ferritin"])
    preliminary = ferritin[np.flatnonzero(ep.cal.day_of(rows["t"][ferritin]) == onset + 6)[0]]
    rows["tag"][preliminary] = TAG["final_of_preliminary"]
    rows = append_rows(rows, **_copy(rows, preliminary, status=STATUS["P"], tag=TAG["preliminary"],
                                     value=round(rows["value"][preliminary] * 0.98),
                                     t_result=rows["t_result"][preliminary] - 3600))
    # another patient's specimen: three times this patient's level, so that were the
    # cancellation ignored it would read as a re-rise after CRS
    wrong_at = int(ep.cal.at(resolution_day(ep.course.crs) + 3, 660))
    level = rows["value"][(rows["analyte"] == A["ferritin"]) & (rows["t"] < wrong_at)][-1]
    rows = append_rows(rows, analyte=A["ferritin"], draw=next_draw, panel=PANEL_CODE["chem"], t=wrong_at,
                       t_result=wrong_at + 2 * 3600, value=round(max(3 * level, 1200.0), -1),
                       tag=TAG["withdrawn"])
    return append_rows(rows, analyte=A["ferritin"], draw=next_draw, panel=PANEL_CODE["chem"], t=wrong_at,
                       t_result=wrong_at + 4 * 3600, value=np.nan, status=STATUS["X"], tag=TAG["cancellation"])


def _copy(rows: dict[str, np.ndarray], i: int, **changes) -> dict:
    """Row `i` as a dict, with some columns changed."""
    return {k: v[i] for k, v in rows.items()} | changes


def simulate_labs(ep: Episode, draws: list[Draw], rng: np.random.Generator, first_draw: int,
                  corrections: bool) -> int:
    """Fill ep.labs; returns the next free draw number."""
    rows = lab_rows(ep, draws, rng, first_draw)
    rows["status"] = np.zeros(len(rows["t"]), np.int8)
    rows["tag"] = np.zeros(len(rows["t"]), np.int8)
    next_draw = first_draw + len(draws)
    rows = pin_ferritin(ep, rows, draws, next_draw)
    next_draw += len(ep.course.ferritin.pins)
    if corrections:
        rows = add_corrections(rows, ep, next_draw)
        next_draw += 1
    ep.labs = rows
    return next_draw


def simulate_episode(ep: Episode, rng: np.random.Generator, first_draw: int, corrections: bool) -> int:
    course = ep.course
    if max(course.crs, default=0):
        ep.resolved_at = ep.cal.start(resolution_day(course.crs) + 1)
    draws = lab_draws(course, rng)
    if course.vitals:
        simulate_vitals(ep, draws, rng)
    else:
        ep.vitals = {"t": np.zeros(0, np.int64), "kind": np.zeros(0, int), "value": np.zeros(0)}
    simulate_events(ep, rng)
    return simulate_labs(ep, draws, rng, first_draw, corrections)
