"""`cartwatch report`: the cohort report, as one JSON document rendered as JSON or self-contained HTML.

    doc = make_report(con, rules, members, as_of=..., cohort_filters={...})
    text = render(doc, "html", mask_ids=False)

The cohort is chosen like a backfill's (cartwatch/backfill.py `cohort_infusions`), the windows are
the evaluation's (the last one stored, one made as of a moment, or what a stream stored on one
night: `night`, cartwatch/streams.py), and the figures come from cartwatch/report/stats.py.
docs/report.md describes every key of the document.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from cartwatch.report.outcomes import outcomes
from cartwatch.report.stats import (CONFIDENCE, agreement, cumulative_incidence, flagged_proportions,
                                    highest_status_counts, late_onsets, onset_summaries)
from cartwatch.streams import Night
from transforms.rules import Rules

REPORT_VERSION = 2      # the document's shape (docs/report.md); a change of keys is a new version (2: `stored_night`)
LATE_ONSET_RULE = "iec_hs.late_onset_day"


class ReportError(ValueError):
    """The report cannot be made (an empty cohort, nothing evaluated)."""


def make_report(con: duckdb.DuckDBPyConnection, rules: Rules, members: list[tuple[str, str]], *,
                as_of: datetime, cohort_filters: dict, night: Night | None = None, site_tz: str = "UTC") -> dict:
    """The report's document for the infusions `members` ((patient, infusion) pairs), of the
    evaluation in the tables or of a stored `night` of a stream (`site_tz`: the settings' zone)."""
    if not members:
        raise ReportError("report: no infusion matches the cohort filters")
    frame = outcomes(con, members, night, site_tz)
    if frame.is_empty() and night is not None:
        raise ReportError(f"report: none of the cohort's infusions was evaluated on night {night.night} "
                          f"of '{night.stream}'")
    if frame.is_empty():
        raise ReportError("report: the cohort's infusions are not in the evaluation (run `cartwatch nightly`, "
                          "or pass --as-of to evaluate now)")
    late_day = rules.value(LATE_ONSET_RULE)
    infusions = frame.select("patient_id", "infusion_id", "last_day").unique()
    follow_up = infusions.get_column("last_day").drop_nulls()
    return {
        "report_version": REPORT_VERSION,
        "as_of": as_of.isoformat(),
        "stored_night": None if night is None else {"stream": night.stream, "night": night.night.isoformat()},
        "rules_version": rules.version,
        "cohort": {"filters": cohort_filters, "infusions": infusions.height,
                   "patients": infusions.get_column("patient_id").n_unique(),
                   "follow_up_days": {"min": follow_up.min(), "median": follow_up.median(), "max": follow_up.max()}},
        "method": {
            "flagged": "the infusion reached a status that pages in the digest (suspected, criteria_met, met)",
            "confidence_interval": f"Wilson score, {CONFIDENCE:.0%} (statsmodels proportion_confint)",
            "quantiles": "linear interpolation between order statistics",
            "late_onset": f"onset on or after day {late_day:g} post-infusion (rule {LATE_ONSET_RULE})",
            "kappa": "Cohen's kappa of flagged yes/no per infusion (statsmodels cohens_kappa)",
        },
        "criteria_sets": list(dict.fromkeys(frame.get_column("criteria_set").to_list())),
        "flagged": flagged_proportions(frame),
        "highest_status": highest_status_counts(frame),
        "onset": onset_summaries(frame),
        "late_onset": late_onsets(frame, late_day),
        "cumulative_incidence": cumulative_incidence(frame),
        "agreement": agreement(frame),
    }


def render(doc: dict, fmt: str, mask_ids: bool = False) -> str:
    """The document as `json` or `html`; with mask_ids every patient and infusion id is a pseudonym."""
    from cartwatch.digest.ids import masked

    shown = masked(doc, mask_ids)
    if fmt == "json":
        import json

        return json.dumps(shown, indent=2) + "\n"
    from cartwatch.report.render_html import render_html

    return render_html(shown)
