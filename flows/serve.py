"""`cartwatch serve`: the Prefect deployments and their schedules.

- `cartwatch-nightly/nightly`: on the nightly cron (default 02:00) in the site time zone, with the
  settings overrides it was started with as its parameters.
- `cartwatch-backfill/backfill`: no schedule; started on demand (UI or `prefect deployment run`)
  with its start and end dates.

Schedules fire when a Prefect server runs the scheduler (`prefect server start` and PREFECT_API_URL
pointing at it); `serve` then executes the runs in this process.
"""

from __future__ import annotations

from prefect.schedules import Cron

from cartwatch.backfill import nightly_cron
from cartwatch.settings import Settings
from flows.backfill import backfill
from flows.nightly import nightly


def deployments(settings: Settings, overrides: dict[str, str] | None = None, cron: str | None = None) -> list:
    cron = cron or nightly_cron(settings)
    params = {"overrides": dict(overrides or {})}
    return [
        nightly.to_deployment(name="nightly", schedule=Cron(cron, timezone=settings.site_tz), parameters=params,
                              description=f"cartwatch nightly run at '{cron}' ({settings.site_tz})",
                              tags=["cartwatch"]),
        backfill.to_deployment(name="backfill", parameters=params, tags=["cartwatch"],
                               description="cartwatch backfill over a range of nights (on demand)"),
    ]


def describe(deps: list) -> list[str]:
    lines = []
    for dep in deps:
        schedules = [f"cron '{s.schedule.cron}' {s.schedule.timezone}" for s in (dep.schedules or [])]
        lines.append(f"{dep.flow_name}/{dep.name}: {', '.join(schedules) or 'on demand'}")
    return lines


def serve(settings: Settings, overrides: dict[str, str] | None = None, cron: str | None = None) -> None:
    from prefect import serve as prefect_serve

    prefect_serve(*deployments(settings, overrides, cron), print_starting_message=True)


if __name__ == "__main__":
    from cartwatch.settings import load_settings

    serve(load_settings())
