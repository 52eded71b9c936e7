"""Patient identifiers in rendered output: shown as stored, or masked with a stable pseudonym.

The pseudonym is an HMAC of the identifier keyed by `CARTWATCH_MASK_KEY` from the environment
when set (a plain hash of a short hospital number can be reversed by trying them all), so the same
patient has the same mask every night on one site.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import os


def mask(patient_id: str, enabled: bool = True, prefix: str = "pt-") -> str:
    if not enabled or patient_id is None:
        return patient_id
    key = os.environ.get("CARTWATCH_MASK_KEY", "").encode()
    digest = hmac.new(key, patient_id.encode(), hashlib.sha256) if key else hashlib.sha256(patient_id.encode())
    return prefix + digest.hexdigest()[:8]


def masked(doc: dict, enabled: bool) -> dict:
    """A copy of a digest document with every `patient_id` (and `infusion_id`, often made from it)
    masked; the original is untouched."""
    if not enabled:
        return doc
    out = copy.deepcopy(doc)

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "patient_id" and isinstance(v, str):
                    node[k] = mask(v)
                elif k == "infusion_id" and isinstance(v, str):
                    node[k] = mask(v, prefix="inf-")
                else:
                    walk(v)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(out)
    out["masked"] = True
    return out
