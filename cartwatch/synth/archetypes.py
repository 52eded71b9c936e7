"""The archetypes: one designed clinical course per synthetic patient, and the cohort roster.

A builder draws a patient's design (product, site, CRS grade per day, ferritin shape, IEC-HS phase,
data-quality actions) from a random generator. The design states an *intent*; the expected flags
written to the ground truth are not taken from it but computed from the generated values by
`oracle.py`, with the numbers of the rules file. Numbers in this module are simulation parameters
(how sick, how fast), never clinical thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Callable

import numpy as np

from cartwatch.synth.sites import SITES, Site, next_offset_change


@dataclass(frozen=True)
class Product:
    name: str
    target_antigen: str
    indication: str
    crs_onset_median_day: int   # clinical-rules.md §2, typical timing (sample realism, not a rule)


PRODUCTS = {
    "axi-cel": Product("axi-cel", "CD19", "DLBCL", 2),
    "tisa-cel": Product("tisa-cel", "CD19", "DLBCL", 3),
    "liso-cel": Product("liso-cel", "CD19", "DLBCL", 5),
    "cilta-cel": Product("cilta-cel", "BCMA", "MM", 7),
}


@dataclass(frozen=True)
class Pin:
    """An exact ferritin value (ng/mL, no noise) at an exact time: the hard cases' boundaries.

    Where: the regular draw of `day`; or, with `minute`, an extra draw at that local clock time of
    `day`; or an extra draw `after_resolution_h` hours after CRS resolution (elapsed time).
    """

    value: float
    day: int | None = None
    minute: int | None = None
    after_resolution_h: float | None = None


@dataclass(frozen=True)
class Ferritin:
    """Ferritin shape (ng/mL): flat baseline, log-linear rise from CRS onset to a peak that lags
    the CRS peak, exponential fall towards a floor, plus the IEC-HS re-rise of `Hlh`."""

    baseline: float
    peak: float = 0.0
    peak_lag_days: float = 1.5
    peak_after_resolution_h: float | None = None   # put the peak exactly here instead
    half_life_days: float = 3.0
    floor: float = 0.0
    drift: float = 0.0            # without CRS: relative change over the follow-up
    pins: tuple[Pin, ...] = ()


@dataclass(frozen=True)
class Hlh:
    """The IEC-HS phase: a re-rise of ferritin with coagulopathy, transaminitis, cytopenias."""

    onset_day: int              # designed start; the flagged onset day is the oracle's
    duration_days: float = 6.0
    severity: float = 1.0       # scales organ and coagulation effects; 0 = ferritin only
    ferritin_factor: float = 4.0  # plateau as a multiple of the ferritin level at onset
    ferritin_plateau: float | None = None   # or this plateau (ng/mL)


@dataclass(frozen=True)
class Course:
    """One infusion episode as designed. Grades are per local day post-infusion from day 0."""

    product: Product
    ferritin: Ferritin
    crs: tuple[int, ...] = ()
    afebrile_from: int | None = None    # CRS days from here on have no fever (after tocilizumab)
    grade2_by: str = "hypoxia"          # or "hypotension"
    grade3_by: str = "high_flow"        # or "vasopressor"
    documented: bool = False            # daily crs_grade events from onset to resolution
    vitals: bool = True
    hlh: Hlh | None = None
    counts_recover_day: float = 14.0
    baseline_overrides: tuple[tuple[str, float], ...] = ()
    follow_up_days: int = 28
    extra_visits: tuple[int, ...] = ()     # outpatient visit days after the follow-up
    sparse_every: tuple[int, int] | None = None   # labs every n-m days instead of daily
    escalation_slot: int | None = None  # vitals slot where a rising grade first shows
    draw_minutes: tuple[tuple[int, int], ...] = ()   # (day, local minute) of exactly timed draws
    icans: tuple[tuple[int, int], ...] = ()       # (day, grade)

    def grade(self, day: int) -> int:
        return self.crs[day] if 0 <= day < len(self.crs) else 0

    @property
    def last_day(self) -> int:
        return max((self.follow_up_days, *self.extra_visits))


@dataclass(frozen=True)
class Design:
    """A patient as designed: archetype, site, episodes and what the feeds will do to the data."""

    archetype: str
    site: Site
    episodes: tuple[Course, ...]
    intent: str
    gap_days: int = 0                  # the second infusion, this many days after the first
    units: str = "canonical"           # unit profile (units.py)
    quality: tuple[str, ...] = ()      # data-quality actions (trajectories.py, dataquality.py)
    dst: bool = False                  # infuse so that a clock change falls inside the course
    expect: tuple[frozenset[str], ...] = ()   # statuses the intent allows, per episode (() = any)
    late: bool = False                 # the intent is a late onset (day >= 29)


@dataclass(frozen=True)
class Patient:
    patient_id: str
    number: int
    design: Design
    infusion_days: tuple[date, ...]
    infusion_minutes: tuple[int, ...]   # local clock time of each infusion
    seed: int = 0


NONE, CRS_ONLY = frozenset({"none"}), frozenset({"none", "watch"})
SUSPECTED, MET = frozenset({"suspected"}), frozenset({"criteria_met"})


# --- building blocks ---------------------------------------------------------------------------

def crs_grades(onset: int, peak: int, days_at_peak: int, tail: int = 0) -> tuple[tuple[int, ...], int | None]:
    """A CRS course: grade 1 on onset day, up to `peak`, then `tail` afebrile days at grade 2
    (still on oxygen after tocilizumab stopped the fever), then grade 0.

    Returns the grades from day 0 and the first afebrile CRS day. Fever is contiguous from onset:
    a febrile day after an afebrile one would read as re-escalation (clinical-rules.md §2).
    """
    rise = [1] + list(range(2, peak))
    grades = [0] * onset + rise + [peak] * days_at_peak + [2] * (tail if peak >= 2 else 0)
    afebrile = onset + len(rise) + days_at_peak if tail and peak >= 2 else None
    return tuple(grades + [0]), afebrile


def onset_day(rng: np.random.Generator, product: Product) -> int:
    return max(1, product.crs_onset_median_day + int(rng.integers(-1, 2)))


def resolution_day(grades: tuple[int, ...]) -> int:
    """The first grade-0 day after onset (resolution is at its end)."""
    onset = next(d for d, g in enumerate(grades) if g >= 1)
    return next(d for d in range(onset + 1, len(grades) + 1) if d >= len(grades) or grades[d] == 0)


def _crs(rng, product: Product, peak: int) -> tuple[tuple[int, ...], int | None]:
    tail = int(rng.integers(0, 3)) if peak >= 2 else 0
    return crs_grades(onset_day(rng, product), peak, int(rng.integers(1, 3)), tail)


def _u(rng, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _product(rng, *names: str) -> Product:
    return PRODUCTS[names[int(rng.integers(len(names)))]]


def _site(rng, *codes: str) -> Site:
    codes = codes or tuple(SITES)
    return SITES[codes[int(rng.integers(len(codes)))]]


# --- clinical archetypes -----------------------------------------------------------------------
# Baselines stay below ULN (with noise) except in pre_infusion_hyperferritinemia, so that only
# that archetype is judged against its baseline.

def classic_post_crs_iec_hs(rng, product=None, site=None, peak=None, **kw) -> Design:
    product = product or _product(rng, *PRODUCTS)
    grades, afebrile = _crs(rng, product, peak or int(rng.integers(1, 4)))
    # after the ferritin window (resolution + 48 h) has closed: a re-rise inside it is read
    # differently depending on whether the judged result counts towards the peak (oracle.py)
    hlh_day = resolution_day(grades) + int(rng.integers(3, 6))
    ferritin = Ferritin(baseline=_u(rng, 150, 340), peak=_u(rng, 5000, 15000),
                        peak_lag_days=_u(rng, 1.0, 2.0), half_life_days=_u(rng, 2.0, 3.0),
                        floor=_u(rng, 500, 900))
    course = Course(product, ferritin, grades, afebrile, hlh=Hlh(hlh_day, _u(rng, 5, 9), _u(rng, 1.1, 1.5),
                                                                 _u(rng, 3.5, 6.0)),
                    follow_up_days=hlh_day + 10, **kw)
    return Design("classic_post_crs_iec_hs", site or _site(rng), (course,),
                  f"CRS grade {max(grades)} resolves; ferritin peaks with CRS, falls, then re-rises "
                  "with hypofibrinogenemia and transaminitis: IEC-HS", expect=(MET,))


def crs_only_high_ferritin(rng, product=None, site=None, peak=None, **kw) -> Design:
    product = product or _product(rng, *PRODUCTS)
    grades, afebrile = _crs(rng, product, peak or int(rng.integers(1, 4)))
    ferritin = Ferritin(baseline=_u(rng, 150, 340), peak=_u(rng, 2500, 14000),
                        peak_lag_days=_u(rng, 1.0, 2.0), half_life_days=_u(rng, 2.0, 4.0),
                        floor=_u(rng, 250, 600))
    course = Course(product, ferritin, grades, afebrile, follow_up_days=24, **kw)
    return Design("crs_only_high_ferritin", site or _site(rng), (course,),
                  f"CRS grade {max(grades)} with high ferritin that only falls afterwards",
                  expect=(CRS_ONLY,))


def no_crs(rng, product=None, site=None, **kw) -> Design:
    product = product or _product(rng, "liso-cel", "tisa-cel", "cilta-cel")
    ferritin = Ferritin(baseline=_u(rng, 80, 350), drift=_u(rng, -0.2, 0.3))
    course = Course(product, ferritin, (0,), follow_up_days=24, **kw)
    return Design("no_crs", site or _site(rng), (course,), "no CRS, ferritin in the normal range", expect=(NONE,))


def late_onset(rng, product=None, site=None, **kw) -> Design:
    product = product or PRODUCTS["cilta-cel"]
    grades, afebrile = crs_grades(onset_day(rng, product), 2, 2, 5)   # a week on low-flow oxygen
    hlh_day = int(rng.integers(33, 38))
    ferritin = Ferritin(baseline=_u(rng, 150, 340), peak=_u(rng, 6000, 9000), peak_lag_days=2.0,
                        half_life_days=_u(rng, 4.0, 5.0), floor=_u(rng, 350, 600))
    course = Course(product, ferritin, grades, afebrile,
                    hlh=Hlh(hlh_day, 8.0, _u(rng, 1.2, 1.5), _u(rng, 3.5, 5.0)),
                    counts_recover_day=24.0, follow_up_days=hlh_day + 10, **kw)
    return Design("late_onset", site or _site(rng), (course,),
                  f"prolonged {product.name} CRS, then an IEC-HS re-rise after day 28 (late onset)",
                  expect=(MET,), late=True)


def pre_infusion_hyperferritinemia(rng, product=None, site=None, flagged=None, **kw) -> Design:
    """Malignancy-associated hyperferritinemia before infusion: judged against baseline.

    flagged=False: the post-CRS re-rise doubles the nadir but stays under 2 x baseline (none);
    flagged=True: it exceeds 2 x baseline, with coagulopathy (criteria met against baseline).
    """
    product = product or _product(rng, *PRODUCTS)
    flagged = bool(rng.integers(2)) if flagged is None else flagged
    baseline = _u(rng, 2600, 3600)
    grades, afebrile = _crs(rng, product, 2 if flagged else 1)
    if flagged:
        hlh_day = resolution_day(grades) + int(rng.integers(3, 6))
        ferritin = Ferritin(baseline=baseline, peak=baseline * _u(rng, 2.7, 3.2),
                            half_life_days=_u(rng, 2.0, 3.0), floor=baseline * _u(rng, 0.6, 0.7))
        hlh = Hlh(hlh_day, 7.0, _u(rng, 1.2, 1.5), _u(rng, 3.5, 4.5))
    else:   # a deep nadir, then a plateau well above twice it but below twice the baseline
        hlh_day = resolution_day(grades) + int(rng.integers(5, 8))
        ferritin = Ferritin(baseline=baseline, peak=baseline * _u(rng, 1.5, 1.8),
                            half_life_days=_u(rng, 1.5, 2.0), floor=baseline * 0.5)
        hlh = Hlh(hlh_day, 5.0, 0.0, ferritin_plateau=baseline * _u(rng, 1.7, 1.8))
    overrides = (("ast", 62.0), ("ldh", 480.0), ("platelets", 118.0), ("hemoglobin", 10.1),
                 ("triglycerides", 210.0))
    course = Course(product, ferritin, grades, afebrile, hlh=hlh, baseline_overrides=overrides,
                    follow_up_days=hlh_day + 12, **kw)
    tail = ("exceeds 2 x baseline with hypofibrinogenemia: IEC-HS against baseline" if flagged
            else "doubles its nadir but stays below 2 x baseline, without organ involvement")
    return Design("pre_infusion_hyperferritinemia", site or _site(rng), (course,),
                  "baseline ferritin far above ULN before infusion (malignancy-associated "
                  f"hyperferritinemia); after CRS the ferritin {tail}", expect=(MET if flagged else NONE,))


# --- unit and data-quality archetypes: a clinical picture plus what the feed does to it ----------

def non_canonical_units(rng, units=None, **kw) -> Design:
    units = units or ("si" if rng.integers(2) else "us_alt")
    base = (classic_post_crs_iec_hs(rng, **kw) if units == "si" else crs_only_high_ferritin(rng, **kw))
    site = SITES["MAD"] if units == "si" else SITES["CHI"]
    what = ("SI units: fibrinogen and hemoglobin in g/L, bilirubin and creatinine in umol/L, AST/ALT "
            "in ukat/L, ferritin in ug/L" if units == "si" else
            "US alternative units: temperature in [degF], platelets in /uL, ANC and WBC in 10^3/uL")
    return replace(base, archetype="non_canonical_units", site=site, units=units,
                   intent=f"{base.intent}; results in {what}, which must convert to the same picture")


def corrections_and_cancellations(rng, **kw) -> Design:
    base = crs_only_high_ferritin(rng, peak=2, **kw)
    return replace(base, archetype="corrections_and_cancellations", quality=("corrections",),
                   intent=f"{base.intent}; a ferritin corrected (F then C), a preliminary replaced by "
                          "its final (P then F), and a wrong-patient ferritin at three times the current "
                          "level cancelled (F then X): were the cancellation ignored, it would read as a "
                          "post-CRS re-rise (suspected or worse)")


def duplicates(rng, **kw) -> Design:
    base = crs_only_high_ferritin(rng, peak=1, **kw)
    return replace(base, archetype="duplicates", quality=("duplicates",),
                   intent=f"{base.intent}; an interface re-sends a batch of labs and a vitals set "
                          "within the files, and all the patient's labs again in labs_resend.csv")


def malformed_rows(rng, product=None, site=None, **kw) -> Design:
    product = product or PRODUCTS["liso-cel"]
    grades, _ = crs_grades(onset_day(rng, product), 1, 2)
    onset = grades.index(1)
    ferritin = Ferritin(baseline=_u(rng, 200, 300), peak=1150.0, half_life_days=3.0, floor=300.0,
                        pins=(Pin(1250.0, day=onset + 2), Pin(980.0, day=onset + 5)))
    course = Course(product, ferritin, grades, follow_up_days=21, **kw)
    return Design("malformed_rows", site or SITES["NYC"], (course,),
                  "CRS grade 1 with ferritin to 1,250 ng/mL; its lab feed carries one unusable row "
                  "per quarantine reason, plus two odd but valid ones (a quoted '1,250' and a "
                  "ferritin in mg/L)", quality=("malformed",), expect=(NONE,))


# --- hard cases ----------------------------------------------------------------------------------

def hard_ferritin_lag_boundary(rng, product=None, site=None, **kw) -> Design:
    """Ferritin still rising after CRS resolution; its peak is exactly at resolution + 48 h."""
    product = product or PRODUCTS["liso-cel"]
    grades, _ = crs_grades(onset_day(rng, product), 2, 1)
    resolved = resolution_day(grades)
    peak = float(round(_u(rng, 3800, 4400), -1))
    ferritin = Ferritin(baseline=_u(rng, 200, 350), peak=peak, peak_after_resolution_h=48.0,
                        half_life_days=4.0, floor=400.0,
                        pins=(Pin(round(peak * 0.8, -1), day=resolved + 2), Pin(peak, after_resolution_h=48.0),
                              Pin(round(peak * 0.93, -1), day=resolved + 3)))
    course = Course(product, ferritin, grades, follow_up_days=24, **kw)
    return Design("hard_ferritin_lag_boundary", site or SITES["CHI"], (course,),
                  "ferritin keeps rising after CRS resolves and peaks at a midnight draw exactly "
                  "48 h after resolution: still CRS-phase (the window is inclusive), so not a new high",
                  expect=(NONE,))


def hard_rapid_rise_exactly_100(rng, product=None, site=None, **kw) -> Design:
    """A post-CRS rise of exactly 100 ng/mL per hour over 12 h, nothing else: suspected."""
    product = product or PRODUCTS["axi-cel"]
    grades, afebrile = crs_grades(onset_day(rng, product), 2, 1, 1)
    ferritin = Ferritin(baseline=_u(rng, 200, 320), peak=_u(rng, 4500, 5200), half_life_days=1.5,
                        floor=1650.0, pins=(Pin(1500.0, day=16), Pin(2700.0, day=16, minute=18 * 60)))
    course = Course(product, ferritin, grades, afebrile, counts_recover_day=9.0, follow_up_days=24,
                    draw_minutes=((16, 6 * 60),), **kw)
    return Design("hard_rapid_rise_exactly_100", site or SITES["MAD"], (course,),
                  "after CRS, ferritin 1,500 at 06:00 and 2,700 at 18:00 on day 16: exactly "
                  "100 ng/mL/h, which counts (>=); no re-rise (< 2 x nadir), no new high, counts "
                  "recovered and no manifestation: suspected, not criteria met", expect=(SUSPECTED,))


def hard_ferritin_exactly_2x_uln(rng, product=None, site=None, **kw) -> Design:
    product = product or PRODUCTS["liso-cel"]
    ferritin = Ferritin(baseline=_u(rng, 180, 260), drift=0.2, pins=(Pin(800.0, day=17, minute=9 * 60 + 30),))
    course = Course(product, ferritin, (0,), follow_up_days=24, **kw)
    return Design("hard_ferritin_exactly_2x_uln", site or SITES["NYC"], (course,),
                  "no CRS; an add-on ferritin of exactly 800 ng/mL (2 x ULN 400) on day 17, more "
                  "than twice its nadir: not elevated because > is strict", expect=(NONE,))


def hard_crs_re_escalation(rng, product=None, site=None, **kw) -> Design:
    """CRS improves on day 4, re-escalates on day 5 with a ferritin jump: the second timing path."""
    product = product or PRODUCTS["axi-cel"]
    grades = (0, 1, 2, 2, 1, 2, 2, 1, 0)
    pins = (Pin(2600.0, day=2), Pin(4000.0, day=3), Pin(2400.0, day=4), Pin(5200.0, day=5), Pin(4300.0, day=6))
    ferritin = Ferritin(baseline=_u(rng, 200, 350), peak=5200.0, peak_lag_days=-0.5,
                        half_life_days=2.5, floor=500.0, pins=pins)
    course = Course(product, ferritin, grades, hlh=Hlh(5, 3.0, 1.7, 0.0), escalation_slot=0,
                    draw_minutes=((4, 6 * 60), (5, 6 * 60)), follow_up_days=21, **kw)
    return Design("hard_crs_re_escalation", site or SITES["CHI"], (course,),
                  "CRS grade 2 improves to 1 on day 4 and re-escalates to 2 on day 5 (oxygen from "
                  "00:xx); ferritin jumps 2,400 -> 5,200 that morning with fibrinogen and AST "
                  "abnormal: IEC-HS through the worsening-after-improvement path, within 48 h of improvement",
                  expect=(MET,))


def hard_sparse_labs(rng, product=None, site=None, **kw) -> Design:
    base = classic_post_crs_iec_hs(rng, product=product or PRODUCTS["tisa-cel"], peak=2,
                                   site=site or SITES["MAD"], sparse_every=(3, 4), **kw)
    return replace(base, archetype="hard_sparse_labs",
                   intent=f"{base.intent}; labs only every 3-4 days, so no rapid-rise rate can be "
                          "measured and the flag comes at the first draw that shows the re-rise")


def hard_no_vitals(rng, product=None, site=None, **kw) -> Design:
    base = crs_only_high_ferritin(rng, product=product or PRODUCTS["tisa-cel"], peak=2,
                                  site=site or SITES["NYC"], vitals=False, documented=True, **kw)
    return replace(base, archetype="hard_no_vitals",
                   intent=f"{base.intent}; no vitals at all (transferred in): the CRS course comes "
                          "only from documented daily crs_grade assessments")


def hard_reinfusion(rng, site=None, **kw) -> Design:
    first = crs_only_high_ferritin(rng, product=PRODUCTS["tisa-cel"], peak=1).episodes[0]
    first = replace(first, follow_up_days=30, extra_visits=(45, 60))
    second = classic_post_crs_iec_hs(rng, product=PRODUCTS["axi-cel"], peak=2).episodes[0]
    return Design("hard_reinfusion", site or SITES["CHI"], (first, second),
                  "tisa-cel with CRS grade 1 and no IEC-HS; re-infused with axi-cel 72 days later: "
                  "a new episode with its own baseline, CRS and an IEC-HS counted from the second infusion",
                  gap_days=72, expect=(CRS_ONLY, MET))


Builder = Callable[..., Design]
ARCHETYPES: dict[str, Builder] = {f.__name__: f for f in (
    classic_post_crs_iec_hs, crs_only_high_ferritin, no_crs, late_onset,
    pre_infusion_hyperferritinemia, non_canonical_units, corrections_and_cancellations, duplicates,
    malformed_rows, hard_ferritin_lag_boundary, hard_rapid_rise_exactly_100,
    hard_ferritin_exactly_2x_uln, hard_crs_re_escalation, hard_sparse_labs, hard_no_vitals,
    hard_reinfusion)}

# The small cohort: every archetype at least once, in this order, then random fills.
P, S = PRODUCTS, SITES
CORE_ROSTER: tuple[tuple[str, dict], ...] = (
    ("classic_post_crs_iec_hs", dict(product=P["axi-cel"], site=S["NYC"], peak=2, icans=((5, 1), (6, 1)))),
    ("classic_post_crs_iec_hs", dict(product=P["tisa-cel"], site=S["MAD"], peak=3, grade3_by="vasopressor")),
    ("classic_post_crs_iec_hs", dict(product=P["liso-cel"], site=S["CHI"], peak=1, documented=True)),
    ("crs_only_high_ferritin", dict(product=P["axi-cel"], site=S["NYC"], peak=2, grade2_by="hypotension")),
    ("crs_only_high_ferritin", dict(product=P["cilta-cel"], site=S["CHI"], peak=1)),
    ("crs_only_high_ferritin", dict(product=P["tisa-cel"], site=S["MAD"], peak=3)),
    ("no_crs", dict(product=P["liso-cel"], site=S["NYC"])),
    ("no_crs", dict(product=P["tisa-cel"], site=S["CHI"])),
    ("no_crs", dict(product=P["cilta-cel"], site=S["MAD"])),
    ("late_onset", dict(site=S["CHI"])),
    ("pre_infusion_hyperferritinemia", dict(product=P["axi-cel"], site=S["NYC"], flagged=False)),
    ("pre_infusion_hyperferritinemia", dict(product=P["tisa-cel"], site=S["MAD"], flagged=True)),
    ("non_canonical_units", dict(units="si", product=P["axi-cel"])),
    ("non_canonical_units", dict(units="us_alt", product=P["liso-cel"])),
    ("corrections_and_cancellations", dict(product=P["axi-cel"], site=S["NYC"])),
    ("duplicates", dict(product=P["tisa-cel"], site=S["CHI"])),
    ("malformed_rows", dict()),
    ("hard_ferritin_lag_boundary", dict()),
    ("hard_rapid_rise_exactly_100", dict()),
    ("hard_ferritin_exactly_2x_uln", dict()),
    ("hard_crs_re_escalation", dict()),
    ("hard_sparse_labs", dict()),
    ("hard_no_vitals", dict()),
    ("hard_reinfusion", dict()),
)
# Patients whose course must cross a clock change (CORE_ROSTER index -> True).
DST_CORE = {1: True, 7: True}

# Random fills: mostly clinical archetypes; the large cohort also repeats the rarer ones.
FILL_WEIGHTS = {"classic_post_crs_iec_hs": 3, "crs_only_high_ferritin": 5, "no_crs": 6, "late_onset": 1,
                "pre_infusion_hyperferritinemia": 1, "non_canonical_units": 1,
                "corrections_and_cancellations": 0.5, "duplicates": 0.5, "malformed_rows": 0.3,
                "hard_ferritin_lag_boundary": 0.2, "hard_rapid_rise_exactly_100": 0.2,
                "hard_ferritin_exactly_2x_uln": 0.2, "hard_crs_re_escalation": 0.2,
                "hard_sparse_labs": 0.3, "hard_no_vitals": 0.3, "hard_reinfusion": 0.2}

ENROLMENT_DAYS = 136     # infusions fall within this many days of the start date
HORIZON_DAYS = 174       # and every result before start + this (the sample's "now", AS_OF)


def roster(patients: int, seed: int) -> list[tuple[str, dict, bool]]:
    """(archetype, builder arguments, must cross a clock change) for each patient, in id order."""
    picks = [(name, kwargs, DST_CORE.get(i, False)) for i, (name, kwargs) in enumerate(CORE_ROSTER)]
    rng = np.random.default_rng([seed, 0])
    names = list(FILL_WEIGHTS)
    weights = np.array([FILL_WEIGHTS[n] for n in names]) / sum(FILL_WEIGHTS.values())
    fills = rng.choice(len(names), size=max(0, patients - len(picks)), p=weights)
    picks += [(names[i], {}, False) for i in fills]
    return picks[:patients]


def course_span_days(design: Design) -> int:
    """Days from the first infusion to the last observation."""
    return design.gap_days + design.episodes[-1].last_day + 1


def infusion_days(design: Design, slot: float, start: date, dst: bool) -> tuple[date, ...]:
    """Infusion dates: spread over the enrolment period, ending before the horizon; a `dst`
    patient is infused 12-16 days before the first clock change a month after the start."""
    span = course_span_days(design)
    latest = min(ENROLMENT_DAYS, HORIZON_DAYS - span - 1)
    first = start + timedelta(days=int(slot * max(latest, 0)))
    if dst:
        change = next_offset_change(design.site.timezone, start + timedelta(days=30))
        candidate = change and change - timedelta(days=12 + int(slot * 10) % 5)
        if candidate and candidate >= start and (candidate - start).days + span < HORIZON_DAYS:
            first = candidate
    days = [first] + ([first + timedelta(days=design.gap_days)] if design.gap_days else [])
    return tuple(days)


def build_patient(number: int, archetype: str, kwargs: dict, dst: bool, seed: int, start: date,
                  slot: float, attempt: int = 0) -> Patient:
    """Draw one patient's design; `attempt` > 0 redraws it (see cohort.py)."""
    rng = np.random.default_rng([seed, number, attempt])
    design = ARCHETYPES[archetype](rng, **kwargs)
    design = replace(design, dst=dst)
    minutes = tuple(int(rng.integers(10 * 4, 15 * 4)) * 15 for _ in design.episodes)
    return Patient(patient_id=f"CW-{number:04d}", number=number, design=design,
                   infusion_days=infusion_days(design, slot, start, dst), infusion_minutes=minutes,
                   seed=int(rng.integers(2**31)))
