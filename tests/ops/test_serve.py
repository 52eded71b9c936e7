"""`cartwatch serve`: a schedule that fires against a real Prefect server, and a clean stop.

The slow tests start real servers on loopback ports (about 2-4 minutes each on a 2-core machine):
one served against a server the test starts (PREFECT_API_URL), one where `cartwatch serve` starts
and stops its own.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from sample_paths import REPO, SAMPLE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"no {what} within {timeout:.0f} s")


def healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(api_url + "/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def small_inbox(tmp_path: Path) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("infusions.csv", "events.csv", "labs.csv"):
        shutil.copy(SAMPLE / name, inbox / name)
    return inbox


def test_serve_stops_cleanly_on_sigterm(tmp_path, prefect_harness, recwarn):
    """The runner stops from its own loop: no 'coroutine Runner.astop was never awaited', status 0."""
    from cartwatch.settings import load_settings
    from flows.serve import serve

    settings = load_settings(db_path=str(tmp_path / "db.duckdb"), inbox=str(tmp_path),
                             digest_dir=str(tmp_path / "digest"))
    said = []
    before = signal.getsignal(signal.SIGTERM)

    def announce(message: str) -> None:
        said.append(message)
        if message.startswith("serving"):     # the handlers are in place: send the signal a service manager sends
            threading.Timer(2, os.kill, (os.getpid(), signal.SIGTERM)).start()

    assert serve(settings, {"db_path": str(tmp_path / "db.duckdb")}, "0 2 * * *", announce=announce) == 0
    assert said[0].startswith("serving cartwatch-nightly/nightly: cron '0 2 * * *' America/New_York")
    assert said[-1] == "stopping (SIGTERM): no new runs; a run in progress is cancelled"
    gc.collect()
    assert not [w for w in recwarn if "never awaited" in str(w.message)]
    assert signal.getsignal(signal.SIGTERM) == before          # the handlers are put back


@pytest.mark.slow
def test_a_one_minute_schedule_fires_against_a_server_the_test_starts(tmp_path):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    server_log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=server_log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    served = None
    try:
        wait_for(lambda: healthy(api), 300, "Prefect server")
        digest = tmp_path / "digest"
        served = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "serve", "--cron", "* * * * *", "--db", str(tmp_path / "db.duckdb"),
             "--inbox", str(small_inbox(tmp_path)), "--digest-dir", str(digest)],
            cwd=REPO, env={**env, "PREFECT_API_URL": api}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: (digest / "latest.md").is_file() or served.poll() is not None, 420, "scheduled digest")
        assert served.poll() is None, served.communicate()
        assert (digest / "latest.md").read_text().startswith("# cartwatch digest as of ")
        # the digest is written before the run ends: wait for the scheduled run to complete
        wait_for(lambda: any(r["auto_scheduled"] and r["state_type"] == "COMPLETED" for r in _flow_runs(api)),
                 180, "completed scheduled run")
        served.send_signal(signal.SIGTERM)
        out, err = served.communicate(timeout=120)
        assert served.returncode == 0, err
        assert err.splitlines()[0] == f"cartwatch serve: using the Prefect server at {api}"
        assert err.splitlines()[-1] == "cartwatch serve: stopped"
        assert "never awaited" not in err and "Traceback" not in err
    finally:
        for proc in (served, server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        server_log.close()


def _flow_runs(api: str) -> list[dict]:
    request = urllib.request.Request(api + "/flow_runs/filter", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_serve_starts_its_own_server_and_stops_it_on_sigint(tmp_path):
    port = free_port()
    home = tmp_path / "prefect"
    env = {**os.environ, "CARTWATCH_PREFECT_HOME": str(home), "CARTWATCH_PREFECT_PORT": str(port)}
    env.pop("PREFECT_API_URL", None)
    served = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "serve", "--db", str(tmp_path / "db.duckdb"),
         "--inbox", str(small_inbox(tmp_path)), "--digest-dir", str(tmp_path / "digest")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in served.stderr:
            lines.append(line.rstrip("\n"))
            if line.startswith("cartwatch serve: serving"):
                break
        assert lines[1] == f"cartwatch serve: Prefect UI at http://127.0.0.1:{port} (runs, logs, the digest artifact)"
        record = json.loads((home / "server.json").read_text())
        assert record["port"] == port and healthy(f"http://127.0.0.1:{port}/api")
        second = subprocess.run([sys.executable, "-m", "flows.cli", "serve", "--db", str(tmp_path / "db.duckdb"),
                                 "--inbox", str(tmp_path / "inbox")], cwd=REPO, env=env, capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 3
        assert second.stderr.startswith(f"cartwatch: Prefect home {home / 'serve'}: held by another cartwatch job: "
                                        f"serve (pid {served.pid}, started ")
        served.send_signal(signal.SIGINT)
        _, err = served.communicate(timeout=120)
        assert served.returncode == 0, err
        assert err.splitlines()[-1] == "cartwatch serve: stopped"
        assert "Traceback" not in err
        assert not healthy(f"http://127.0.0.1:{port}/api")
        assert not (home / "server.json").exists()
        with pytest.raises(ProcessLookupError):
            os.kill(record["pid"], 0)
    finally:
        if served.poll() is None:
            served.kill()
            served.wait()
