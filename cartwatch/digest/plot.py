"""The plot of one alerting patient as a small inline SVG: four panels on one time axis.

Panels, by day post-infusion (site calendar, fractional within the day): ferritin (log), fibrinogen,
AST/ALT, platelets/ANC. On every panel: CRS days shaded, the IEC-HS window shaded with its onset
(dotted) and the first criteria-met result (solid) marked, CRS improvement + the rules' lag marked,
today marked when it is on the axis. A threshold line is drawn only where it lies in its panel's
data range. The legend is a column right of the panels, never over the data.

Written directly as SVG text (about 4 KB a patient, against 10-20 KB for a palette PNG of the same
panels in base64), with the shared styles and markers once per page (PLOT_STYLE, PLOT_DEFS), so the
page stays small; the same data gives the same bytes.
"""

from __future__ import annotations

import math
from html import escape

WIDTH, LEFT, RIGHT = 800, 44, 560          # pixels: panels from LEFT to RIGHT, the legend beyond
TITLE_H, PANEL_H, GAP, AXIS_H = 30, 54, 16, 24   # each panel's title sits in the gap above it
TODAY_MARGIN_DAYS = 14     # today further than this past the last result would squash the data
COLOURS = {"ferritin": "#1d4ed8", "fibrinogen": "#7c3aed", "ast": "#b45309", "alt": "#0f766e",
           "platelets": "#be123c", "anc": "#0369a1"}
LABELS = {"ferritin": "ferritin", "fibrinogen": "fibrinogen", "ast": "AST", "alt": "ALT",
          "platelets": "platelets", "anc": "ANC"}
PANELS = (("ferritin",), ("fibrinogen",), ("ast", "alt"), ("platelets", "anc"))
UNITS = {"10*9/L": "x10^9/L", "{ratio}": ""}

PLOT_STYLE = (".pl{display:block;margin:6px 0;max-width:100%;height:auto}.pl text{font:10px system-ui,sans-serif;"
              "fill:#374151}.pl .ax{fill:none;stroke:#9ca3af}.pl .gr{stroke:#eef0f3}.pl .crs{fill:#fde68a;opacity:.7}"
              ".pl .iec{fill:#fecaca;opacity:.55}.pl .s{fill:none;stroke-width:1.4}.pl .th{stroke-width:1;"
              "stroke-dasharray:5 3}.pl .on{stroke:#b91c1c;stroke-dasharray:2 2}.pl .met{stroke:#b91c1c;stroke-width:1.6}"
              ".pl .risk{stroke:#a16207;stroke-dasharray:6 3}.pl .now{stroke:#111827}.pl .sig{fill:none;stroke:none;"
              "marker:url(#m-sig)}.pl .r{text-anchor:end}.pl .c{text-anchor:middle}"
              + "".join(f".pl .k-{k}{{stroke:{c}}}.pl .s.k-{k}{{marker:url(#m-{k})}}.pl .t-{k}{{fill:{c};font-weight:600}}"
                      for k, c in COLOURS.items()))
# one marker per series colour (a dot at each result) and a diamond for ferritin's worsening signals
PLOT_DEFS = ('<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>'
             + "".join(f'<marker id="m-{k}" viewBox="0 0 6 6" refX="3" refY="3" markerWidth="5" markerHeight="5">'
                       f'<circle cx="3" cy="3" r="2.6" fill="{c}"/></marker>' for k, c in COLOURS.items())
             + '<marker id="m-sig" viewBox="0 0 10 10" refX="5" refY="5" markerWidth="9" markerHeight="9">'
               '<path d="M5 0L10 5L5 10L0 5Z" fill="#dc2626"/></marker></defs></svg>')


def _num(v: float) -> str:
    """A pixel coordinate: whole pixels are precise enough at this size and half the bytes."""
    return f"{v:.0f}"


def _relative(points: list[tuple[int, int]]) -> str:
    """A path through whole-pixel points in relative moves ('M65 70l89 0l18 -3'): a third shorter
    than absolute points, and markers still sit on every vertex."""
    if not points:
        return ""
    (x0, y0), steps = points[0], []
    for (xa, ya), (xb, yb) in zip(points, points[1:]):
        steps.append(f"{xb - xa} {yb - ya}")
    return f"M{x0} {y0}" + ("l" + " ".join(steps) if steps else "")


def _legend_value(v: float) -> str:
    """'6,826', '1.2': as the cards write values."""
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _tick_text(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}" if v >= 1 else f"{v:.2g}"


def _nice_step(span: float, target: int) -> float:
    raw = span / max(target, 1)
    base = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * base for m in (1, 2, 5, 10) if m * base >= raw)


class Axis:
    """A value -> pixel map over [lo, hi] onto [p0, p1] (p1 may be above p0), linear or log."""

    def __init__(self, lo: float, hi: float, p0: float, p1: float, log: bool = False):
        self.log = log
        f = math.log10 if log else float
        self.lo, self.hi = f(lo), f(hi)
        if self.hi == self.lo:
            self.lo, self.hi = self.lo - 1, self.hi + 1
        self.p0, self.p1 = p0, p1

    def __call__(self, v: float) -> float:
        v = math.log10(v) if self.log else v
        return self.p0 + (v - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)

    def ticks(self) -> list[float]:
        if self.log:
            found = [10 ** e for e in range(math.ceil(self.lo), math.floor(self.hi) + 1)]
            return found if len(found) >= 2 else found + [m * 10 ** e for e in range(math.floor(self.lo),
                                                          math.ceil(self.hi)) for m in (2, 5)
                                                          if self.lo <= math.log10(m * 10 ** e) <= self.hi]
        step = _nice_step(self.hi - self.lo, 3)
        return [i * step for i in range(math.ceil(self.lo / step), math.floor(self.hi / step) + 1)]


def _series(patient: dict) -> dict[str, dict]:
    """analyte -> {'unit', 'points': [[x, value], ...], 'thresholds', 'signals'}."""
    out = {}
    f = patient.get("ferritin") or {}
    if f.get("series"):
        out["ferritin"] = {"unit": f.get("unit"), "points": [[p["x"], p["value"]] for p in f["series"]],
                           "signals": [[p["x"], p["value"]] for p in f["series"] if p.get("signal")],
                           "thresholds": f.get("thresholds") or []}
    for analyte, s in ((patient.get("plot") or {}).get("labs") or {}).items():
        out[analyte] = dict(s, points=[pt for pt in s["points"] if pt[1] is not None])
    return out


def _x_range(series: dict, today: int | None) -> tuple[float, float, bool]:
    xs = [pt[0] for s in series.values() for pt in s["points"]]
    lo, hi = min(xs), max(xs)
    shows_today = today is not None and lo <= today + 1 and today <= hi + TODAY_MARGIN_DAYS
    if shows_today:
        hi = max(hi, today + 1)
    return math.floor(lo), math.ceil(hi), shows_today


def _spans(days: list[int]) -> list[tuple[int, int]]:
    """Runs of consecutive days as [first, last + 1)."""
    out: list[list[int]] = []
    for d in sorted(days):
        if out and d == out[-1][1]:
            out[-1][1] = d + 1
        else:
            out.append([d, d + 1])
    return [(a, b) for a, b in out]


def _panel(names: tuple[str, ...], series: dict, x: Axis, top: float) -> tuple[str, list]:
    """One panel's SVG (frame, grid, thresholds, series) and the legend entries of its thresholds."""
    bottom = top + PANEL_H
    found = {n: series[n] for n in names if n in series and series[n]["points"]}
    unit = next((UNITS.get(s["unit"], s["unit"]) for s in found.values() if s.get("unit")), "")
    title = "/".join(LABELS[n] for n in names) + (f" ({unit})" if unit else "")
    # the panel's title names its series in their colours: it is their legend
    named = "/".join(f'<tspan class="t-{n}">{LABELS[n]}</tspan>' for n in names)
    frame = f'<rect class="ax" x="{LEFT}" y="{top}" width="{RIGHT - LEFT}" height="{PANEL_H}"/>'
    if not found:
        return (frame + f'<text x="{LEFT}" y="{top - 3}">{escape(title)}: no results</text>'), []
    values = [v for s in found.values() for _, v in s["points"]]
    lo, hi = min(values), max(values)
    log = lo > 0 and (names == ("ferritin",) or hi / lo > 30)
    pad = (hi / lo) ** 0.06 if log else (hi - lo) * 0.08 or abs(hi) * 0.1 or 1
    y = Axis(lo / pad if log else lo - pad, hi * pad if log else hi + pad, bottom, top, log)
    ticks = [t for t in y.ticks() if y.lo <= (math.log10(t) if log else t) <= y.hi]
    parts = [frame, '<path class="gr" d="' + "".join(f"M{LEFT} {_num(y(t))}H{RIGHT}" for t in ticks) + '"/>']
    parts += [f'<text class="r" x="{LEFT - 4}" y="{_num(y(t) + 3)}">{_tick_text(t)}</text>' for t in ticks]
    legend = []
    for n, s in found.items():
        for t in s.get("thresholds") or []:
            if lo <= t["value"] <= hi:                # only where it lies in the data's range
                parts.append(f'<path class="th k-{n}" d="M{LEFT} {_num(y(t["value"]))}H{RIGHT}"/>')
                legend.append((f"th k-{n}", f"{LABELS[n]} {t['label']}" + (
                    "" if t["label"].endswith(f" {t['value']:g}") else f" = {_legend_value(t['value'])}")))
        pts = [(round(x(px)), round(y(pv))) for px, pv in s["points"] if not (log and pv <= 0)]
        parts.append(f'<path class="s k-{n}" d="{_relative(pts)}"/>')
        if s.get("signals"):
            sig = " ".join(f"{_num(x(px))},{_num(y(pv))}" for px, pv in s["signals"])
            parts.append(f'<polyline class="sig" points="{sig}"/>')
    parts.append(f'<text x="{LEFT}" y="{top - 3}">{named}{escape(title[title.index(" ("):] if unit else "")}'
                 f'{", log" if log else ""}</text>')
    return "".join(parts), legend


def _moments(patient: dict, x: Axis, today: int | None, shows_today: bool) -> tuple[list, list, list]:
    """Shaded bands and vertical markers (x pixels), with their legend entries."""
    crs = patient.get("crs") or {}
    plot = patient.get("plot") or {}
    lo, hi = x.lo, x.hi
    bands, lines, legend = [], [], []

    def band(cls: str, a: float, b: float) -> None:
        a, b = max(a, lo), min(b, hi)
        if b > a:
            bands.append((cls, _num(x(a)), _num(x(b) - x(a))))

    def vline(cls: str, at: float | None, label: str) -> None:
        if at is not None and lo <= at <= hi:
            lines.append((cls, _num(x(at))))
            legend.append((cls, label))

    for a, b in _spans(crs.get("days_with_crs") or []):
        band("crs", a, b)
    if crs.get("days_with_crs"):
        legend.append(("crs", "CRS (grade >= 1)"))
    risk = plot.get("crs") or {}
    vline("risk", risk.get("risk_from_x"), f"CRS improved + {risk.get('lag_hours') or 0:g} h")
    iec = plot.get("iec_windows") or []
    for w in iec:
        end = w["end_x"] if w.get("end_x") is not None else (today + 1 if shows_today else hi)
        band("iec", w["onset_x"], end)
    if iec:
        legend.append(("iec", "IEC-HS window"))
        vline("on", iec[-1]["onset_x"], f"IEC-HS onset d{math.floor(iec[-1]['onset_x']):+d}")
        met = [w["met_x"] for w in iec if w.get("met_x") is not None]
        if met:
            vline("met", met[-1], f"criteria met d{math.floor(met[-1]):+d}")
    if shows_today:
        vline("now", today + 0.5, f"today d{today:+d}")
    return bands, lines, legend


def _legend(entries: list[tuple[str, str]], top: float) -> str:
    """The legend as a column right of the panels: (class, label) entries."""
    out = []
    x0 = RIGHT + 10
    for i, (cls, label) in enumerate(entries):
        y = top + 10 + i * 13
        if cls in ("crs", "iec"):
            shape = f'<rect class="{cls}" x="{x0}" y="{y - 7}" width="16" height="9"/>'
        elif cls.startswith(("s ", "th ")):
            shape = f'<path class="{cls}" d="M{x0} {y - 3}h16"/>'
        elif cls == "sig":
            shape = f'<path d="M{x0 + 8} {y - 7}l4 4-4 4-4-4z" fill="#dc2626"/>'
        elif cls:
            shape = f'<path class="{cls}" d="M{x0 + 8} {y - 8}v10"/>'
        else:
            shape = ""
        out.append(f'{shape}<text x="{x0 + 21}" y="{y}">{escape(label)}</text>')
    return "".join(out)


def patient_svg(patient: dict) -> str | None:
    """The plot as an inline <svg> element, or None when the patient has no result to plot."""
    series = _series(patient)
    if not any(s["points"] for s in series.values()):
        return None
    today = patient.get("day_now")
    lo, hi, shows_today = _x_range(series, today)
    x = Axis(lo, hi, LEFT, RIGHT)
    bands, lines, legend = _moments(patient, x, today, shows_today)
    base = TITLE_H + len(PANELS) * (PANEL_H + GAP) - GAP
    # bands and markers once, over the full height of the panels (under the data drawn after them)
    body = [f'<rect class="{c}" x="{a}" y="{TITLE_H}" width="{w}" height="{base - TITLE_H}"/>' for c, a, w in bands]
    body += [f'<path class="{c}" d="M{a} {TITLE_H}V{base}"/>' for c, a in lines]
    for i, names in enumerate(PANELS):
        panel, extra = _panel(names, series, x, TITLE_H + i * (PANEL_H + GAP))
        body.append(panel)
        legend += extra
    step = _nice_step(hi - lo, 8)
    ticks = "".join(f'<text class="c" x="{_num(x(d))}" y="{base + 13}">{d:+g}</text>'
                    for d in (i * step for i in range(math.ceil(lo / step), math.floor(hi / step) + 1)))
    series_legend = []
    if series.get("ferritin", {}).get("signals"):
        series_legend.append(("sig", "ferritin worsening signal"))
    if today is not None and not shows_today:
        legend.append(("", f"today d{today:+d}: beyond the axis"))
    pid = escape(str(patient.get("patient_id")))
    height = base + AXIS_H
    return (f'<svg class="pl" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img">'
            f'<text x="{LEFT}" y="12">{pid}: results by day post-infusion</text>{"".join(body)}{ticks}<text x="{RIGHT + 10}" y="{base + 13}">day post-infusion</text>'
            f'{_legend(series_legend + legend, TITLE_H)}</svg>')
