"""Masked output (issue 12 F13): pseudonyms keyed by a secret, and file names masked with ids."""

from __future__ import annotations

import hashlib
import json
import stat

import pyarrow as pa

from cartwatch.digest import ids
from cartwatch.export import masked_table


def test_without_a_key_in_the_environment_a_stored_owner_only_key_is_made_once(tmp_path, monkeypatch):
    monkeypatch.delenv("CARTWATCH_MASK_KEY", raising=False)
    monkeypatch.setattr(ids, "KEY_FILE", tmp_path / "var" / "mask.key")
    first = ids.mask("CW-0015")
    assert stat.S_IMODE((tmp_path / "var" / "mask.key").stat().st_mode) == 0o600
    assert first == ids.mask("CW-0015") and first.startswith("pt-")
    # not the unkeyed hash anyone could recompute by trying every hospital number
    assert first != "pt-" + hashlib.sha256(b"CW-0015").hexdigest()[:8]


def test_the_environment_key_wins(monkeypatch):
    monkeypatch.setenv("CARTWATCH_MASK_KEY", "k1")
    one = ids.mask("CW-0015")
    monkeypatch.setenv("CARTWATCH_MASK_KEY", "k2")
    assert ids.mask("CW-0015") != one


def test_sources_lose_the_file_name_and_keep_the_line(monkeypatch):
    monkeypatch.setenv("CARTWATCH_MASK_KEY", "k1")
    masked = ids.mask_source("/inbox/2026-10/CW-0015_labs_2026-10.csv:212")
    assert masked == ids.mask("CW-0015_labs_2026-10.csv", prefix="file-") + ":212" and "CW-0015" not in masked
    assert ids.mask_source(None) is None
    doc = ids.masked({"cards": [{"patient_id": "CW-0015", "evidence": [
        {"source": "CW-0015_labs.csv:3"}], "source_file": "CW-0015_labs.csv"}]}, True)
    assert "CW-0015" not in json.dumps(doc)


def test_masked_exports_mask_sources_and_evidence(monkeypatch):
    monkeypatch.setenv("CARTWATCH_MASK_KEY", "k1")
    table = pa.table({"patient_id": ["CW-0015"], "source": ["CW-0015_labs.csv:9"],
                      "evidence": [json.dumps([{"rule": "ldh", "source": "CW-0015_labs.csv:9"}])]})
    out = masked_table(table).to_pylist()[0]
    assert "CW-0015" not in json.dumps(out)
    assert json.loads(out["evidence"]) == [{"rule": "ldh", "source": ids.mask_source("CW-0015_labs.csv:9")}]
