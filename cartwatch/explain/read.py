"""Reading one infusion episode's stored evaluation: rows of the derived and flags tables.

The explanation never judges a rule itself: every verdict, signal, timing and item state it shows
is a column the build stored (sql/derived, sql/flags, transforms/derived, transforms/flags).
"""

from __future__ import annotations

from datetime import datetime

import duckdb


class ExplainError(ValueError):
    """The patient, infusion or evaluation asked for is not in the store (one line naming it).
    `patients` and `infusions` are the ids the line names, so that masked output can mask them."""

    def __init__(self, message: str, patients: tuple[str, ...] = (), infusions: tuple[str, ...] = ()):
        super().__init__(message)
        self.patients, self.infusions = patients, infusions

    def masked(self) -> str:
        from cartwatch.digest.ids import mask

        text = str(self)
        for infusion in self.infusions:
            text = text.replace(infusion, mask(infusion, prefix="inf-"))
        for patient in self.patients:
            text = text.replace(patient, mask(patient))
        return text


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def named(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> list[dict]:
    """rows() with named parameters (only those the text uses: DuckDB refuses extra ones)."""
    return rows(con, sql, {k: v for k, v in params.items() if f"${k}" in sql})


def iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


EPISODES_SQL = """
SELECT patient_id, infusion_id, product, site_tz, infused_at, episode_end
FROM derived.infusion_episodes WHERE patient_id = ? ORDER BY infused_at, infusion_id
"""


def episode(con: duckdb.DuckDBPyConnection, patient_id: str, infusion_id: str | None) -> tuple[dict, list[dict]]:
    """The episode explained (the patient's latest infusion unless one is named) and all of them."""
    episodes = rows(con, EPISODES_SQL, [patient_id])
    if not episodes:
        raise ExplainError(f"patient {patient_id!r}: no infusion of this patient in the stored evaluation",
                           patients=(patient_id,))
    if infusion_id is None:
        return episodes[-1], episodes
    chosen = [e for e in episodes if e["infusion_id"] == infusion_id]
    if not chosen:
        known = ", ".join(e["infusion_id"] for e in episodes)
        raise ExplainError(f"--infusion {infusion_id!r}: not an infusion of patient {patient_id!r} "
                           f"(its infusions: {known})", patients=(patient_id,),
                           infusions=(infusion_id, *(e["infusion_id"] for e in episodes)))
    return chosen[0], episodes


def of_episode(con: duckdb.DuckDBPyConnection, table: str, ep: dict, order: str, where: str = "") -> list[dict]:
    """The episode's rows of one stored table (`table`, `order` and `where` are this package's own text)."""
    sql = (f"SELECT * FROM {table} WHERE patient_id = ? AND infusion_id = ? {where} ORDER BY {order}")
    return rows(con, sql, [ep["patient_id"], ep["infusion_id"]])


def windows(con: duckdb.DuckDBPyConnection, ep: dict) -> list[dict]:
    """flags.windows, as `export windows` reads it (evidence as JSON text)."""
    return of_episode(con, "flags.windows", ep, "criteria_set, onset_at")


def daily(con: duckdb.DuckDBPyConnection, ep: dict) -> list[dict]:
    """flags.daily, as `export flags` reads it."""
    return of_episode(con, "flags.daily", ep, "day")
