"""The expected `astct_iec_hs_2023` verdict of an episode, from the generated values and the rules.

This is the ground truth's specification side: clinical-rules.md §3 ("How the pipeline
operationalizes it") applied to the values a reader gets back from the files, with every number
read from the rules file. It is deliberately plain Python over a few dozen results, written
apart from the engine, so the two can be reconciled.

Where the rules text allows more than one reading, the verdict is computed under each (`Reading`)
and a patient whose verdict would differ is redrawn by the cohort builder, so the ground truth
never depends on an open question. The readings:

- peak_includes_current: whether the ferritin being judged counts towards the CRS-phase peak
  while the peak's window is open (it cannot then be a re-rise against that same peak);
- crs_from_first_sign: whether CRS onset and re-escalation are known from the first reading that
  shows them (the rules: "only observations stamped at or before t") or from 00:00 of their day;
- cytopenias_count: whether any ANC < 1.0, platelets < 100 or hemoglobin < 9 counts as the
  "new, worsening or refractory cytopenia" manifestation, or none does (the engine sits between);
- rapid_uses_pre_infusion: whether the rapid-rise rate may use a result from before the infusion;
- nadir_since_onset: with CRS but no ferritin yet in its window (no peak), whether the nadir is
  the lowest since the infusion or since 00:00 of the CRS onset day.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, fields

from cartwatch.synth.sites import Calendar
from transforms.rules import Rules

HOUR = 3600
STATUS_ORDER = ("none", "watch", "suspected", "criteria_met")


@dataclass(frozen=True)
class Reading:
    peak_includes_current: bool = True
    crs_from_first_sign: bool = True
    cytopenias_count: bool = False
    rapid_uses_pre_infusion: bool = True
    nadir_since_onset: bool = False


PRIMARY = Reading()
READINGS = tuple(Reading(*flags) for flags in itertools.product((True, False), repeat=len(fields(Reading))))


@dataclass(frozen=True)
class CrsFacts:
    """The designed CRS course of an episode as instants (UTC epoch seconds) and days."""

    onset_day: int
    peak_grade: int
    peak_day: int
    improvement_day: int | None
    re_escalation_day: int | None
    resolution_day: int | None       # the first full grade-0 day; resolution is at its end
    onset_start: int                 # 00:00 of the onset day
    onset_seen: int                  # first reading or assessment showing it
    improvement_at: int | None       # 00:00 of the improvement day
    re_escalation_start: int | None
    re_escalation_seen: int | None
    resolved_at: int | None


def crs_facts(grades: tuple[int, ...], cal: Calendar, first_sign: dict[int, int]) -> CrsFacts | None:
    """Onset, peak, improvement, re-escalation and resolution as clinical-rules.md §2 defines them."""
    if max(grades, default=0) == 0:
        return None
    onset = next(d for d, g in enumerate(grades) if g >= 1)
    peak = max(grades)
    improvement = next((d for d in range(onset + 1, len(grades)) if grades[d] < max(grades[onset:d])), None)
    re_esc = None if improvement is None else next(
        (d for d in range(improvement + 1, len(grades)) if grades[d] > grades[d - 1]), None)
    resolution = next((d for d in range(onset + 1, len(grades)) if grades[d] == 0), None)
    return CrsFacts(
        onset_day=onset, peak_grade=peak, peak_day=grades.index(peak), improvement_day=improvement,
        re_escalation_day=re_esc, resolution_day=resolution, onset_start=cal.start(onset),
        onset_seen=first_sign.get(onset, cal.start(onset)),
        improvement_at=None if improvement is None else cal.start(improvement),
        re_escalation_start=None if re_esc is None else cal.start(re_esc),
        re_escalation_seen=None if re_esc is None else first_sign.get(re_esc, cal.start(re_esc)),
        resolved_at=None if resolution is None else cal.start(resolution + 1))


@dataclass(frozen=True)
class Result:
    """One lab result as a reader gets it: canonical value and the range it came with (or default)."""

    at: int
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Episode:
    """What the verdict needs about one infusion episode."""

    infusion_at: int
    ends_at: int | None                  # the next infusion
    cal: Calendar
    crs: CrsFacts | None
    ferritin: tuple[Result, ...]         # the patient's, all episodes, final versions, by time
    labs: dict[str, tuple[Result, ...]]  # fibrinogen, ast, alt, anc, platelets, hemoglobin
    hemophagocytosis: tuple[int, ...]    # times of positive pathology events

    def contains(self, at: int) -> bool:
        return at >= self.infusion_at and (self.ends_at is None or at < self.ends_at)

    def baseline(self, analyte_results: tuple[Result, ...], lookback_h: float) -> Result | None:
        """The last result before the infusion within the look-back (clinical-rules.md §1)."""
        before = [r for r in analyte_results
                  if self.infusion_at - lookback_h * HOUR <= r.at < self.infusion_at]
        return before[-1] if before else None


@dataclass(frozen=True)
class Signal:
    """A ferritin result at which the signal fired (elevated and worsening)."""

    at: int
    day: int
    value: float
    rules: tuple[str, ...]       # re_rise, rapid_rise, new_high
    status: str                  # watch or suspected
    elevated_above: float        # the threshold it exceeded
    nadir: float | None
    peak: float | None
    timing: str                  # why timing holds, or why not


@dataclass(frozen=True)
class Manifestation:
    at: int
    day: int
    analyte: str
    value: float
    limit: float
    rule: str


@dataclass(frozen=True)
class Verdict:
    status: str
    onset_at: int | None
    onset_day: int | None
    criteria_met_at: int | None
    criteria_met_day: int | None
    late: bool
    signals: tuple[Signal, ...]
    manifestation: Manifestation | None
    baseline_ferritin: float | None
    against_baseline: bool           # baseline above ULN: elevated also needs > 2 x baseline

    def key(self) -> tuple:
        return self.status, self.onset_day, self.criteria_met_day, self.late


# --- the rules --------------------------------------------------------------------------------

def verdict(ep: Episode, rules: Rules, reading: Reading = PRIMARY) -> Verdict:
    """Statuses at each ferritin result of the episode, then criteria met, onset and late."""
    return conclude(ep, rules, ferritin_signals(ep, rules, reading), manifestations(ep, rules, reading))


def ferritin_signals(ep: Episode, rules: Rules, reading: Reading) -> tuple[Signal, ...]:
    """Every ferritin result of the episode at which the signal fires, as watch or suspected."""
    base = _baseline_ferritin(ep, rules)
    return tuple(s for i, r in enumerate(ep.ferritin) if ep.contains(r.at)
                 for s in [_signal(ep, rules, reading, i, base)] if s is not None)


def conclude(ep: Episode, rules: Rules, signals: tuple[Signal, ...], found: list[Manifestation]) -> Verdict:
    base = _baseline_ferritin(ep, rules)
    suspected = [s for s in signals if s.status == "suspected"]
    met = _first_manifestation(rules, suspected, found)
    status = "criteria_met" if met else "suspected" if suspected else "watch" if signals else "none"
    onset = suspected[0] if suspected else None
    met_at = max(met[0].at, met[1].at) if met else None
    return Verdict(
        status=status, onset_at=onset and onset.at, onset_day=onset and onset.day,
        criteria_met_at=met_at, criteria_met_day=None if met_at is None else ep.cal.day_number(met_at),
        late=onset is not None and onset.day >= rules.value("iec_hs.late_onset_day"),
        signals=signals, manifestation=met[1] if met else None,
        baseline_ferritin=base and base.value, against_baseline=base is not None and base.value > base.high)


def _baseline_ferritin(ep: Episode, rules: Rules) -> Result | None:
    return ep.baseline(ep.ferritin, rules.value("time_axis.baseline_lookback_hours"))


def _signal(ep: Episode, rules: Rules, reading: Reading, i: int, base: Result | None) -> Signal | None:
    r = ep.ferritin[i]
    threshold = rules.value("iec_hs.ferritin_elevated_x_uln") * r.high
    if base is not None and base.value > base.high:
        threshold = max(threshold, rules.value("iec_hs.ferritin_elevated_x_baseline") * base.value)
    if not r.value > threshold:   # elevated is strict: exactly 2 x ULN is not elevated
        return None
    peak, nadir, window_closed = _peak_and_nadir(ep, rules, reading, i)
    fired = tuple(name for name, hit in (
        ("re_rise", nadir is not None and r.value >= rules.value("iec_hs.re_rise_factor") * nadir),
        ("rapid_rise", _rapid_rise(ep, rules, reading, i)),
        ("new_high", window_closed and peak is not None and r.value > peak)) if hit)
    if not fired:
        return None
    holds, why = _timing(ep, rules, reading, r.at)
    return Signal(r.at, ep.cal.day_number(r.at), r.value, fired, "suspected" if holds else "watch",
                  threshold, nadir, peak, why)


def _crs_started(ep: Episode, reading: Reading, at: int) -> bool:
    crs = ep.crs
    return crs is not None and at >= (crs.onset_seen if reading.crs_from_first_sign else crs.onset_start)


def _peak_and_nadir(ep: Episode, rules: Rules, reading: Reading, i: int) -> tuple[float | None, float | None, bool]:
    """The CRS-phase peak known at result i, the post-peak nadir before it, and whether the peak's
    window (CRS onset to resolution + ferritin lag, inclusive) has closed."""
    at = ep.ferritin[i].at
    earlier = [r for r in ep.ferritin[:i] if ep.contains(r.at) and r.at < at]
    if not _crs_started(ep, reading, at):
        return None, min((r.value for r in earlier), default=None), False   # no CRS: lowest since infusion
    crs = ep.crs
    window_end = None if crs.resolved_at is None else crs.resolved_at + rules.value("iec_hs.ferritin_lag_hours") * HOUR
    in_window = [r for r in earlier + ([ep.ferritin[i]] if reading.peak_includes_current else [])
                 if r.at >= crs.onset_start and (window_end is None or r.at <= window_end)]
    if not in_window:   # CRS without a ferritin in its window yet: no peak
        since = crs.onset_start if reading.nadir_since_onset else ep.infusion_at
        return None, min((r.value for r in earlier if r.at >= since), default=None), False
    peak = max(in_window, key=lambda r: r.value)          # first of equal highs
    nadir = min((r.value for r in earlier if r.at > peak.at), default=None)
    return peak.value, nadir, window_end is not None and at > window_end


def _rapid_rise(ep: Episode, rules: Rules, reading: Reading, i: int) -> bool:
    """>= rate ng/mL/h against any earlier result with 0 < gap <= window (inclusive)."""
    r = ep.ferritin[i]
    rate, window = rules.value("iec_hs.rapid_rise_ng_ml_per_hour"), rules.value("iec_hs.rapid_rise_window_hours")
    for e in ep.ferritin[:i]:
        gap_h = (r.at - e.at) / HOUR
        if 0 < gap_h <= window and (reading.rapid_uses_pre_infusion or ep.contains(e.at)):
            if (r.value - e.value) / gap_h >= rate:
                return True
    return False


def _timing(ep: Episode, rules: Rules, reading: Reading, at: int) -> tuple[bool, str]:
    day = ep.cal.day_number(at)
    if not _crs_started(ep, reading, at):
        no_crs_day = rules.value("iec_hs.no_crs_timing_day")
        return day >= no_crs_day, f"no CRS since infusion, day {day} {'>=' if day >= no_crs_day else '<'} {no_crs_day:.0f}"
    crs = ep.crs
    after = rules.value("iec_hs.timing_after_improvement_hours") * HOUR
    if crs.improvement_at is not None and at > crs.improvement_at + after:
        return True, f"after CRS improvement (day {crs.improvement_day}) + 48 h"
    re_esc = crs.re_escalation_seen if reading.crs_from_first_sign else crs.re_escalation_start
    if re_esc is not None and at >= re_esc:
        return True, f"CRS re-escalated on day {crs.re_escalation_day} after improvement"
    return False, "CRS not yet improved + 48 h (CRS-associated hyperferritinemia)"


def manifestations(ep: Episode, rules: Rules, reading: Reading) -> list[Manifestation]:
    """Most-common IEC-HS manifestations in the episode (clinical-rules.md §3), time-ordered."""
    found = []
    lookback = rules.value("time_axis.baseline_lookback_hours")
    fib_limit = rules.value("iec_hs.fibrinogen_lt_mg_dl")
    for r in ep.labs["fibrinogen"]:
        limit = max(fib_limit, r.low)
        if ep.contains(r.at) and r.value < limit:
            found.append(_manifest(ep, r, "fibrinogen", limit, "< max(150 mg/dL, LLN)"))
    for analyte in ("ast", "alt"):
        base = ep.baseline(ep.labs[analyte], lookback)
        for r in ep.labs[analyte]:
            if base is not None and base.value > base.high:
                limit, rule = rules.value("iec_hs.transaminase_x_baseline") * base.value, "> 5 x baseline (abnormal baseline)"
            else:
                limit, rule = rules.value("iec_hs.transaminase_x_uln") * r.high, "> 5 x ULN"
            if ep.contains(r.at) and r.value > limit:
                found.append(_manifest(ep, r, analyte, limit, rule))
    found += [Manifestation(at, ep.cal.day_number(at), "hemophagocytosis", 1.0, 1.0, "pathology")
              for at in ep.hemophagocytosis if ep.contains(at)]
    if reading.cytopenias_count:
        for analyte, rule_id in (("anc", "iec_hs.anc_lt"), ("platelets", "iec_hs.platelets_lt"),
                                 ("hemoglobin", "iec_hs.hemoglobin_lt_g_dl")):
            limit = rules.value(rule_id)
            found += [_manifest(ep, r, analyte, limit, "cytopenia") for r in ep.labs[analyte]
                      if ep.contains(r.at) and r.value < limit]
    return sorted(found, key=lambda m: m.at)


def _manifest(ep: Episode, r: Result, analyte: str, limit: float, rule: str) -> Manifestation:
    return Manifestation(r.at, ep.cal.day_number(r.at), analyte, r.value, limit, rule)


def _first_manifestation(rules: Rules, suspected: list[Signal],
                         found: list[Manifestation]) -> tuple[Signal, Manifestation] | None:
    """The earliest (suspected ferritin, manifestation) pair within the window, either side."""
    window = rules.value("iec_hs.manifestation_window_hours") * HOUR
    times = [m.at for m in found]            # time-ordered
    pairs = []
    for s in suspected:                      # the earliest manifestation in [s - window, s + window]
        i = bisect.bisect_left(times, s.at - window)
        if i < len(found) and found[i].at <= s.at + window:
            pairs.append((s, found[i]))
    return min(pairs, key=lambda p: (max(p[0].at, p[1].at), p[1].at), default=None)


def verdicts(ep: Episode, rules: Rules) -> tuple[Verdict, list[str]]:
    """The primary verdict and the readings under which the verdict would differ.

    Manifestations depend on one flag and signals on the others: each is computed once."""
    signals, found = {}, {}

    def judged(reading: Reading) -> Verdict:
        key = (reading.peak_includes_current, reading.crs_from_first_sign, reading.rapid_uses_pre_infusion,
               reading.nadir_since_onset)
        if key not in signals:
            signals[key] = ferritin_signals(ep, rules, reading)
        if reading.cytopenias_count not in found:
            found[reading.cytopenias_count] = manifestations(ep, rules, reading)
        return conclude(ep, rules, signals[key], found[reading.cytopenias_count])

    primary = judged(PRIMARY)
    differing = [", ".join(f"{f.name}={getattr(r, f.name)}" for f in fields(Reading)
                           if getattr(r, f.name) != getattr(PRIMARY, f.name))
                 for r in READINGS if r != PRIMARY and judged(r).key() != primary.key()]
    return primary, differing
