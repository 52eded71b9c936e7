"""Delivery: digests and failure reports to files, and to email / Slack / a webhook when configured.

- Always: files in `settings.digest_dir` (`digest-<as-of>.{md,html,json}` and `latest.*`), and a
  line per failure in `failures.log`. Nothing leaves the machine unless `settings.notify_url` is set.
- `settings.notify_url`: one or more apprise URLs (`mailtos://...`, `slack://...`, `json://...`),
  separated by spaces or commas. Secrets stay in the environment: write `${NAME}` in the URL
  (`slack://${SLACK_TOKEN}/#oncall`) and it is filled from the variable at send time; a missing
  variable is an error, never an empty credential. The URL itself is never logged.
- What is sent: the pager lines and the counts, with patient identifiers masked unless the setting
  `notify_unmasked` is true (`CARTWATCH_NOTIFY_UNMASKED=true`); the full digest stays in the local file.
- Failure reports carry the run, the failing step and the error's type and message with every
  token that contains a digit or is quoted replaced by '…' (values and identifiers do not leave).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cartwatch.settings import Settings

log = logging.getLogger("cartwatch.notify")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SENSITIVE = re.compile(r"'[^']*'|\"[^\"]*\"|\b[\w.-]*\d[\w.-]*\b")


class DeliveryError(ConnectionError):
    """A configured channel refused or could not be reached (an I/O error: the task retries)."""


class NotifyConfigError(ValueError):
    """notify_url names an environment variable that is not set, or no URL apprise accepts."""


@dataclass(frozen=True)
class Message:
    title: str
    body: str


def scrub(text: str) -> str:
    """An error message without values or identifiers (quoted text and tokens with digits)."""
    return _SENSITIVE.sub("…", text)


def resolve_urls(notify_url: str, environ: dict | None = None) -> list[str]:
    """The configured URLs with ${NAME} filled from the environment."""
    environ = os.environ if environ is None else environ

    def fill(match: re.Match) -> str:
        if match.group(1) not in environ:
            raise NotifyConfigError(f"notify_url refers to ${{{match.group(1)}}}, which is not set")
        return environ[match.group(1)]

    return [_ENV_REF.sub(fill, u) for u in re.split(r"[\s,]+", notify_url.strip()) if u]


def write_digest_files(digest_dir: Path, stamp: str, texts: dict[str, str]) -> dict[str, Path]:
    """digest-<stamp>.<fmt> and latest.<fmt> for each format; returns the dated paths."""
    digest_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for fmt, text in texts.items():
        dated = digest_dir / f"digest-{stamp}.{fmt}"
        _atomic_write(dated, text)
        _atomic_write(digest_dir / f"latest.{fmt}", text)
        written[fmt] = dated
    return written


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def send(settings: Settings, message: Message) -> bool:
    """Send through the configured channels; False when none is configured (nothing leaves)."""
    if not settings.notify_url.strip():
        return False
    import apprise

    urls = resolve_urls(settings.notify_url)
    client = apprise.Apprise()
    for url in urls:
        if not client.add(url):
            raise NotifyConfigError("notify_url: a URL is not one apprise accepts")
    if not client.notify(title=message.title, body=message.body, body_format=apprise.NotifyFormat.TEXT):
        raise DeliveryError(f"notification not delivered to {len(urls)} channel(s)")
    log.info("notification sent to %d channel(s)", len(urls))
    return True


def digest_message(doc: dict, pager: list[str], path: Path | None) -> Message:
    c = doc["counts"]
    title = f"cartwatch: {doc['alerts']} alert(s) as of {doc['as_of']}"
    body = [f"New {c['new']}, escalated {c['escalated']}, still open {c['still_open']}, resolved {c['resolved']}."]
    body += pager or ["No new or escalated alert."]
    silent = doc["data_quality"]["silent_feeds"]
    if silent:
        body.append("Silent feeds: " + ", ".join(s["feed"] for s in silent))
    not_loaded = doc["data_quality"].get("not_loaded") or []
    if not_loaded:
        body.append(f"Files not loaded: {len(not_loaded)} (see the digest's data quality)")
    if path is not None:
        body.append(f"Digest: {path}")
    return Message(title, "\n".join(body))


def report_failure(settings: Settings, *, run: str, step: str, error: BaseException | str) -> Message:
    """Append to failures.log and send through the configured channels (a failure to send is logged)."""
    what = error if isinstance(error, str) else f"{type(error).__name__}: {scrub(str(error))}"
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    message = Message(f"cartwatch {run} failed at step '{step}'", f"{now} {run} step={step} {what}")
    settings.digest_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.digest_dir / "failures.log", "a", encoding="utf-8") as handle:
        handle.write(message.body + "\n")
    try:
        send(settings, message)
    except (DeliveryError, NotifyConfigError, OSError) as exc:
        log.error("failure report not sent: %s", type(exc).__name__)
    return message
