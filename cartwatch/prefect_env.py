"""Which Prefect server cartwatch's flows talk to, decided before Prefect is imported.

Prefect reads its settings when it is imported, so everything here only sets environment variables
and checks servers over plain HTTP (no Prefect import). The order:

1. `prefect_api_url` (or `PREFECT_API_URL` already in the environment): an existing Prefect server.
   It must answer before anything starts.
2. The server a running `cartwatch serve` started, recorded in `<prefect_home>/server.json`: manual
   runs then show in the same UI as the scheduled ones (and no second server opens the same
   SQLite database).
3. Otherwise a temporary server, started by the command and stopped when it ends, with a
   start-up budget of `prefect_startup_seconds` (Prefect's own default, 20 s, fails on a busy
   machine; docs/operations.md says why this is the choice for one-shot commands). It is the server
   Prefect would start itself (`TemporaryServer`: the same uvicorn app, UI off), but started by
   cartwatch from the main thread with a parent-death signal, so a SIGKILLed command leaves no
   server behind (Prefect's own is left running), and a start that fails is cartwatch's to record.

`cartwatch serve` itself starts a long-running `prefect server start` (`PrefectServer`) unless 1.
applies: Prefect's scheduler only runs in such a server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cartwatch.processes import alive
from cartwatch.settings import Settings


class PrefectServerError(RuntimeError):
    """A Prefect server cannot be reached or started (one line: which server and why)."""


class PrefectStartTimeout(PrefectServerError):
    """The temporary server did not answer within prefect_startup_seconds (a busy machine: a failed
    run, not bad input)."""


def base_environment(settings: Settings, console_level: str) -> None:
    """Prefect's state in prefect_home, no telemetry, the start-up budget, console log level.

    `console_level` is what reaches the terminal (CRITICAL for the command line: it prints its own
    one-line summary or error); the API handler still receives INFO, so the runs' logs are in the UI.
    """
    home = settings.prefect_home
    home.mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_HOME"] = str(home)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = str(settings.prefect_startup_seconds)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = console_level
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")


def health(api_url: str, timeout: float = 10.0) -> bool:
    """True when a Prefect API answers its health check at `api_url` (…/api)."""
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def api_url_of(url: str) -> str:
    """`http://host:4200` or `http://host:4200/api` -> `http://host:4200/api`."""
    url = url.rstrip("/")
    return url if url.endswith("/api") else url + "/api"


def choose_server(settings: Settings, console_level: str = "CRITICAL") -> str:
    """Point Prefect at a server (see the module docstring); returns a phrase saying which."""
    base_environment(settings, console_level)
    url = settings.prefect_api_url or os.environ.get("PREFECT_API_URL", "")
    if url:
        url = api_url_of(url)
        if not health(url):
            where = "prefect_api_url" if settings.prefect_api_url else "PREFECT_API_URL"
            raise PrefectServerError(f"{where} {url}: no Prefect server answers there")
        os.environ["PREFECT_API_URL"] = url
        return f"the Prefect server at {url}"
    served = running_server(settings.prefect_home)
    if served is not None:
        os.environ["PREFECT_API_URL"] = served.api_url
        return f"the Prefect server of `cartwatch serve` at {served.api_url}"
    os.environ.pop("PREFECT_API_URL", None)
    return f"a temporary Prefect server (start-up budget {settings.prefect_startup_seconds} s)"


# ---------------------------------------------------------------------------------------------
# the long-running server of `cartwatch serve`


@dataclass
class ServerRecord:
    pid: int
    port: int
    started_at: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api"


def record_path(home: Path) -> Path:
    return home / "server.json"


def running_server(home: Path) -> ServerRecord | None:
    """The server `cartwatch serve` recorded, if its process lives and it answers."""
    try:
        data = json.loads(record_path(home).read_text(encoding="utf-8"))
        record = ServerRecord(int(data["pid"]), int(data["port"]), str(data["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not alive(record.pid) or not health(record.api_url, timeout=5):
        return None
    return record


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:       # runs in the child between fork and exec (Linux)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except Exception:
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(process: subprocess.Popen, api_url: str, startup_seconds: float, what: str, log_path: Path) -> None:
    """Until the server answers; PrefectStartTimeout after `startup_seconds`, an error if it exits."""
    deadline = time.monotonic() + startup_seconds
    while not health(api_url, timeout=5):
        if process.poll() is not None:
            raise PrefectServerError(f"{what}: exited with code {process.returncode} while starting "
                                     f"(see {log_path})")
        if time.monotonic() > deadline:
            raise PrefectStartTimeout(f"{what}: not answering after {startup_seconds:g} s (setting "
                                      f"prefect_startup_seconds; see {log_path})")
        time.sleep(0.25)


def _stop(process: subprocess.Popen | None, timeout: float) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class TemporaryServer:
    """The temporary Prefect API server of a one-shot command (nightly, backfill): Prefect's own
    app on a free loopback port, state in prefect_home, stopped when the command ends and, on Linux,
    when the command is killed (parent-death signal; started from the main thread, whose end is
    the process's end)."""

    def __init__(self, home: Path, startup_seconds: int):
        self.home, self.startup_seconds = home, startup_seconds
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = home / "temporary-server.log"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> None:
        import importlib.util

        app_dir = Path(importlib.util.find_spec("prefect").origin).parent.parent     # without importing it
        self.home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PREFECT_HOME": str(self.home), "PREFECT_UI_ENABLED": "0",
               "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        env.pop("PREFECT_API_URL", None)
        with open(self.log_path, "a", encoding="utf-8") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir),
                 "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
                 "--port", str(self.port), "--log-level", "error", "--lifespan", "on"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,       # a Ctrl-C reaches the command, which stops the server
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        try:
            _wait_for(self.process, self.api_url, self.startup_seconds,
                      "Prefect's temporary server", self.log_path)
        except PrefectServerError:
            self.stop()
            raise

    def stop(self, timeout: float = 10) -> None:
        _stop(self.process, timeout)
        self.process = None


def start_temporary_server(settings: Settings) -> TemporaryServer:
    """Start the temporary server and point Prefect at it; it is stopped when this process exits."""
    import atexit

    server = TemporaryServer(settings.prefect_home, settings.prefect_startup_seconds)
    server.start()
    atexit.register(server.stop)
    os.environ["PREFECT_API_URL"] = server.api_url
    return server


class PrefectServer:
    """`prefect server start` on 127.0.0.1:<port>, owned by this process: started, waited for
    (up to `startup_seconds`), recorded in server.json, stopped. It also stops if this process is
    killed (Linux parent-death signal), so a SIGKILLed `cartwatch serve` leaves no server behind."""

    def __init__(self, home: Path, port: int, startup_seconds: int):
        self.home, self.port, self.startup_seconds = home, port, startup_seconds
        self.process: subprocess.Popen | None = None
        self.log_path = home / "server.log"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if not port_free(self.port):
            raise PrefectServerError(f"prefect_port {self.port}: the port is in use by another program "
                                     "(set prefect_port, or prefect_api_url to use a server already running)")
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "a", encoding="utf-8")
        env = {**os.environ, "PREFECT_HOME": str(self.home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        env.pop("PREFECT_API_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,        # a Ctrl-C reaches `serve`, which stops the server after the runner
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        log.close()
        try:
            _wait_for(self.process, self.api_url, self.startup_seconds, f"Prefect server on port {self.port}",
                      self.log_path)
        except PrefectStartTimeout:
            self.stop()
            raise
        record_path(self.home).write_text(json.dumps({
            "pid": self.process.pid, "port": self.port,
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}), encoding="utf-8")

    def stop(self, timeout: float = 20) -> None:
        if self.process is None:
            return
        _stop(self.process, timeout)
        try:
            data = json.loads(record_path(self.home).read_text(encoding="utf-8"))
            if data.get("pid") == self.process.pid:
                record_path(self.home).unlink()
        except (OSError, ValueError):
            pass
        self.process = None
