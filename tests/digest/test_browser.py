"""The HTML digest in a real browser (headless Chromium): the sections a person sees, and each
ferritin plot present and decoded (no broken image), from the DOM and from a screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest

from cartwatch.digest import make_digest, render
from cartwatch.incremental import evaluate
from cartwatch.store import open_store
from opsdata import at

NY = "America/New_York"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]
# test-only: after load, the page records what the browser made of each image
IMAGE_CHECK = """<script>window.addEventListener('load', () => {
  const imgs = [...document.querySelectorAll('img')];
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-decoded', imgs.filter(i => i.complete && i.naturalWidth > 0).length);
});</script></body>"""

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make test installs it)")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120, check=True)


def screenshot(html: Path, png: Path, tmp_path: Path, height: int = 2400) -> None:
    chromium(tmp_path, f"--screenshot={png}", f"--window-size=1200,{height}", html.as_uri())


def plot_pixels(png: Path) -> int:
    """Pixels of the plot's ferritin line colour (#1d4ed8) in a screenshot."""
    from matplotlib.image import imread

    image = (imread(png)[:, :, :3] * 255).round()
    return int(((abs(image[:, :, 0] - 0x1d) < 12) & (abs(image[:, :, 1] - 0x4e) < 12)
                & (abs(image[:, :, 2] - 0xd8) < 12)).sum())


def test_digest_in_headless_chromium(cohort_db, rules, engine, tmp_path):
    con = open_store(cohort_db)
    as_of = at(date(2026, 3, 15), 2)
    evaluate(con, rules, as_of=as_of, as_loaded=False, site_tz=NY)
    doc = make_digest(con, rules, as_of=as_of, as_loaded=False, stream="nightly", site_tz=NY)
    html = render(doc, "html")
    page = tmp_path / "digest.html"
    page.write_text(html, encoding="utf-8")
    checked = tmp_path / "checked.html"
    checked.write_text(html.replace("</body>", IMAGE_CHECK), encoding="utf-8")

    dom = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", checked.as_uri()).stdout
    for heading in ("New since the last digest", "Escalated", "Still open", "Resolved", "Data quality", "Pager"):
        assert re.search(rf"<h2>{heading}</h2>", dom), heading
    images = int(re.search(r'data-images="(\d+)"', dom).group(1))
    decoded = int(re.search(r'data-decoded="(\d+)"', dom).group(1))
    assert images >= 1 and decoded == images

    png = tmp_path / "digest.png"
    screenshot(page, png, tmp_path)
    assert png.stat().st_size > 10_000 and plot_pixels(png) > 200
