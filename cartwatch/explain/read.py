"""Reading one infusion episode's stored evaluation: rows of the derived and flags tables.

The explanation never judges a rule itself: every verdict, signal, timing and item state it shows
is a column the build stored (sql/derived, sql/flags, transforms/derived, transforms/flags).
"""

from __future__ import annotations

from datetime import datetime

import duckdb


class ExplainError(ValueError):
    """The patient, infusion or evaluation asked for is not in the store (one line naming it).
    `template` names each id by a field: `patients` and `infusions` give their values (an infusion
    field may hold a list), so that masked output masks exactly the ids, never text that happens to
    contain one (a patient id "e" or "" must not rewrite the rest of the line)."""

    def __init__(self, template: str, patients: dict[str, str] | None = None,
                 infusions: dict[str, str | tuple[str, ...]] | None = None):
        self.template, self.patients, self.infusions = template, patients or {}, infusions or {}
        super().__init__(self._text(str, str))

    def _text(self, patient, infusion) -> str:
        values = {field: repr(patient(value)) for field, value in self.patients.items()}
        for field, value in self.infusions.items():
            values[field] = (", ".join(infusion(v) for v in value) if isinstance(value, tuple)
                             else repr(infusion(value)))
        return self.template.format(**values)

    def masked(self) -> str:
        from cartwatch.digest.ids import mask

        return self._text(mask, lambda infusion: mask(infusion, prefix="inf-"))


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


def episode(con: duckdb.DuckDBPyConnection, patient_id: str, infusion_id: str | None,
            as_of: datetime | None = None) -> tuple[dict, list[dict]]:
    """The episode explained (the patient's latest infusion unless one is named) and all of them."""
    episodes = rows(con, EPISODES_SQL, [patient_id])
    if not episodes:
        raise unknown_patient(con, patient_id, as_of)
    if infusion_id is None:
        return episodes[-1], episodes
    chosen = [e for e in episodes if e["infusion_id"] == infusion_id]
    if not chosen:
        raise ExplainError("--infusion {infusion}: not an infusion of patient {patient} (its infusions: {known})",
                           patients={"patient": patient_id},
                           infusions={"infusion": infusion_id, "known": tuple(e["infusion_id"] for e in episodes)})
    return chosen[0], episodes


# an id typed in another case or with stray spaces (cw-0001, " CW-0001") is offered back
SAME_ID_SQL = """
SELECT DISTINCT patient_id FROM derived.infusion_episodes
WHERE lower(trim(patient_id)) = lower(trim(?)) ORDER BY patient_id LIMIT 1
"""


def unknown_patient(con: duckdb.DuckDBPyConnection, patient_id: str, as_of: datetime | None) -> ExplainError:
    """The line for a patient the evaluation does not hold: as of when (a patient infused later is
    not in an earlier evaluation), and the id it holds when only case or spaces differ."""
    when = f" as of {as_of.isoformat()}" if as_of is not None else ""
    close = rows(con, SAME_ID_SQL, [patient_id])
    if close:
        return ExplainError("patient {patient}: no infusion of this patient in the stored evaluation" + when
                            + " (did you mean {close}?)",
                            patients={"patient": patient_id, "close": close[0]["patient_id"]})
    return ExplainError("patient {patient}: no infusion of this patient in the stored evaluation" + when,
                        patients={"patient": patient_id})


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
