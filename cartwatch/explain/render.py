"""The explanation in its three formats: text (a terminal, 100 columns), JSON (stable keys,
docs/explain.md) and self-contained HTML. Masking (`--mask-ids`) happens here, on a copy of the
document, the way the digest masks its own (cartwatch/digest/ids.py)."""

from __future__ import annotations

import json

from cartwatch.digest.ids import masked
from cartwatch.explain.render_html import render_html
from cartwatch.explain.render_text import render_text

FORMATS = ("text", "json", "html")


def render_json(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"


def render(doc: dict, fmt: str, *, mask_ids: bool = False) -> str:
    shown = masked(doc, mask_ids)
    return {"text": render_text, "json": render_json, "html": render_html}[fmt](shown)
