"""Progress of `ingest`, `nightly` and `backfill`: a live line on a terminal, nothing in logs.

Modes (`--progress`): `auto` (default) shows one live line on standard error when it is a terminal
and nothing otherwise; `lines` writes a plain line per step or file (for a log that wants them);
`none` shows nothing. Progress carries file names, counts and times, never a patient identifier.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import TextIO

MODES = ("auto", "lines", "none")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """One live status line (terminal), or plain lines, or silence."""

    def __init__(self, mode: str = "auto", stream: TextIO | None = None, label: str = "cartwatch"):
        self.stream = stream or sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.live = mode == "auto" and isatty
        self.lines = mode == "lines"
        self.enabled = self.live or self.lines
        self.label = label
        self.started = time.monotonic()
        self.text = ""
        self.rows = 0
        self._lock = threading.Lock()
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._width = 0
        self._sizes: tuple = (None, [])
        self._rate_from: tuple[float, int] | None = None
        if self.live:     # refresh the elapsed time while a long step runs (a GX import, a big file)
            self._ticker = threading.Thread(target=self._tick, name="cartwatch-progress", daemon=True)
            self._ticker.start()

    # -- what callers report

    def step(self, text: str) -> None:
        self._show(text)

    def file(self, index: int, files: list[Path], report=None) -> None:
        """Before (report None) and after each file of an ingest."""
        total = len(files)
        if self._sizes[0] is not files:
            self._sizes = (files, [_size(p) for p in files])
        sizes = self._sizes[1]
        done_bytes = sum(sizes[:index + (report is not None)])
        eta = ""
        if report is not None:
            self.rows += report.read
            if self._rate_from is None:   # the rate is measured after the first file (which pays the imports)
                self._rate_from = (time.monotonic(), done_bytes)
        if self._rate_from is not None and done_bytes > self._rate_from[1] and sum(sizes) > done_bytes:
            seconds = time.monotonic() - self._rate_from[0]
            eta = f", about {_duration(seconds / (done_bytes - self._rate_from[1]) * (sum(sizes) - done_bytes))} left"
        name = files[index].name
        if report is None:
            first = "" if "great_expectations" in sys.modules else " (the first file with rows also loads Great Expectations)"
            self._show(f"file {index + 1}/{total} {name}: reading{first}; {self.rows:,} rows so far{eta}")
        else:
            self._show(f"file {index + 1}/{total} {name}: {report.status}, {report.read:,} rows; "
                       f"{self.rows:,} rows so far{eta}")

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1)
        with self._lock:
            if self.live and self._width:
                self.stream.write("\r" + " " * self._width + "\r")
                self.stream.flush()
            self._width = 0

    # -- drawing

    def _line(self) -> str:
        return f"{self.label} [{_duration(time.monotonic() - self.started)}] {self.text}"

    def _show(self, text: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.text = text
            if self.lines:
                self.stream.write(self._line() + "\n")
            else:
                self._draw()
            self.stream.flush()

    def _draw(self) -> None:
        line = self._line()
        columns = 120
        try:
            import shutil

            columns = shutil.get_terminal_size((120, 24)).columns
        except (OSError, ValueError):
            pass
        line = line[:max(20, columns - 1)]
        pad = max(0, self._width - len(line))
        self.stream.write("\r" + line + " " * pad)
        self._width = len(line)

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                if self.text:
                    self._draw()
                    self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
