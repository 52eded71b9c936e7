"""Patient identifiers in rendered output: shown as stored, or masked with a stable pseudonym.

The pseudonym is an HMAC of the identifier keyed by `CARTWATCH_MASK_KEY` from the environment or,
when that is not set, by a random key the first masking run stores owner-only in `var/mask.key`:
an unkeyed hash of a short hospital number can be reversed by trying them all. The same patient
has the same mask every night on one site. A file name can hold a patient id
(`CW-0015_labs.csv`), so masked output masks sources too.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path

from cartwatch.settings import REPO_ROOT

KEY_FILE = REPO_ROOT / "var" / "mask.key"


@lru_cache(maxsize=4)
def _stored_key(path: Path) -> bytes:
    """The site's masking key, made on first use: 32 random bytes, readable by the owner only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass                          # another run made it first: read theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
    return path.read_text(encoding="utf-8").strip().encode()


def mask_key() -> bytes:
    return os.environ.get("CARTWATCH_MASK_KEY", "").encode() or _stored_key(KEY_FILE)


def mask(patient_id: str, enabled: bool = True, prefix: str = "pt-") -> str:
    if not enabled or patient_id is None:
        return patient_id
    return prefix + hmac.new(mask_key(), patient_id.encode(), hashlib.sha256).hexdigest()[:8]


def mask_source(source: str | None) -> str | None:
    """`folder/CW-0015_labs.csv:12` -> `file-1a2b3c4d:12`: the file's name masked, its line kept."""
    if source is None:
        return None
    path, sep, line = source.rpartition(":")
    if not (sep and line.isdigit()):
        path, line = source, ""
    return mask(Path(path).name, prefix="file-") + (f":{line}" if line else "")


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
                elif k in ("source", "source_file") and isinstance(v, str):
                    node[k] = mask_source(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(out)
    out["masked"] = True
    return out
