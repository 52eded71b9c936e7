"""The digest as JSON: the stored document (ids masked when asked) plus its pager lines."""

from __future__ import annotations

import json

from cartwatch.digest.document import pager_lines
from cartwatch.digest.ids import masked


def render_json(doc: dict, *, mask_ids: bool = False) -> str:
    out = masked(doc, mask_ids)
    out = dict(out, pager=pager_lines(out))
    return json.dumps(out, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
