"""The scheduled nightly job: ingest the inbox, rebuild as of now, write the digest.

Reads like its table of contents; the work is in cartwatch/ and transforms/. Only the ingest
task retries, and only on I/O errors: a wrong lab value is never retried.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from cartwatch import build as builder
from cartwatch.digest import render_markdown
from cartwatch.ingest import ingest_paths
from cartwatch.loader import FileReport
from cartwatch.runs import finish_run, start_run, utc_now
from cartwatch.settings import Settings, load_settings
from cartwatch.store import open_store
from transforms.rules import Rules, load_rules


def _retry_on_io_error(task, task_run, state) -> bool:
    try:
        state.result()
    except OSError:
        return True
    except Exception:
        return False
    return False


@task(retries=2, retry_delay_seconds=5, retry_condition_fn=_retry_on_io_error, cache_policy=NO_CACHE)
def ingest_inbox(con, inbox: Path, rules: Rules, site_tz: str, run_id: str,
                 loaded_at: datetime) -> list[FileReport]:
    return ingest_paths(con, [inbox], rules, site_tz=site_tz, now=utc_now(), run_id=run_id,
                        loaded_at=loaded_at)


@task(cache_policy=NO_CACHE)
def build_layers(con, rules: Rules, as_of: datetime, as_loaded: bool, site_tz: str) -> list[str]:
    return builder.build(con, rules, as_of=as_of, as_loaded=as_loaded, site_tz=site_tz)


@task(cache_policy=NO_CACHE)
def write_digest(con, settings: Settings, rules: Rules, as_of: datetime) -> Path:
    text = render_markdown(con, as_of=as_of, rules_version=rules.version, mask_ids=settings.mask_ids)
    settings.digest_dir.mkdir(parents=True, exist_ok=True)
    dated = settings.digest_dir / f"digest-{as_of:%Y-%m-%dT%H%M}.md"
    dated.write_text(text, encoding="utf-8")
    (settings.digest_dir / "latest.md").write_text(text, encoding="utf-8")
    return dated


def file_counts(reports: list[FileReport]) -> dict:
    keys = ("read", "accepted", "duplicate", "quarantined")
    return {k: sum(getattr(r, k) for r in reports) for k in keys} | {
        "files_loaded": sum(r.status == "loaded" for r in reports)}


@flow(name="cartwatch-nightly", log_prints=False)
def nightly(settings: Settings | None = None, as_of: datetime | None = None,
            as_loaded: bool = False) -> dict:
    """Ingest new files, rebuild as of `as_of` (default now), write the digest, record the run."""
    settings = settings or load_settings()
    rules = load_rules(settings.rules_path)
    as_of = as_of or utc_now()
    logger = get_run_logger()
    con = open_store(settings.db_path)
    run_id = start_run(con, "nightly", as_of, rules.version)
    try:
        reports = ingest_inbox(con, settings.inbox, rules, settings.site_tz, run_id, as_of)
        build_layers(con, rules, as_of, as_loaded, settings.site_tz)
        digest = write_digest(con, settings, rules, as_of)
    except Exception as exc:
        finish_run(con, run_id, outcome="failed", error=f"{type(exc).__name__}: {exc}")
        con.close()
        raise
    counts = file_counts(reports)
    finish_run(con, run_id, outcome="ok", files=len(reports), counts=counts)
    con.close()
    logger.info("nightly %s: %d files, %s; digest %s", run_id, len(reports), counts, digest.name)
    return {"run_id": run_id, "digest": str(digest), "counts": counts,
            "files": [r.__dict__ for r in reports]}


if __name__ == "__main__":
    print(nightly())
