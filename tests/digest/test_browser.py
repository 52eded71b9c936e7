"""The sample's HTML digest in a real browser (headless Chromium) at 1280 x 800: its size, the
sections in reading order, the patient cards in urgency order, the first card's top within the
first screen, a plot per paged card drawn (its ferritin line's pixels in a screenshot), and the
screenshots kept at stable paths for a person to look at:

    var/test-artifacts/digest.png        the first screen (1280 x 800)
    var/test-artifacts/digest-full.png   1280 x 2400: the first cards with their plots
    var/test-artifacts/digest.html       the page itself
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from cartwatch.build import build
from cartwatch.digest import make_digest, render
from cartwatch.digest.document import URGENCY
from cartwatch.ingest import ingest_paths
from cartwatch.store import open_store
from sample_paths import REPO, SAMPLE, SITE_TZ

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]
ARTIFACTS = REPO / "var" / "test-artifacts"
SCREEN = (1280, 800)
SIZE_LIMIT = 150_000          # bytes: issue 10's budget for the sample's HTML digest
# test-only: after layout, the page records what the browser shows (section order, each card's
# urgency and top in CSS pixels, the plots drawn and their size)
PROBE = """<script>window.addEventListener('load', () => {
  const cards = [...document.querySelectorAll('.patient')];
  document.body.setAttribute('data-probe', JSON.stringify({
    sections: [...document.querySelectorAll('section')].map(s => s.id),
    cards: cards.map(c => [c.dataset.urgency, Math.round(c.getBoundingClientRect().top + scrollY)]),
    plots: [...document.querySelectorAll('svg.pl')].map(s => Math.round(s.getBoundingClientRect().width)),
    viewport: [innerWidth, innerHeight]}));
});</script></body>"""

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make test installs it)")


@pytest.fixture(scope="module")
def sample_doc(rules):
    """The nightly digest of data/sample as of its AS_OF (files loaded at that moment, as `make demo`)."""
    as_of = datetime.fromisoformat((SAMPLE / "AS_OF").read_text().strip().replace("Z", "+00:00"))
    con = open_store(":memory:")
    ingest_paths(con, [SAMPLE], rules, site_tz=SITE_TZ, now=as_of)
    build(con, rules, as_of=as_of, as_loaded=False, site_tz=SITE_TZ)
    doc = make_digest(con, rules, as_of=as_of, as_loaded=False, stream="nightly", site_tz=SITE_TZ)
    con.close()
    return doc


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120, check=True)


def plot_pixels(png: Path) -> int:
    """Pixels of the plots' ferritin line colour (#1d4ed8) in a screenshot."""
    from matplotlib.image import imread

    image = (imread(png)[:, :, :3] * 255).round()
    return int(((abs(image[:, :, 0] - 0x1d) < 12) & (abs(image[:, :, 1] - 0x4e) < 12)
                & (abs(image[:, :, 2] - 0xd8) < 12)).sum())


def test_what_the_sample_patients_plot_marks(sample_doc):
    """CW-0001 of data/sample (infused 2026-06-27 11:15 New York time): IEC-HS onset and criteria met
    with the ferritin of 2026-07-08 06:29 (day 11.27), CRS improved at the start of day 8, so the
    IEC-HS risk period starts 48 h later (day 10); only paged patients carry plot data."""
    patients = {p["patient_id"]: p for p in sample_doc["patients"]}
    plot = patients["CW-0001"]["plot"]
    assert plot["iec_windows"] == [{"status": "criteria_met", "onset_x": 11.27, "met_x": 11.27, "end_x": None}]
    assert plot["crs"] == {"improved_x": 8.0, "risk_from_x": 10.0, "lag_hours": 48.0}
    assert sorted(plot["labs"]) == ["alt", "anc", "ast", "fibrinogen", "platelets"]
    # the sample's fibrinogen LLN (200 mg/dL) is above the 150 cut-off: the engine judges below 200
    assert plot["labs"]["fibrinogen"]["thresholds"] == [{"label": "< LLN 200", "value": 200.0,
                                                         "rule": "iec_hs.fibrinogen_lt_mg_dl"}]
    paged = {c["patient_id"] for c in sample_doc["cards"] if c["paged"]}
    assert {pid for pid, p in patients.items() if "plot" in p} == paged


@needs_chromium
def test_sample_digest_at_a_glance_in_headless_chromium(sample_doc, tmp_path):
    html = render(sample_doc, "html")
    assert len(html.encode()) < SIZE_LIMIT
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = ARTIFACTS / "digest.html"
    page.write_text(html, encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("</body>", PROBE), encoding="utf-8")

    dom = chromium(tmp_path, "--virtual-time-budget=5000", f"--window-size={SCREEN[0]},{SCREEN[1]}",
                   "--dump-dom", probed.as_uri()).stdout
    probe = json.loads(re.search(r"data-probe=\"([^\"]+)\"", dom).group(1).replace("&quot;", '"'))
    # reading order: the pager, what went wrong with the data (rows were quarantined), the gaps to
    # order, then the cards; the per-section reference lists and the files loaded after them
    assert probe["sections"] == ["pager", "data-quality", "monitoring-gaps", "patients", "new", "escalated",
                                 "still_open", "resolved", "files-loaded"]
    urgencies = [u for u, _ in probe["cards"]]
    assert urgencies == [c["urgency"] for c in sample_doc["cards"]]
    assert [URGENCY.index(u) for u in urgencies] == sorted(URGENCY.index(u) for u in urgencies)
    assert urgencies[0] == "new criteria met" and "watch" in urgencies
    first_top = probe["cards"][0][1]
    assert first_top < SCREEN[1]                       # the first card starts on the first screen
    paged = sum(c["paged"] for c in sample_doc["cards"])
    assert len(probe["plots"]) == paged and all(w > 600 for w in probe["plots"])

    chromium(tmp_path, f"--screenshot={ARTIFACTS / 'digest.png'}", f"--window-size={SCREEN[0]},{SCREEN[1]}",
             page.as_uri())
    chromium(tmp_path, f"--screenshot={ARTIFACTS / 'digest-full.png'}", f"--window-size={SCREEN[0]},2400",
             page.as_uri())
    assert (ARTIFACTS / "digest.png").stat().st_size > 10_000
    assert plot_pixels(ARTIFACTS / "digest-full.png") > 200      # the first plot's ferritin line is drawn
