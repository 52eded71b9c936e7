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
FIGURE_INCHES = (6.4, 2.8)
FIGURE_DPI = 96
# fixed margins (fractions of the figure) instead of tight_layout, which measured every label again
# on each plot; they leave room for a six-digit axis
MARGINS = {"left": 0.12, "right": 0.98, "top": 0.96, "bottom": 0.17}
PNG_COLORS = 32   # palette PNG: about a quarter of the RGBA bytes, the plot's colours kept (a display choice)


def ferritin_png(patient: dict) -> bytes | None:
    """The plot as PNG bytes, or None when the patient has no ferritin result."""
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
    for style, line in zip(THRESHOLD_STYLES, f.get("thresholds") or []):
        ax.axhline(line["value"], ls="--", lw=1, color=style, label=line["label"])
    ax.set_xlabel("day post-infusion")
    ax.set_ylabel(f["unit"])
    if max(ys) > 0 and min(ys) > 0 and max(ys) / min(ys) > 30:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", framealpha=0.8)
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
