"""The reporting state of a digest stream: what was already said, so it is not said again.

A stream ('nightly', or 'backfill:<id>') is a chain of digests; each starts from the state its
predecessor left (flags.digest_by_night.state) and sorts the current windows into sections:

- new: a window never reported (or reported resolved and open again);
- escalated: reported before, now at a higher status (watch < suspected < criteria met);
- still open: reported before, open, not higher: listed in one line, its details not repeated;
- resolved: reported open before, now closed (end_at reached) or gone (its results withdrawn).

A window opened and closed between two digests is reported once, as new (and closed).
"""

from __future__ import annotations

import json
from datetime import datetime

import duckdb

from cartwatch.digest.select import iso

SECTIONS = ("new", "escalated", "still_open", "resolved")
RANK = {"watch": 1, "suspected": 2, "criteria_met": 3, "met": 3}
ALERT_RANK = 2        # statuses from here up page someone; watch is context only


def window_key(w: dict) -> str:
    return "|".join(str(w.get(k) or "") for k in ("patient_id", "infusion_id", "criteria_set", "onset_at"))


def rank(status: str | None) -> int:
    return RANK.get(status or "", 1)


def is_open(w: dict, as_of_iso: str) -> bool:
    return w.get("end_at") is None or w["end_at"] > as_of_iso


def classify(windows: list[dict], prior: dict[str, dict], as_of: datetime) -> tuple[dict, dict]:
    """Sections of this digest and the state after it; `prior` is the state before (may be empty)."""
    now = iso(as_of)
    sections: dict[str, list[dict]] = {s: [] for s in SECTIONS}
    state: dict[str, dict] = {}
    current = {window_key(w): w for w in windows}
    for key, w in current.items():
        before = prior.get(key)
        opened = is_open(w, now)
        entry = dict(w, open=opened)
        if before is None or (before["resolved"] and opened):
            sections["new"].append(entry)
            state[key] = {"status": w["status"], "rank": rank(w["status"]), "resolved": not opened,
                          "first_reported": now}
            continue
        state[key] = dict(before)
        if before["resolved"]:
            continue
        if not opened:
            sections["resolved"].append(dict(entry, previous_status=before["status"], withdrawn=False))
            state[key]["resolved"] = True
        elif rank(w["status"]) > before["rank"]:
            sections["escalated"].append(dict(entry, previous_status=before["status"]))
            state[key].update(status=w["status"], rank=rank(w["status"]))
        else:
            sections["still_open"].append(dict(entry, previous_status=before["status"]))
    for key, before in prior.items():
        if key not in current and not before["resolved"]:
            pid, inf, cset, onset = key.split("|", 3)
            sections["resolved"].append({"patient_id": pid, "infusion_id": inf or None, "criteria_set": cset,
                                         "onset_at": onset or None, "status": before["status"],
                                         "previous_status": before["status"], "open": False,
                                         "withdrawn": True, "evidence": []})
    return sections, dict(sorted(state.items()))


def alert_count(sections: dict) -> int:
    """Windows that page someone: new or escalated at suspected / criteria met / met."""
    return sum(rank(w["status"]) >= ALERT_RANK for s in ("new", "escalated") for w in sections[s])


# ---------------------------------------------------------------------------------------------
# persistence (flags.digest_by_night)


def prior_state(con: duckdb.DuckDBPyConnection, stream: str, before: datetime) -> tuple[dict, datetime | None]:
    """The state left by the stream's latest digest strictly before `before`, and that digest's as-of."""
    row = con.execute("SELECT state, as_of FROM flags.digest_by_night WHERE stream = ? AND as_of < ? "
                      "ORDER BY as_of DESC LIMIT 1", [stream, before]).fetchone()
    if row is None:
        return {}, None
    return json.loads(row[0]), row[1]


def previous_saved_at(con: duckdb.DuckDBPyConnection, stream: str, before: datetime) -> datetime | None:
    """When the stream's latest digest strictly before `before` (an as-of) was saved."""
    row = con.execute("SELECT created_at FROM flags.digest_by_night WHERE stream = ? AND as_of < ? "
                      "ORDER BY as_of DESC LIMIT 1", [stream, before]).fetchone()
    return row[0] if row else None


def store_digest(con: duckdb.DuckDBPyConnection, stream: str, doc: dict, state: dict,
                 as_of: datetime, since: datetime | None, night, created_at: datetime) -> None:
    """Keep the digest and its state; a re-run of the same moment replaces it."""
    con.execute("DELETE FROM flags.digest_by_night WHERE stream = ? AND as_of = ?", [stream, as_of])
    con.execute("INSERT INTO flags.digest_by_night VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [stream, night, as_of, since, json.dumps(doc, sort_keys=True),
                 json.dumps(state, sort_keys=True), doc["alerts"], created_at])


def stored_digest(con: duckdb.DuckDBPyConnection, stream: str, as_of: datetime | None = None) -> dict | None:
    """A stored digest document of a stream (at `as_of`, or its latest)."""
    sql = "SELECT digest FROM flags.digest_by_night WHERE stream = ?"
    params: list = [stream]
    if as_of is not None:
        sql += " AND as_of = ?"
        params.append(as_of)
    row = con.execute(sql + " ORDER BY as_of DESC LIMIT 1", params).fetchone()
    return json.loads(row[0]) if row else None
