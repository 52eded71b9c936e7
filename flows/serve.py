"""`cartwatch serve`: the Prefect deployments, their schedules, and the runner that executes them.

- `cartwatch-nightly/nightly`: on the nightly cron (default 02:00) in the site time zone, with the
  settings overrides it was started with as its parameters.
- `cartwatch-backfill/backfill`: no schedule; started on demand (UI or `prefect deployment run`)
  with its start and end dates.

Schedules fire only when a long-running Prefect server runs its scheduler service; the command
line (cartwatch/cli.py) starts one (cartwatch/prefect_env.py: PrefectServer) or connects to the
one `prefect_api_url` names, then calls `serve` here, which runs a Prefect Runner until SIGTERM or
SIGINT. The runner executes each flow run in a subprocess, one at a time (the database has one
writer). On a signal it stops polling, cancels a run in progress (its transaction rolls back; the
next run does the work again) and returns.
"""

from __future__ import annotations

import asyncio
import inspect
import signal
from datetime import datetime, timezone
from typing import Callable

from prefect.runner import Runner
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
        backfill.to_deployment(name="backfill", parameters=params | {"progress": False}, tags=["cartwatch"],
                               description="cartwatch backfill over a range of nights (on demand)"),
    ]


def describe(deps: list) -> list[str]:
    lines = []
    for dep in deps:
        schedules = [f"cron '{s.schedule.cron}' {s.schedule.timezone}" for s in (dep.schedules or [])]
        lines.append(f"{dep.flow_name}/{dep.name}: {', '.join(schedules) or 'on demand'}")
    return lines


def next_run(cron: str, tz: str, after: datetime | None = None) -> datetime:
    """The next time the nightly cron fires, in the site zone."""
    from zoneinfo import ZoneInfo

    from prefect._vendor.croniter import croniter

    start = (after or datetime.now(timezone.utc)).astimezone(ZoneInfo(tz))
    return croniter(cron, start).get_next(datetime)


class _Runner(Runner):
    """Prefect's Runner, stopped from its own event loop on SIGTERM/SIGINT.

    Runner.start installs `handle_sigterm`, which calls the synchronous `stop()` from inside the
    running loop (where it returns a coroutine nobody awaits) and then exits; here the signal only
    asks the loop to stop, and `serve` awaits the runner's shutdown."""

    on_signal: Callable[[], None] = staticmethod(lambda: None)

    def handle_sigterm(self, *args, **kwargs) -> None:
        self.on_signal()


def serve(settings: Settings, overrides: dict[str, str] | None = None, cron: str | None = None,
          announce: Callable[[str], None] = print) -> int:
    """Serve the deployments until SIGTERM or SIGINT; returns the exit status (0: stopped cleanly)."""
    return asyncio.run(_serve(deployments(settings, overrides, cron), settings, cron or nightly_cron(settings),
                              announce))


async def _serve(deps: list, settings: Settings, cron: str, announce: Callable[[str], None]) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals: list[int] = []

    def on_signal(signum: int = signal.SIGTERM, *_) -> None:
        signals.append(signum)
        loop.call_soon_threadsafe(stop.set)

    runner = _Runner(name="cartwatch", limit=1, pause_on_shutdown=False)
    runner.on_signal = on_signal
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for dep in deps:
            added = runner.add_deployment(dep)      # a coroutine inside a running loop
            if inspect.isawaitable(added):
                await added
        task = asyncio.create_task(runner.start())
        waiter = asyncio.create_task(stop.wait())
        announce(f"serving {', '.join(describe(deps))}; next nightly run "
                 f"{next_run(cron, settings.site_tz):%Y-%m-%d %H:%M %Z}")
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:              # the runner ended by itself: its error is the command's error
            waiter.cancel()
            task.result()
            return 1
        announce(f"stopping ({signal.Signals(signals[0]).name}): no new runs; a run in progress is cancelled")
        if runner.started:
            await runner.astop()
        try:
            await asyncio.wait_for(task, timeout=60)
        except asyncio.TimeoutError:
            task.cancel()
        except asyncio.CancelledError:
            pass
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    from cartwatch.settings import load_settings

    raise SystemExit(serve(load_settings()))
