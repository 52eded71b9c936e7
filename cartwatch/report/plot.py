"""The report's plots as PNG bytes (matplotlib, Agg, no pyplot): the proportion flagged per criteria
set with its interval, and the cumulative incidence by day post-infusion. Deterministic bytes (no
timestamp in the PNG), compressed to a palette like the digest's plots."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from cartwatch.digest.document import set_label  # noqa: E402

FIGURE_DPI = 96
PNG_COLORS = 32   # palette PNG: about a quarter of the RGBA bytes, the plot's colours kept (a display choice)
# A Kaplan-Meier step resting on a handful of infusions swings by tens of percent (in a cohort whose
# follow-up mostly ends near day 24, the few followed longer are often the late onsets), so the plot
# draws each curve only while this many infusions are still at risk; the JSON keeps every day.
MIN_AT_RISK_DRAWN = 10
COLORS = ("#1d4ed8", "#b91c1c", "#0f766e", "#c2410c", "#7c3aed", "#4b5563", "#a16207")


def _png(fig: Figure) -> bytes:
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


def proportions_png(rows: list[dict]) -> bytes:
    """Overall proportion flagged per criteria set, with its confidence interval as error bars."""
    overall = [r for r in rows if r["by"] == "overall"]
    fig = Figure(figsize=(7.6, 0.45 * len(overall) + 1.0), dpi=FIGURE_DPI)
    ax = fig.subplots()
    ys = list(range(len(overall)))[::-1]
    props = [100 * r["proportion"] for r in overall]
    # max(0, ...): at 0% or 100% the interval's end equals the proportion up to rounding
    errors = [[max(0.0, 100 * (r["proportion"] - r["ci_low"])) for r in overall],
              [max(0.0, 100 * (r["ci_high"] - r["proportion"])) for r in overall]]
    ax.barh(ys, props, color="#93c5fd", xerr=errors, capsize=3, ecolor="#1e3a8a")
    ax.set_yticks(ys, [set_label(r["criteria_set"]) for r in overall])
    ax.set_xlabel("infusions flagged (%), 95% interval")
    ax.set_xlim(0, 100)
    ax.grid(axis="x", alpha=0.3)
    fig.subplots_adjust(left=0.2, right=0.97, top=0.95, bottom=0.8 / (0.45 * len(overall) + 1.0))
    return _png(fig)


def incidence_png(curves: dict) -> bytes:
    """Cumulative incidence of a flag by day post-infusion, one step line per criteria set."""
    fig = Figure(figsize=(7.6, 3.2), dpi=FIGURE_DPI)
    ax = fig.subplots()
    for color, curve in zip(COLORS, curves["curves"]):
        drawn = [(d, v) for d, v, n in zip(curve["days"], curve["incidence"], curve["at_risk"])
                 if n >= MIN_AT_RISK_DRAWN]
        ax.step([d for d, _ in drawn], [100 * v for _, v in drawn], where="post", color=color, lw=1.4,
                label=set_label(curve["criteria_set"]))
    ax.set_xlabel(f"day post-infusion (drawn while at least {MIN_AT_RISK_DRAWN} infusions are at risk)")
    ax.set_ylabel("cumulative incidence (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.subplots_adjust(left=0.09, right=0.78, top=0.96, bottom=0.15)
    return _png(fig)
