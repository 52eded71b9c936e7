"""The on-call alert digest.

select (what the built tables say as of a moment) -> document (sections against the stream's prior
state) -> renderers (Markdown, HTML with embedded plots, JSON, pager lines). State lives in
flags.digest_by_night, one row per digest of a stream, so a window already reported is not repeated
unless it escalates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import duckdb

from cartwatch.digest.document import compose, pager_lines
from cartwatch.digest.ids import mask, masked
from cartwatch.digest.pipeline_runs import pipeline_runs
from cartwatch.digest.render_html import render_html
from cartwatch.digest.render_json import render_json
from cartwatch.digest.render_md import render_md
from cartwatch.digest.select import data_quality, patient_snapshot
from cartwatch.digest.state import previous_saved_at, prior_state, store_digest
from transforms.rules import Rules, load_rules
from transforms.timestamps import zone

RENDERERS = {"md": render_md, "html": render_html, "json": render_json}

__all__ = ["RENDERERS", "Draft", "draft_digest", "make_digest", "save_digest", "mask", "masked", "night_of", "pager_lines", "render",
           "render_html", "render_json", "render_markdown", "render_md"]


def night_of(as_of: datetime, site_tz: str) -> date:
    """The night a run belongs to: the calendar date of its as-of in the site zone."""
    return as_of.astimezone(zone(site_tz)).date()


@dataclass
class Draft:
    """A digest not saved yet: its document and the reporting state it leaves once saved."""

    doc: dict
    state: dict
    stream: str
    as_of: datetime
    since: datetime | None
    night: date


def draft_digest(con: duckdb.DuckDBPyConnection, rules: Rules, *, as_of: datetime, as_loaded: bool,
                 stream: str, site_tz: str, snapshot: dict | None = None, since: datetime | None = None) -> Draft:
    """The digest of `stream` as of `as_of` (derived/flags built as of it, or `snapshot`), unsaved.

    The prior state is the stream's latest digest before `as_of` (or, with `since`, its latest digest
    at or before `since`).
    """
    prior_before = as_of if since is None else since + timedelta(microseconds=1)
    prior, prior_as_of = prior_state(con, stream, prior_before)
    since = prior_as_of if since is None else since
    snapshot = snapshot if snapshot is not None else patient_snapshot(con, as_of=as_of, rules=rules)
    quality = data_quality(con, as_of=as_of, since=since, as_loaded=as_loaded, rules=rules)
    # the pipeline's own failures since the previous digest went out (wall clock, not data time)
    quality["pipeline_runs"] = pipeline_runs(con, stream, previous_saved_at(con, stream, prior_before), site_tz)
    night = night_of(as_of, site_tz)
    doc, state = compose(snapshot, quality, prior, as_of=as_of, since=since, stream=stream, night=night)
    return Draft(doc, state, stream, as_of, since, night)


def save_digest(con: duckdb.DuckDBPyConnection, draft: Draft, created_at: datetime | None = None) -> None:
    """Keep the digest and the state it leaves: from now on its windows count as reported."""
    store_digest(con, draft.stream, draft.doc, draft.state, draft.as_of, draft.since, draft.night,
                 created_at or draft.as_of)


def make_digest(con: duckdb.DuckDBPyConnection, rules: Rules, *, as_of: datetime, as_loaded: bool,
                stream: str, site_tz: str, snapshot: dict | None = None, since: datetime | None = None,
                persist: bool = True, created_at: datetime | None = None) -> dict:
    """The digest document (draft_digest); `persist` saves it at once (a backfill's nights, whose
    digests are read from the database: nothing is sent that could be lost)."""
    draft = draft_digest(con, rules, as_of=as_of, as_loaded=as_loaded, stream=stream, site_tz=site_tz,
                         snapshot=snapshot, since=since)
    if persist:
        save_digest(con, draft, created_at)
    return draft.doc


def render(doc: dict, fmt: str, *, mask_ids: bool = False) -> str:
    return RENDERERS[fmt](doc, mask_ids=mask_ids)


def render_markdown(con: duckdb.DuckDBPyConnection, *, as_of: datetime, rules_version: str | None = None,
                    mask_ids: bool = False, rules: Rules | None = None, site_tz: str = "UTC") -> str:
    """The Markdown digest of the built tables, everything reported as new (no stream state)."""
    rules = rules or load_rules()
    doc = make_digest(con, rules, as_of=as_of, as_loaded=False, stream="adhoc", site_tz=site_tz,
                      persist=False)
    return render_md(doc, mask_ids=mask_ids)
