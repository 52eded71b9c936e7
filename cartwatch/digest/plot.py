"""The ferritin trajectory plot of one patient: PNG bytes (matplotlib, Agg backend, no display).

Ferritin against day post-infusion (site calendar, fractional within the day), the CRS days shaded,
the rules' thresholds drawn as dashed lines, results that carried a worsening signal marked.
Deterministic output (no timestamp in the PNG metadata), so the same data gives the same bytes.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402  (no pyplot: no global state, safe in worker threads)

THRESHOLD_STYLES = ("#b45309", "#7c3aed", "#be123c", "#0f766e")
FIGURE_INCHES = (7.6, 2.8)
FIGURE_DPI = 96
# fixed margins (fractions of the figure) instead of tight_layout, which measured every label again
# on each plot; they leave room for a six-digit axis
MARGINS = {"left": 0.1, "right": 0.76, "top": 0.96, "bottom": 0.17}    # the legend right of the axes
THRESHOLD_RANGE = 3   # a threshold line more than this factor outside the data's range is not drawn
PNG_COLORS = 32   # palette PNG: about a quarter of the RGBA bytes, the plot's colours kept (a display choice)


def ferritin_png(patient: dict, iec_onset_day: int | None = None) -> bytes | None:
    """The plot as PNG bytes, or None when the patient has no ferritin result: ferritin, CRS days
    shaded, thresholds near the data, the IEC-HS onset day and today marked, the legend outside."""
    f = patient.get("ferritin")
    if not f or not f.get("series"):
        return None
    xs = [p["x"] for p in f["series"]]
    ys = [p["value"] for p in f["series"]]
    fig = Figure(figsize=FIGURE_INCHES, dpi=FIGURE_DPI)
    ax = fig.subplots()
    crs_days = ((patient.get("crs") or {}).get("days_with_crs")) or []
    for i, day in enumerate(crs_days):
        ax.axvspan(day, day + 1, color="#fde68a", alpha=0.6, lw=0, label="CRS" if i == 0 else None)
    ax.plot(xs, ys, "-o", color="#1d4ed8", ms=3.5, lw=1.4, label=f"ferritin ({f['unit']})")
    flagged = [(p["x"], p["value"]) for p in f["series"] if p.get("signal")]
    if flagged:
        ax.plot(*zip(*flagged), "D", color="#dc2626", ms=6, label="worsening signal")
    shown = [t for t in f.get("thresholds") or []
             if min(ys) / THRESHOLD_RANGE <= t["value"] <= max(ys) * THRESHOLD_RANGE]
    for style, line in zip(THRESHOLD_STYLES, shown):
        ax.axhline(line["value"], ls="--", lw=1, color=style, label=line["label"])
    if iec_onset_day is not None:
        ax.axvline(iec_onset_day, color="#b91c1c", lw=1.2, ls=":", label=f"IEC-HS onset d{iec_onset_day:+d}")
    today = patient.get("day_now")
    if today is not None and today <= max(xs) + 14:      # far beyond the data it would squash the plot
        ax.axvline(today, color="#374151", lw=1, label=f"today d{today:+d}")
    ax.set_xlabel("day post-infusion")
    ax.set_ylabel(f["unit"])
    if max(ys) > 0 and min(ys) > 0 and max(ys) / min(ys) > 30:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.subplots_adjust(**MARGINS)
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    return compress_png(out.getvalue())


def compress_png(png: bytes) -> bytes:
    """The PNG as a PNG with a PNG_COLORS palette (median cut, deterministic), optimized."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=PNG_COLORS, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
