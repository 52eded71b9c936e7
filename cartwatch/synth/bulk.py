"""A large cohort, fast: every patient of a chunk at once in numpy, the CSV feeds written by polars.

    write_cohort(patients=10_000, seed=1, out_dir=Path("var/cohort-10k"), next_day_dir=Path("var/next"))

For benchmarks and load tests (`cartwatch synth --cohort`), not for ground truth: the sample mode
(`cartwatch.synth.generate`) designs each patient, simulates it and has the oracle judge it, about
80,000-190,000 rows/s; this mode draws the same kind of course for all patients of a chunk with
array arithmetic and writes about a million rows a second. Same arguments, same bytes.

Each patient has one infusion, on a day drawn uniformly in `span_days` from `start`, at one of the
sample's sites (time zone, clocks, units, language). The schedule is fixed, so the cohort has the
volume of a heavily monitored CAR-T course: a morning draw of all 18 analytes on days -7 to 35 and
an evening ferritin, CRP, IL-6 and fibrinogen on days 0 to 28 (890 lab rows), a vitals set a day on
days 0 to 17 and a second one on CRS days (about 130 vitals rows). Values follow the sample
generator's model (trajectories.MODEL): a CRS of grade 0-3 seen in the vitals, ferritin that rises
with CRS and falls, and in about 1 in 10 patients with CRS an IEC-HS-like re-rise with falling
fibrinogen and rising transaminases, with anakinra and steroid events. A few results are
corrected later (status C) and low IL-6 values are written censored (`<3.0`).

The files are cut at the as-of moment `as_of` (02:00 in New York on the day after the infusion
window): everything known by then goes to `out_dir` (labs.csv, vitals.csv, infusions.csv,
events.csv, AS_OF, COHORT_INFO: JSON without a feed extension, so an inbox ignores it); with `next_day_dir`, what becomes known in the following 24 hours
(the active patients' next day) goes there as `labs_<date>.csv`, `vitals_<date>.csv`,
`events_<date>.csv`: the file a nightly run would find in its inbox.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time as dtime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

from cartwatch.synth import units
from cartwatch.synth.archetypes import PRODUCTS
from cartwatch.synth.sites import HOME_TIMEZONE, SITES, local_epoch
from cartwatch.synth.trajectories import CAP, MODEL, NOISE_SD, PANEL_CODE, PANELS, TURNAROUND_MIN
from cartwatch.synth.writer import COLUMNS, ISO, PANEL_LETTER, TEST_NAMES, number
from transforms.rules import load_rules

DAY = 86_400
DEFAULT_START = date(2025, 1, 1)
DEFAULT_SPAN_DAYS = 540
CHUNK = 1_000                       # patients generated and written together (bounds memory)
MORNING_DAYS = range(-7, 36)        # all 18 analytes
EVENING_DAYS = range(0, 29)
EVENING = ("ferritin", "crp", "il6", "fibrinogen")
VITAL_DAYS = range(0, 18)
SITE_SHARE = {"NYC": 0.5, "CHI": 0.3, "MAD": 0.2}
UNIT_PROFILE = {"NYC": "canonical", "CHI": "us_alt", "MAD": "si"}
CRS_GRADE_SHARE = (0.3, 0.35, 0.25, 0.1)     # peak grade 0-3
IEC_HS_SHARE = 0.1                           # of patients with CRS
CORRECTED_SHARE = 0.003                      # results re-sent later as a correction
IL6_CENSOR = 3.0                             # IL-6 below this is written "<3.0"
LAB_ANALYTES = units.LAB_ANALYTES
VITAL_KINDS = units.VITAL_KINDS
A = {name: i for i, name in enumerate(LAB_ANALYTES)}
K = {name: i for i, name in enumerate(VITAL_KINDS)}
DEVICE = {name: i for i, name in enumerate(units.O2_DEVICES)}


@dataclass
class CohortInfo:
    """What was written (COHORT_INFO): the parameters, the as-of moments and the rows per file."""

    patients: int
    seed: int
    start: str
    span_days: int
    as_of: str
    next_as_of: str
    files: dict[str, int] = field(default_factory=dict)
    next_day_files: dict[str, int] = field(default_factory=dict)
    active_patients: int = 0
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.files.values())


# --- the fixed schedule ------------------------------------------------------------------------

def _panel_of() -> dict[str, str]:
    return {a: p for p, names in PANELS.items() for a in names}


def lab_template() -> dict[str, np.ndarray]:
    """One patient's lab rows in time order: day, draw number, evening flag, analyte, panel."""
    panel_of, rows, draw = _panel_of(), [], 0
    for day in range(MORNING_DAYS.start, MORNING_DAYS.stop):
        rows += [(day, draw, 0, A[a], PANEL_CODE[panel_of[a]]) for p in PANELS for a in PANELS[p]]
        draw += 1
        if day in EVENING_DAYS:
            rows += [(day, draw, 1, A[a], PANEL_CODE[panel_of[a]]) for a in EVENING]
            draw += 1
    cols = np.array(rows, dtype=np.int64).T
    return dict(zip(("day", "draw", "evening", "analyte", "panel"), cols))


def vitals_template() -> dict[str, np.ndarray]:
    """Two vitals sets a day (the second kept on CRS days only), every kind in each set."""
    rows = [(day, s, K[k]) for day in VITAL_DAYS for s in (0, 1) for k in VITAL_KINDS]
    cols = np.array(rows, dtype=np.int64).T
    return dict(zip(("day", "set", "kind"), cols))


# --- calendars ---------------------------------------------------------------------------------

class Clocks:
    """UTC epoch of local wall-clock 00:00 per site and date, valid for times from 03:00 on
    (after any clock change of the date): wall time m minutes = origin + 60 m, exact on 23- and
    25-hour days too. Every generated time is at 06:00 or later."""

    def __init__(self, first: date, days: int):
        self.first = first
        zones = [s.timezone for s in SITES.values()]
        self.origin = np.array([[local_epoch(tz, datetime.combine(first + timedelta(days=d), dtime(12)))
                                 - 12 * 3600 for d in range(days)] for tz in zones], dtype=np.int64)

    def at(self, site: np.ndarray, day_index: np.ndarray, minute: np.ndarray) -> np.ndarray:
        return self.origin[site, day_index] + minute.astype(np.int64) * 60


# --- patients ----------------------------------------------------------------------------------

@dataclass
class Patients:
    number: np.ndarray
    site: np.ndarray
    product: np.ndarray
    day0: np.ndarray          # infusion date as an index into Clocks
    infused_at: np.ndarray
    grade: np.ndarray         # (n, days): CRS grade per day post-infusion 0..35
    peak: np.ndarray
    onset: np.ndarray
    duration: np.ndarray
    hypoxia: np.ndarray       # grade 2 by oxygen (else by hypotension)
    hlh: np.ndarray
    hlh_onset: np.ndarray
    hlh_severity: np.ndarray
    documented: np.ndarray


def draw_patients(rng: np.random.Generator, numbers: np.ndarray, clocks: Clocks, offset_days: int,
                  span_days: int) -> Patients:
    n = len(numbers)
    site = rng.choice(len(SITES), n, p=list(SITE_SHARE.values()))
    products = list(PRODUCTS.values())
    product = rng.integers(0, len(products), n)
    day0 = offset_days + rng.integers(0, span_days, n)
    infused_at = clocks.at(site, day0, rng.integers(600, 841, n))
    peak = rng.choice(4, n, p=CRS_GRADE_SHARE)
    median = np.array([p.crs_onset_median_day for p in products])[product]
    onset = np.maximum(1, median + rng.integers(-1, 3, n))
    duration = rng.integers(2, 7, n)
    days = np.arange(MORNING_DAYS.stop)
    on = (days >= onset[:, None]) & (days < (onset + duration)[:, None]) & (peak[:, None] > 0)
    grade = np.where(on, np.where(days == onset[:, None], 1, peak[:, None]), 0)
    hlh = (peak > 0) & (rng.random(n) < IEC_HS_SHARE)
    return Patients(numbers, site, product, day0, infused_at, grade, peak, onset, duration,
                    rng.random(n) < 0.5, hlh, onset + duration + rng.integers(2, 7, n),
                    rng.uniform(1.0, 1.6, n), (peak > 0) & (rng.random(n) < 0.3))


def _row_days_since(p: Patients, who: np.ndarray, t: np.ndarray) -> np.ndarray:
    return (t - p.infused_at[who]) / DAY


def _ramp(x: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    return np.clip((x - x0) / (x1 - x0), 0.0, 1.0)


def hlh_level(p: Patients, who: np.ndarray, x: np.ndarray) -> np.ndarray:
    """0 before the IEC-HS onset, 1 from its evening for 5 days, back to 0 over 5 more (x severity)."""
    start = p.hlh_onset[who] - 0.5
    level = np.minimum(_ramp(x, start - 0.75, start + 0.75), 1.0 - _ramp(x, start + 5.0, start + 10.0))
    return np.where(p.hlh[who], level, 0.0)


def ferritin(p: Patients, who: np.ndarray, x: np.ndarray, base: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Baseline, log-linear rise from CRS onset to a peak 1.5 days after mid-CRS, fall with a
    3-day half-life to 1.5 x baseline; IEC-HS adds a re-rise to `shape[:, 1]` x its onset level."""
    b, top, factor = base[who], shape[who, 0], shape[who, 1]
    onset_x = p.onset[who] + 0.5
    peak_x = p.onset[who] + p.duration[who] / 2 + 1.5

    def crs_shape(at: np.ndarray) -> np.ndarray:
        rise = np.exp(np.log(b) + _ramp(at, onset_x, peak_x) * (np.log(top) - np.log(b)))
        fall = 1.5 * b + (top - 1.5 * b) * 0.5 ** ((at - peak_x) / 3.0)
        return np.where(p.peak[who] > 0, np.where(at <= peak_x, rise, fall), b)

    level = crs_shape(x)
    at_onset = crs_shape(p.hlh_onset[who] - 0.5 + np.zeros_like(x))
    return level + (factor - 1.0) * at_onset * hlh_level(p, who, x)


def lab_rows(rng: np.random.Generator, p: Patients, clocks: Clocks) -> dict[str, np.ndarray]:
    tpl, n = lab_template(), len(p.number)
    size = len(tpl["day"])
    who = np.repeat(np.arange(n), size)
    col = {k: np.tile(v, n) for k, v in tpl.items()}
    draws = int(tpl["draw"].max()) + 1
    jitter = rng.integers(0, 41, (n, draws))[who, col["draw"]]
    minute = np.where(col["evening"] == 1, 1080, 360) + jitter
    t = clocks.at(p.site[who], p.day0[who] + col["day"], minute)
    low = np.array([TURNAROUND_MIN[name][0] for name in PANELS])[col["panel"]]
    high = np.array([TURNAROUND_MIN[name][1] for name in PANELS])[col["panel"]]
    t_result = t + 60 * (low + (rng.random((n, draws))[who, col["draw"]] * (high - low)).astype(np.int64))
    x = _row_days_since(p, who, t)
    crs = p.grade[who, np.clip(col["day"], 0, None)] / 3.0 * (col["day"] >= 0)
    hlh = hlh_level(p, who, x) * p.hlh_severity[who]
    ld = np.interp(x, [-4.0, 0.0, 10.0, 17.0], [0.0, 1.0, 1.0, 0.0])
    ld_slow = np.interp(x, [-4.0, 0.0, 15.0, 22.0], [0.0, 1.0, 1.0, 0.0])
    analyte = col["analyte"]
    value = np.empty(len(t))
    for name, ((lo, hi), c_crs, c_hlh, c_ld) in MODEL.items():
        rows = analyte == A[name]
        base = rng.uniform(lo, hi, n)[who[rows]]
        lds = (ld_slow if name in ("platelets", "hemoglobin") else ld)[rows]
        log_v = np.log(base) + c_crs * crs[rows] + c_hlh * hlh[rows] + c_ld * lds
        sd = NOISE_SD.get(name, 0.05)
        value[rows] = np.minimum(np.exp(log_v), CAP.get(name, np.inf)) * _noise(rng, sd, int(rows.sum()))
    # same-draw rows sit at fixed distances in the template: INR = PT / 12, WBC includes ANC
    value[analyte == A["inr"]] = value[analyte == A["pt"]] / 12.0
    value[analyte == A["wbc"]] += value[analyte == A["anc"]]
    rows = analyte == A["ferritin"]
    base = np.exp(rng.normal(np.log(300.0), 0.6, n)).clip(40.0, 1500.0)
    shape = np.column_stack([base * rng.uniform(3.0, 6.0, n) * (1 + p.peak), rng.uniform(3.0, 6.0, n)])
    value[rows] = ferritin(p, who[rows], x[rows], base, shape) * _noise(rng, NOISE_SD["ferritin"], int(rows.sum()))
    return {"who": who, "t": t, "t_result": t_result, "analyte": analyte, "panel": col["panel"],
            "draw": col["draw"], "value": value, "status": np.zeros(len(t), np.int8)}


def _noise(rng: np.random.Generator, sd: float, n: int) -> np.ndarray:
    return np.exp(np.clip(rng.normal(0.0, sd, n), -2 * sd, 2 * sd)) if sd else np.ones(n)


def corrections(rng: np.random.Generator, labs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A few results re-sent 5 hours later with status C and a 10 % different value, after the
    patient's rows (an extract sorted by patient, then by when the row was sent)."""
    pick = np.flatnonzero(rng.random(len(labs["t"])) < CORRECTED_SHARE)
    extra = {k: v[pick].copy() for k, v in labs.items()}
    extra["value"] *= rng.choice([0.9, 1.1], len(pick))
    extra["t_result"] += 5 * 3600
    extra["status"][:] = 1
    out = {k: np.concatenate([labs[k], extra[k]]) for k in labs}
    order = np.lexsort((np.arange(len(out["t"])), out["who"]))
    return {k: v[order] for k, v in out.items()}


def vitals_rows(rng: np.random.Generator, p: Patients, clocks: Clocks) -> dict[str, np.ndarray]:
    tpl, n = vitals_template(), len(p.number)
    size = len(tpl["day"])
    who = np.repeat(np.arange(n), size)
    col = {k: np.tile(v, n) for k, v in tpl.items()}
    sets = int(size // len(VITAL_KINDS))
    set_no = np.tile(np.repeat(np.arange(sets), len(VITAL_KINDS)), n)
    grade = p.grade[who, col["day"]]
    # one random draw per vitals set, shared by its rows
    per_set = lambda values: values[who, set_no]  # noqa: E731
    minute = np.where(col["set"] == 0, 480 + per_set(rng.integers(0, 660, (n, sets))),
                      1260 + per_set(rng.integers(0, 150, (n, sets))))
    fever = grade >= 1
    low_bp = (grade == 2) & ~p.hypoxia[who]
    device = np.where(grade >= 3, DEVICE["high_flow"],
                      np.where((grade == 2) & p.hypoxia[who], DEVICE["nasal_cannula"], DEVICE["room_air"]))
    sbp = np.where(low_bp, per_set(rng.uniform(80, 88, (n, sets))),
                   np.clip(per_set(rng.normal(121, 9, (n, sets))), 104, 148)).round()
    dbp = (sbp * per_set(rng.uniform(0.56, 0.66, (n, sets)))).round()
    readings = {
        "temperature": np.where(fever, per_set(rng.uniform(38.2, 39.6, (n, sets))),
                                np.minimum(per_set(rng.normal(36.9, 0.25, (n, sets))), 37.7)),
        "sbp": sbp, "dbp": dbp, "map": ((sbp + 2 * dbp) / 3).round(),
        "heart_rate": (per_set(rng.normal(80, 7, (n, sets))) + 18 * fever + 12 * low_bp).round(),
        "spo2": np.where(device == DEVICE["room_air"], per_set(rng.integers(94, 100, (n, sets))),
                         per_set(rng.integers(91, 97, (n, sets)))).astype(float),
        "o2_flow": np.select([device == DEVICE["nasal_cannula"], device == DEVICE["high_flow"]],
                             [per_set(rng.integers(2, 5, (n, sets))), per_set(rng.integers(30, 51, (n, sets)))],
                             0).astype(float),
        "o2_device": device.astype(float),
    }
    value = np.choose(col["kind"], [readings[k] for k in VITAL_KINDS])
    keep = ((col["set"] == 0) | (grade >= 1)) & ((col["kind"] != K["o2_flow"]) | (value > 0))
    t = clocks.at(p.site[who], p.day0[who] + col["day"], minute)
    return {"who": who[keep], "t": t[keep], "kind": col["kind"][keep], "value": value[keep]}


def event_rows(p: Patients, clocks: Clocks) -> dict[str, list]:
    """Tocilizumab at the first grade-2 day, dexamethasone at grade 3, daily documented grades
    for some patients, anakinra and dexamethasone through IEC-HS."""
    who, day, minute, kind, value = [], [], [], [], []

    def add(mask: np.ndarray, at_day: np.ndarray, at_minute: int, name: str, text: np.ndarray | str) -> None:
        idx = np.flatnonzero(mask)
        who.append(idx)
        day.append(at_day[idx])
        minute.append(np.full(len(idx), at_minute))
        kind.append(np.full(len(idx), name, dtype=object))
        value.append(text[idx] if isinstance(text, np.ndarray) else np.full(len(idx), text, dtype=object))

    add(p.peak >= 2, p.onset + 1, 600, "tocilizumab", "8 mg/kg")
    add(p.peak >= 3, p.onset + 1, 840, "corticosteroid", "dexamethasone 10 mg")
    for k in range(0, 7):       # documented grade from onset through the first day after CRS
        d = p.onset + k
        grade = p.grade[np.arange(len(p.number)), np.clip(d, 0, p.grade.shape[1] - 1)]
        add(p.documented & (k <= p.duration), d, 555, "crs_grade", grade.astype(str).astype(object))
    for k in range(5):
        add(p.hlh, p.hlh_onset + 1 + k, 600, "anakinra", "100 mg")
    add(p.hlh, p.hlh_onset + 1, 630, "corticosteroid", "dexamethasone 10 mg")
    w = np.concatenate(who)
    t = clocks.at(p.site[w], p.day0[w] + np.concatenate(day), np.concatenate(minute))
    order = np.lexsort((t, w))
    return {"who": w[order], "t": t[order], "event_type": np.concatenate(kind)[order],
            "value": np.concatenate(value)[order]}


# --- text --------------------------------------------------------------------------------------

def _site_table(attr: str) -> list:
    return [getattr(s, attr) for s in SITES.values()]


def _iso_by_site(frame: pl.DataFrame, columns: dict[str, str], clock: str | None) -> pl.DataFrame:
    """Text timestamps (new name -> epoch column) in each row's site zone and clock (the site's
    `clock` attribute, or `offset`), one formatting pass per site."""
    out = [pl.Series(name, [None] * frame.height, dtype=pl.String) for name in columns]
    frame = frame.with_columns(out)
    for i, site in enumerate(SITES.values()):
        mode = getattr(site, clock) if clock else "offset"
        mask = pl.col("site") == i
        exprs = []
        for name, src in columns.items():
            utc = pl.from_epoch(pl.col(src), time_unit="s").dt.replace_time_zone("UTC")
            text = (utc.dt.to_string(ISO + "Z") if mode == "utc" else
                    utc.dt.convert_time_zone(site.timezone).dt.to_string(ISO if mode == "naive" else ISO + "%:z"))
            exprs.append(pl.when(mask).then(text).otherwise(pl.col(name)).alias(name))
        frame = frame.with_columns(exprs)
    return frame


def _lookup(codes: pl.Expr, table: list) -> pl.Expr:
    return codes.replace_strict(list(range(len(table))), table, return_dtype=pl.String)


def _patient_id(number: pl.Expr) -> pl.Expr:
    return pl.concat_str([pl.lit("CW-"), number.cast(pl.String).str.zfill(5)])


def _written(site: np.ndarray, names: tuple[str, ...], index: np.ndarray, values: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values in each site's unit profile: written value, decimals, unit code."""
    written, decimals, unit = np.empty(len(values)), np.empty(len(values), np.int8), np.empty(len(values), np.int16)
    for i, code in enumerate(SITES):
        rows = site == i
        written[rows], decimals[rows], unit[rows], _ = units.write(UNIT_PROFILE[code], names, index[rows], values[rows])
    return written, decimals, unit


def labs_frame(labs: dict[str, np.ndarray], p: Patients) -> pl.DataFrame:
    rules = load_rules()
    site = p.site[labs["who"]]
    written, decimals, unit = _written(site, LAB_ANALYTES, labs["analyte"], labs["value"])
    sends = np.array(_site_table("sends_ranges"))[site]
    ranges = {}
    for end in ("low", "high"):
        default = np.array([getattr(rules.analyte(a), f"default_{end}") for a in LAB_ANALYTES])[labs["analyte"]]
        sent = np.where(sends & (default > 0), default, np.nan)   # a "< x" range has no lower limit
        ranges[end] = _written(site, LAB_ANALYTES, labs["analyte"], sent)[0]
    censored = (labs["analyte"] == A["il6"]) & (written < IL6_CENSOR)
    loinc = [rules.analyte(a).loinc[0] for a in LAB_ANALYTES]
    language = np.array([list(TEST_NAMES).index(s.language) for s in SITES.values()])[site]
    names = [name for table in TEST_NAMES.values() for name in table]
    frame = pl.DataFrame({
        "number": p.number[labs["who"]], "site": site, "t": labs["t"], "t_result": labs["t_result"],
        "analyte": labs["analyte"], "written": written, "decimals": decimals, "unit": unit,
        "low": ranges["low"], "high": ranges["high"], "status": labs["status"], "draw": labs["draw"],
        "panel": labs["panel"], "censored": censored,
        "name": language * len(LAB_ANALYTES) + labs["analyte"]})
    frame = _iso_by_site(frame, {"collected_at": "t", "resulted_at": "t_result"}, "lab_clock")
    value = number(pl.col("written"), pl.col("decimals"))
    return frame.select(
        _patient_id(pl.col("number")).alias("patient_id"), "collected_at",
        _lookup(pl.col("analyte"), loinc).alias("loinc"),
        pl.when(pl.col("censored")).then(pl.lit(f"<{IL6_CENSOR:.1f}")).otherwise(value).alias("value"),
        _lookup(pl.col("unit"), list(units.unit_names())).alias("unit"),
        _lookup(pl.col("name"), names).alias("test_name"),
        number(pl.col("low"), pl.col("decimals")).alias("ref_low"),
        number(pl.col("high"), pl.col("decimals")).alias("ref_high"),
        "resulted_at",
        _lookup(pl.col("status"), ["F", "C"]).alias("result_status"),
        pl.concat_str([_lookup(pl.col("site"), list(SITES)), pl.col("number").cast(pl.String).str.zfill(5),
                       pl.lit("-"), pl.col("draw").cast(pl.String).str.zfill(3),
                       _lookup(pl.col("panel"), [PANEL_LETTER[i] for i in range(len(PANELS))])]).alias("accession"),
        _lookup(pl.col("site"), _site_table("lab_system")).alias("source_system"),
        pl.col("t_result").alias("_known"))


def vitals_frame(vitals: dict[str, np.ndarray], p: Patients) -> pl.DataFrame:
    site = p.site[vitals["who"]]
    written, decimals, unit = _written(site, VITAL_KINDS, vitals["kind"], vitals["value"])
    frame = pl.DataFrame({"number": p.number[vitals["who"]], "site": site, "t": vitals["t"],
                          "kind": vitals["kind"], "written": written, "decimals": decimals, "unit": unit})
    frame = _iso_by_site(frame, {"measured_at": "t"}, "vitals_clock")
    device = pl.col("kind") == K["o2_device"]
    return frame.select(
        _patient_id(pl.col("number")).alias("patient_id"), "measured_at",
        _lookup(pl.col("kind"), list(VITAL_KINDS)).alias("kind"),
        pl.when(device).then(_lookup(pl.col("written").cast(pl.Int64), list(units.O2_DEVICES)))
        .otherwise(number(pl.col("written"), pl.col("decimals"))).alias("value"),
        pl.when(device).then(pl.lit(None, pl.String))
        .otherwise(_lookup(pl.col("unit"), list(units.unit_names()))).alias("unit"),
        pl.col("t").alias("_known"))


def events_frame(events: dict, p: Patients) -> pl.DataFrame:
    frame = pl.DataFrame({"number": p.number[events["who"]], "site": p.site[events["who"]], "t": events["t"],
                          "event_type": events["event_type"].astype(str), "value": events["value"].astype(str)})
    frame = _iso_by_site(frame, {"event_at": "t"}, None)
    return frame.select(_patient_id(pl.col("number")).alias("patient_id"), "event_at", "event_type", "value",
                        pl.col("t").alias("_known"))


def infusions_frame(p: Patients) -> pl.DataFrame:
    products = list(PRODUCTS.values())
    frame = pl.DataFrame({"number": p.number, "site": p.site, "t": p.infused_at, "product": p.product})
    frame = _iso_by_site(frame, {"infused_at": "t"}, None)
    pid = _patient_id(pl.col("number"))
    return frame.select(
        pid.alias("patient_id"), "infused_at",
        _lookup(pl.col("product"), [x.name for x in products]).alias("product"),
        pl.concat_str([pid, pl.lit("-I1")]).alias("infusion_id"),
        _lookup(pl.col("product"), [x.target_antigen for x in products]).alias("target_antigen"),
        _lookup(pl.col("product"), [x.indication for x in products]).alias("indication"),
        _lookup(pl.col("site"), _site_table("timezone")).alias("site_timezone"),
        pl.col("t").alias("_known"))


# --- writing -----------------------------------------------------------------------------------

def _epoch(d: date) -> int:
    return local_epoch(HOME_TIMEZONE, datetime.combine(d, dtime(2)))


def _text(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime(ISO + "Z")


class _Sink:
    """One CSV file written chunk by chunk (header once)."""

    def __init__(self, path: Path, feed: str):
        self.path, self.feed, self.rows, self.handle = path, feed, 0, None

    def write(self, frame: pl.DataFrame) -> None:
        if self.handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = open(self.path, "wb")
        frame.select(COLUMNS[self.feed]).write_csv(self.handle, include_header=self.handle.tell() == 0,
                                                   line_terminator="\n", null_value="")
        self.rows += frame.height

    def close(self) -> None:
        if self.handle is None:     # no rows at all: a header-only file
            self.path.parent.mkdir(parents=True, exist_ok=True)
            pl.DataFrame(schema={c: pl.String for c in COLUMNS[self.feed]}).write_csv(self.path)
        else:
            self.handle.close()


def write_cohort(patients: int, seed: int, out_dir: Path, next_day_dir: Path | None = None,
                 start: date = DEFAULT_START, span_days: int = DEFAULT_SPAN_DAYS) -> CohortInfo:
    """Write the cohort's CSV feeds (and the next day's, with `next_day_dir`); see the module doc."""
    import time

    started = time.perf_counter()
    out_dir = Path(out_dir)
    end = start + timedelta(days=span_days)
    as_of, next_as_of = _epoch(end), _epoch(end + timedelta(days=1))
    first = start - timedelta(days=10)
    clocks = Clocks(first, span_days + 60)
    history = {feed: _Sink(out_dir / f"{feed}.csv", feed) for feed in COLUMNS}
    label = end.isoformat()
    upcoming = {feed: _Sink(Path(next_day_dir) / f"{feed}_{label}.csv", feed)
                for feed in ("labs", "vitals", "events")} if next_day_dir else {}
    active = 0
    for chunk_start in range(0, patients, CHUNK):
        rng = np.random.default_rng([seed, chunk_start // CHUNK])
        numbers = np.arange(chunk_start + 1, min(patients, chunk_start + CHUNK) + 1)
        p = draw_patients(rng, numbers, clocks, (start - first).days, span_days)
        frames = {"infusions": infusions_frame(p),
                  "labs": labs_frame(corrections(rng, lab_rows(rng, p, clocks)), p),
                  "vitals": vitals_frame(vitals_rows(rng, p, clocks), p),
                  "events": events_frame(event_rows(p, clocks), p)}
        for feed, frame in frames.items():
            history[feed].write(frame.filter(pl.col("_known") <= as_of))
            if feed in upcoming:
                new = frame.filter((pl.col("_known") > as_of) & (pl.col("_known") <= next_as_of))
                upcoming[feed].write(new)
                if feed == "labs":
                    active += new["patient_id"].n_unique()
    for sink in (*history.values(), *upcoming.values()):
        sink.close()
    info = CohortInfo(patients, seed, start.isoformat(), span_days, _text(as_of), _text(next_as_of),
                      {f"{feed}.csv": s.rows for feed, s in history.items()},
                      {s.path.name: s.rows for s in upcoming.values()}, active)
    info.seconds = round(time.perf_counter() - started, 3)
    (out_dir / "AS_OF").write_text(info.as_of + "\n", encoding="utf-8")
    (out_dir / "COHORT_INFO").write_text(json.dumps(asdict(info), indent=2) + "\n", encoding="utf-8")
    return info
