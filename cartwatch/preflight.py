"""Checks made before anything starts: paths, dates, the rules file, the notifier, the database.

Each check raises `InputError(thing, reason)`, which the command line prints as one line,
`cartwatch: <thing>: <reason>`, with exit status 2. Nothing here imports Prefect or Great
Expectations, so a mistyped path is reported in well under a second, not after a server has started.
"""

from __future__ import annotations

import errno
import os
import tempfile
from datetime import date, datetime, time, timezone
from pathlib import Path


class InputError(ValueError):
    """Bad input: `thing` (an option, a setting, a file) and why it cannot be used."""

    def __init__(self, thing: str, reason: str):
        super().__init__(f"{thing}: {reason}")
        self.thing, self.reason = thing, reason


def folder(path: Path, thing: str) -> Path:
    """An existing, readable folder (an inbox)."""
    if not path.exists():
        raise InputError(f"{thing} {path}", "no such folder")
    if not path.is_dir():
        raise InputError(f"{thing} {path}", "is a file, not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise InputError(f"{thing} {path}", "cannot be read (permission denied)")
    return path


def output_folder(path: Path, thing: str) -> Path:
    """A folder that exists and is writable, or that can be created."""
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{thing} {path}", "is a file, not a folder")
        _try_writing_in(path, f"{thing} {path}", "cannot be written")
        return path
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None:
        if not parent.is_dir():
            raise InputError(f"{thing} {path}", f"cannot be created ({parent} is not a folder)")
        _try_writing_in(parent, f"{thing} {path}", f"cannot be created in {parent}")
    return path


def _try_writing_in(folder: Path, thing: str, failure: str) -> None:
    """Create and remove a file in `folder`: the permission bits alone do not tell (root passes every
    check of os.access, and a read-only mount or /proc refuses whoever asks), and a write refused only
    after the run would cost the run."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".cartwatch-probe-", dir=folder)
    except OSError as exc:
        raise InputError(thing, f"{failure} ({_reason(exc)})") from None
    os.close(handle)
    os.unlink(probe)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:       # a folder that exists but takes no files (/proc)
        return "it takes no new files"
    return (exc.strerror or type(exc).__name__).lower()


def output_file(path: Path, thing: str) -> Path:
    if path.is_dir():
        raise InputError(f"{thing} {path}", "is a folder, not a file")
    output_folder(path.parent, f"{thing} {path}: folder")
    if path.exists():
        try:
            open(path, "ab").close()     # opened to append, closed unchanged
        except OSError as exc:
            raise InputError(f"{thing} {path}", f"cannot be written ({_reason(exc)})") from None
    return path


def feed_paths(texts: list[str]) -> list[Path]:
    """Files or folders to ingest: each must exist and be readable."""
    paths = []
    for text in texts:
        path = Path(text)
        if not path.exists():
            raise InputError(str(path), "no such file or folder")
        if not os.access(path, os.R_OK):
            raise InputError(str(path), "cannot be read (permission denied)")
        paths.append(path)
    return paths


def input_file(text: str, thing: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise InputError(f"{thing} {path}", "no such file" if not path.exists() else "is not a file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{thing} {path}", "cannot be read (permission denied)")
    return path


def rules(path: Path):
    """The rules file, validated by its only loader (transforms/rules.py)."""
    from transforms.rules import RulesError, load_rules

    try:
        return load_rules(path)
    except RulesError as exc:
        raise InputError("rules file", str(exc)) from None


# what a timestamp option takes, said with the refusal (a zone abbreviation such as PST is not one)
FORMS = " (ISO 8601: 2026-07-07, or 2026-07-07T12:00 in the site zone, or with Z or +02:00)"


def timestamp(text: str | None, option: str, site_tz: str) -> datetime | None:
    """An ISO timestamp (naive: site zone); a bare date is 00:00 of that date in the site zone."""
    from transforms.timestamps import TimestampError, parse_timestamp, zone

    if text is None:
        return None
    try:
        at = parse_timestamp(text, site_tz, allow_date_only=True)
    except TimestampError as exc:
        raise InputError(option, str(exc) + (FORMS if "unparseable" in str(exc) else "")) from None
    if len(text.strip()) == 10:
        local = datetime.combine(datetime.fromisoformat(text.strip()).date(), time(0), zone(site_tz))
        at = local.astimezone(timezone.utc)
    return at


def day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(option, f"{text!r} is not a date (YYYY-MM-DD)") from None


def notifier(settings) -> None:
    """notify_url: every ${VAR} it names is set (the message is sent at the end of a run)."""
    if not settings.notify_url.strip():
        return
    from cartwatch.notify import NotifyConfigError, resolve_urls

    try:
        resolve_urls(settings.notify_url)
    except NotifyConfigError as exc:
        raise InputError("notify_url", str(exc).removeprefix("notify_url ")) from None


def database(path: Path, *, create: bool) -> None:
    """Open, check and migrate the database, then close it (the run opens it again). Raises
    store.StoreError (bad file, newer schema) or store.JobBusy (held by another process)."""
    from cartwatch.store import open_store

    open_store(path, create=create).close()
