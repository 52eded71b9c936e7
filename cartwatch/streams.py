"""Reading stored evaluations: the last one in the tables, or one night of a stream.

`digest` and `export` read; they do not evaluate unless `--as-of` asks for an evaluation at a
moment. What they can read:

- the last evaluation (flags.windows, flags.daily, derived.timeline as the last nightly run left
  them; its moment is meta.build_state.as_of). A reading command's `--as-of` evaluates in a scratch
  database instead (cartwatch/scratch.py) and leaves these as they are;
- one night of a stream (`--stream nightly|backfill:<id>`, `--night YYYY-MM-DD`; the stream's
  latest night when --night is left out): the windows, the latest day of flags and the digest
  that night stored (flags.windows_by_night, flags.daily_by_night, flags.digest_by_night).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

import duckdb


class StreamError(ValueError):
    """The stream or night asked for is not stored (one line naming what is)."""


@dataclass(frozen=True)
class Night:
    stream: str
    night: date
    as_of: datetime


def streams(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [s for (s,) in con.execute("SELECT DISTINCT stream FROM flags.digest_by_night ORDER BY 1").fetchall()]


def resolve_stream(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """`nightly`, `backfill:<id>`, or a backfill id alone (as `backfill` prints it)."""
    known = streams(con)
    for candidate in (name, f"backfill:{name}"):
        if candidate in known:
            return candidate
    listed = ", ".join(known) if known else "none stored yet"
    raise StreamError(f"--stream {name!r}: no such stream in this database (stored: {listed})")


def find_night(con: duckdb.DuckDBPyConnection, stream: str | None, night: date | None) -> Night:
    """The stored night of `stream` (default nightly) on `night` (default its latest)."""
    stream = resolve_stream(con, stream or "nightly")
    if night is None:
        row = con.execute("SELECT night, as_of FROM flags.digest_by_night WHERE stream = ? "
                          "ORDER BY as_of DESC LIMIT 1", [stream]).fetchall()
    else:
        row = con.execute("SELECT night, as_of FROM flags.digest_by_night WHERE stream = ? AND night = ? "
                          "ORDER BY as_of DESC LIMIT 1", [stream, night]).fetchall()
    if not row:
        first, last = con.execute("SELECT min(night), max(night) FROM flags.digest_by_night WHERE stream = ?",
                                  [stream]).fetchall()[0]
        raise StreamError(f"--night {night}: stream '{stream}' has no night stored then "
                          f"(it has {first} to {last})")
    return Night(stream, row[0][0], row[0][1])


def stored_document(con: duckdb.DuckDBPyConnection, night: Night) -> dict:
    (text,) = con.execute("SELECT digest FROM flags.digest_by_night WHERE stream = ? AND as_of = ?",
                          [night.stream, night.as_of]).fetchall()[0]
    return json.loads(text)


def last_evaluation(con: duckdb.DuckDBPyConnection) -> tuple[datetime, bool]:
    """The moment (and as-loaded flag) of the evaluation the tables hold."""
    rows = con.execute("SELECT as_of, as_loaded FROM meta.build_state").fetchall()
    if not rows:
        raise StreamError("nothing evaluated in this database yet: run `cartwatch nightly`, "
                          "or pass --as-of to evaluate now")
    return rows[0][0], rows[0][1]
