"""`cartwatch backfill --dask` on a local Dask cluster, against a real Prefect server started here:
the stored nights equal those of the single-process (thread pool) backfill of the same database."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date

import duckdb
import pytest

from sample_paths import REPO, SAMPLE

pytestmark = pytest.mark.slow

START, END = date(2026, 9, 29), date(2026, 10, 2)     # the sample's October IEC-HS onsets
SERVER_START_SECONDS = 240                          # a loaded 2-core machine needs a while


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                     method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """`prefect server start` on a free loopback port; its API URL; stopped (its process group) after."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_UI_ENABLED="false", PREFECT_API_URL="")
    log = open(home / "server.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port), "--no-ui", "--analytics-off"],
                              stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if server.poll() is not None:
                pytest.fail(f"prefect server exited: {(home / 'server.log').read_text()[-2000:]}")
            try:
                if _get(f"{url}/health") is True:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server not up after {SERVER_START_SECONDS} s")
            time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)       # the server and the uvicorn it started
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _stored(db) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    out = {table: sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
           for table in ("flags.windows_by_night", "flags.daily_by_night")}
    out["digests"] = con.execute("SELECT * EXCLUDE (created_at) FROM flags.digest_by_night ORDER BY stream, as_of"
                                 ).fetchall()
    out["nights"] = con.execute("SELECT * EXCLUDE (seconds, completed_at) FROM meta.backfill_nights "
                                "ORDER BY backfill_id, night").fetchall()
    con.close()
    return out


def _backfill(db, url: str, tmp_path, *extra: str) -> float:
    env = dict(os.environ, PREFECT_API_URL=url, PREFECT_HOME=str(tmp_path / "prefect-client"),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", CARTWATCH_DEBUG="1")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flows.cli", "backfill", "--db", str(db), "--start",
                           START.isoformat(), "--end", END.isoformat(), "--digest-dir", str(tmp_path / "digest"),
                           "--workers", "2", *extra], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return time.perf_counter() - started


def test_backfill_on_dask_stores_what_the_single_process_run_stores(prefect_server, tmp_path):
    single, on_dask = tmp_path / "single.duckdb", tmp_path / "dask.duckdb"
    feeds = [str(SAMPLE / f"{feed}.csv") for feed in ("labs", "vitals", "infusions", "events")]
    subprocess.run([sys.executable, "-m", "flows.cli", "ingest", "--db", str(single), *feeds], cwd=REPO,
                   check=True, capture_output=True, timeout=600)
    shutil.copy(single, on_dask)
    parts = tmp_path / "partitions"

    threads_seconds = _backfill(single, prefect_server, tmp_path)
    dask_seconds = _backfill(on_dask, prefect_server, tmp_path, "--dask", "--partition-size", "10",
                             "--partition-dir", str(parts))
    print(f"\nbackfill of 28 patients x 4 nights: thread pool {threads_seconds:.1f} s, "
          f"local Dask cluster (2 workers, 3 partitions) {dask_seconds:.1f} s")

    expected, got = _stored(single), _stored(on_dask)
    assert expected["flags.windows_by_night"] and expected["digests"]
    assert got == expected
    assert not parts.exists() or not any(parts.iterdir())        # the partitions are removed when done

    # the flow and its partition tasks ran against this server (not temporary servers of their own)
    flow_runs = _get(f"{prefect_server}/flow_runs/filter", {})
    assert [r["state_type"] for r in flow_runs] == ["COMPLETED", "COMPLETED"]
    tasks = _get(f"{prefect_server}/task_runs/filter", {})
    partition_tasks = [t for t in tasks if t["name"].startswith("evaluate_partition")]
    assert len(partition_tasks) == 3 and {t["state_type"] for t in partition_tasks} == {"COMPLETED"}
