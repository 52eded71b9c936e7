"""What a run leaves in Prefect's database: nothing that identifies a patient, unless asked for.

Prefect keeps, in its own store (prefect_home/prefect.db, or the server's database), every flow
run's parameters, each task's state message (the text of the exception that failed it), the logs
(with tracebacks) and the artifacts, and it copies an artifact's content into its events table. So:

- a task's exception reaches Prefect scrubbed (`scrub_errors`): its type name kept, quoted text and
  tokens with digits replaced by '…' (notify.scrub), the original only on the exception object in
  this process (`original`, for `--debug`), never in Prefect's traceback text nor in the copy
  Prefect pickles into its result storage (`KeepsOriginalHere`);
- the digest artifact holds counts only (`artifact_text`), unless the settings ask for the digest:
  `artifact_digest = true` (ids masked) or `artifact_unmasked = true` (real ids);
- parameters hold settings overrides (paths), dates and flags; a backfill's cohort is a file path.
"""

from __future__ import annotations

import functools

from cartwatch import notify
from cartwatch.settings import Settings


class KeepsOriginalHere:
    """An exception holding its unscrubbed `original` for `--debug`, in this process only: a copy
    (Prefect pickles a failed flow's exception into its result storage) has no `original`."""

    def __reduce__(self):
        state = {k: v for k, v in self.__dict__.items() if k != "original"}
        return (_without_original, (type(self), self.args), state)


def _without_original(cls, args: tuple):
    exc = cls.__new__(cls)
    BaseException.__init__(exc, *args)
    exc.original = None
    return exc


class Scrubbed(KeepsOriginalHere):
    """An error whose message has had values and identifiers removed; `kind` names the original type."""

    def __init__(self, original: BaseException):
        self.kind = type(original).__name__
        self.original = original
        super().__init__(f"{self.kind}: {notify.scrub(str(original))}")


class ScrubbedError(Scrubbed, RuntimeError):
    """A scrubbed error."""


class ScrubbedIOError(Scrubbed, OSError):
    """A scrubbed I/O error: still an OSError, so the I/O tasks retry it."""


def scrubbed(exc: BaseException) -> BaseException:
    """The exception to let reach Prefect: `exc` scrubbed (interrupts and exits pass unchanged)."""
    if not isinstance(exc, Exception) or isinstance(exc, Scrubbed):
        return exc
    return (ScrubbedIOError if isinstance(exc, OSError) else ScrubbedError)(exc)


def error_kind(exc: BaseException) -> str:
    """The type name a person should read: the original's for a scrubbed error."""
    return getattr(exc, "kind", type(exc).__name__)


def scrub_errors(fn):
    """Decorate a task's function: any exception it raises reaches Prefect scrubbed, without the
    original in its traceback (`from None`: Prefect logs the traceback it sees)."""
    @functools.wraps(fn)
    def guarded(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise scrubbed(exc) from None
    return guarded


def artifact_text(doc: dict, settings: Settings) -> str:
    """The digest artifact's Markdown: counts only by default; the digest when the settings ask."""
    if settings.artifact_unmasked or settings.artifact_digest:
        from cartwatch.digest import render

        return render(doc, "md", mask_ids=not settings.artifact_unmasked or settings.mask_ids)
    counts = doc["counts"]
    rows = [("alerts (new or escalated, suspected and up)", doc["alerts"]),
            ("patients in this digest", doc.get("patient_count", 0)),
            ("patients paged", doc.get("paged_patients", 0))]
    rows += [(f"windows {name.replace('_', ' ')}", counts[name]) for name in ("new", "escalated", "still_open",
                                                                             "resolved")]
    lines = [f"# cartwatch digest as of {doc['as_of']}", "",
             "Counts only: the digest itself is in the digest folder (settings artifact_digest, "
             "artifact_unmasked put it here).", "", "| what | count |", "|---|---|"]
    return "\n".join(lines + [f"| {what} | {n} |" for what, n in rows]) + "\n"
