"""The fuzz harness, loader layer: hostile files of every format (tests/fuzz_inputs.py) loaded into
one store, file after file, as an inbox would deliver them. The parser layer is
tests/transforms/parsers/test_parser_fuzz.py.

For every file, whatever it holds, `load_file`:
- never raises;
- either loads it: rows read > 0, read = accepted + duplicate + quarantined, and the store holds
  exactly that: its meta.files record, `read` rows in raw.received, `quarantined` in
  quarantine.rows, `accepted` staged rows;
- or refuses it whole with a one-line reason: nothing of it is stored, and it is not recorded as
  loaded (so it is not "already loaded" when it comes again);
- or finds it already loaded (the same bytes came before) and changes nothing.
Default run: 12 files per format (48; a load costs about 0.1-0.3 s); `-m slow`: 600 per format (2,400).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cartwatch.loader import file_sha256, load_file
from fuzz_inputs import FEED_FILES

FAST = settings(max_examples=12, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SLOW = settings(max_examples=600, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
STAGED = ("stg.lab_results", "stg.vitals", "stg.infusions", "stg.events")


@pytest.fixture(scope="module")
def inbox(rules, tmp_path_factory):
    """One store for every file of a test, as an inbox fills it (duplicates across files happen)."""
    from cartwatch.ingest import staging_reference
    from cartwatch.store import open_store
    from sample_paths import LOAD_CLOCK, SITE_TZ
    con = open_store(":memory:")
    yield con, staging_reference(con, rules, SITE_TZ, LOAD_CLOCK), tmp_path_factory.mktemp("inbox")
    con.close()


def _stored(con, sha: str) -> dict[str, int]:
    """What the store holds of one file, by its content hash."""
    counts = con.execute(
        "SELECT (SELECT count(*) FROM raw.received WHERE file_sha256 = $sha), "
        "(SELECT count(*) FROM quarantine.rows WHERE file_sha256 = $sha), "
        + ", ".join(f"(SELECT count(*) FROM {t} WHERE file_sha256 = $sha)" for t in STAGED),
        {"sha": sha}).fetchone()
    return {"raw": counts[0], "quarantined": counts[1], "staged": sum(counts[2:])}


def _recorded(con, sha: str):
    rows = con.execute("SELECT rows_read, accepted, duplicate, quarantined FROM meta.files WHERE file_sha256 = ?",
                       [sha]).fetchall()
    return rows[0] if rows else None


def check_load(con, ref, path) -> None:
    sha = file_sha256(path)
    before = _recorded(con, sha)
    report = load_file(con, path, ref)
    recorded = _recorded(con, sha)
    if report.status == "already_loaded":
        assert before is not None and recorded == before and report.read == before[0]
        return
    assert before is None
    if report.status == "skipped":
        assert report.reason and "\n" not in report.reason and report.read == 0
        assert recorded is None and _stored(con, sha) == {"raw": 0, "quarantined": 0, "staged": 0}
        return
    assert report.status == "loaded" and report.read > 0 and report.adds_up(), report
    assert recorded == (report.read, report.accepted, report.duplicate, report.quarantined)
    assert _stored(con, sha) == {"raw": report.read, "quarantined": report.quarantined, "staged": report.accepted}


def _load_one(inbox, data, suffix: str) -> None:
    con, ref, folder = inbox
    path = folder / f"feed{suffix}"
    path.write_bytes(data.draw(FEED_FILES[suffix]()))
    check_load(con, ref, path)


@pytest.mark.parametrize("suffix", list(FEED_FILES))
@FAST
@given(data=st.data())
def test_every_file_loads_whole_or_is_refused_whole(inbox, suffix, data):
    _load_one(inbox, data, suffix)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", list(FEED_FILES))
@SLOW
@given(data=st.data())
def test_every_file_loads_whole_or_is_refused_whole_thorough(inbox, suffix, data):
    _load_one(inbox, data, suffix)
