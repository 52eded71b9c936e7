"""`make bench`: the cohort-scale benchmark of issue 8, in one run, into one results file.

    .venv/bin/python benchmarks/run_all.py                  # 1,000 and 10,000 patients (make bench)
    .venv/bin/python benchmarks/run_all.py --quick          # 50 and 100 patients (make bench-quick)
    .venv/bin/python benchmarks/run_all.py --sizes 1000,3000 --max-rss-gb 12 --max-seconds 3600

For each cohort size it writes a cohort with `cartwatch synth --cohort` (history cut at an as-of
moment, plus the next day's new results), then runs, each as its own process, timed, with its peak
memory measured:

- `reference`: one hand-written DuckDB SQL pass of the core computation (reference_pass.py);
- `ingest`: `cartwatch ingest` of the history's four CSV files into a new database;
- `evaluate`: `cartwatch export windows` as of the cut (every derived and flags table);
- `nightly_first`: `cartwatch nightly` with an empty inbox (the first night on that history);
- `nightly_new_day`: `cartwatch nightly` the next night, with the new day's files in the inbox;
- `nightly_no_file`: `cartwatch nightly` the night after, with no new file;

and once: `prefect_probe` (Prefect's fixed cost: one empty flow run), `parsers` (HL7 v2 and FHIR
parse throughput, bench_parsers.py), and pyinstrument profiles of one ingest and one build (the
smallest cohort). Each step has a budget (`--max-rss-gb` for its whole process tree, `--max-seconds`);
a step over budget is killed and reported ("did not finish: killed at 6.0 GB after 85 s"), steps
that need it are skipped with the reason, and the run always completes and writes
benchmarks/results/latest.md and latest.json (and profile-*.txt) with the machine's description.

Peak RSS: the step's main process (the larger of psutil polling every 0.1 s and the kernel's
ru_maxrss from wait4), and the sum over its process tree (polled), which includes, for nightly runs,
Prefect's temporary server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GB = 1024 ** 3
SITE_TZ = "America/New_York"
SEED = 1
CHUNK_PROFILE_INTERVAL = 0.005          # pyinstrument sampling interval (s)
COHORT_STEPS = ("synth", "reference", "ingest", "evaluate", "nightly_first", "nightly_new_day", "nightly_no_file")
ONCE_STEPS = ("bytecode", "prefect_probe", "parsers", "profile_ingest", "profile_build", "build_steps")
PROJECT_DIRS = ("cartwatch", "transforms", "expectations", "flows")
VERSIONED = ("cartwatch", "duckdb", "polars", "pyarrow", "pandas", "prefect", "great-expectations", "numpy",
             "prefect-dask", "dask", "distributed", "pyinstrument", "psutil")


@dataclass
class Budget:
    max_rss_gb: float
    max_seconds: float


@dataclass
class Step:
    """One measured process, or a step that did not run (status `skipped`, with the reason)."""

    name: str
    size: int | None
    status: str = "skipped"        # ok | killed | failed | skipped
    seconds: float | None = None
    cpu_seconds: float | None = None
    peak_rss: int | None = None          # bytes, main process
    peak_tree_rss: int | None = None     # bytes, the whole process tree (polled)
    rows: int | None = None
    note: str = ""
    load_at_start: float | None = None
    command: str = ""
    log: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def outcome(self) -> str:
        if self.status == "ok":
            return "ok"
        if self.status == "killed":
            return f"did not finish: {self.note}"
        return f"{self.status}: {self.note}"


# ---------------------------------------------------------------------------------------------
# one step: a process tree, timed and watched


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def _rss(proc: psutil.Process) -> int:
    try:
        return proc.memory_info().rss
    except psutil.Error:
        return 0


def _kill(pid: int, known: dict[int, psutil.Process]) -> None:
    """SIGKILL the step's session (its process group) and every descendant seen, by id."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for proc in known.values():
        try:
            proc.kill()
        except psutil.Error:
            pass


def run_step(step: Step, argv: list[str], budget: Budget, log_path: Path, env: dict[str, str]) -> Step:
    """Run argv as a new session; poll its tree's memory; kill it past the budget."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    step.command = " ".join(str(a) for a in argv)
    step.log = str(log_path)
    step.load_at_start = round(os.getloadavg()[0], 2)
    limit = budget.max_rss_gb * GB
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(a) for a in argv], stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                                start_new_session=True)
        main = psutil.Process(proc.pid)
        known: dict[int, psutil.Process] = {}
        peak_main = peak_tree = 0
        killed = ""
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            kids = _tree(main)
            known.update((k.pid, k) for k in kids)
            rss = _rss(main)
            tree = rss + sum(_rss(k) for k in kids)
            peak_main, peak_tree = max(peak_main, rss), max(peak_tree, tree)
            elapsed = time.perf_counter() - started
            if not killed and (tree > limit or elapsed > budget.max_seconds):
                killed = (f"killed at {tree / GB:.1f} GB after {elapsed:.0f} s (budget {budget.max_rss_gb:g} GB)"
                          if tree > limit else
                          f"killed after {elapsed:.0f} s (budget {budget.max_seconds:g} s) at {tree / GB:.1f} GB")
                _kill(proc.pid, known)
            time.sleep(0.1)
        proc.returncode = os.waitstatus_to_exitcode(status)
    step.seconds = round(time.perf_counter() - started, 2)
    _kill(proc.pid, known)          # what it left running (a temporary Prefect server, say)
    step.cpu_seconds = round(usage.ru_utime + usage.ru_stime, 2)
    step.peak_rss = max(peak_main, usage.ru_maxrss * 1024)
    step.peak_tree_rss = max(peak_tree, step.peak_rss)
    if killed:
        step.status, step.note = "killed", killed
    elif proc.returncode != 0:
        tail = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()][-1:]
        step.status, step.note = "failed", f"exit {proc.returncode}: {tail[0][:200] if tail else ''}"
    else:
        step.status = "ok"
    return step


# ---------------------------------------------------------------------------------------------
# the machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine() -> dict:
    memory = psutil.virtual_memory()
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu_model": _cpu_model(), "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "memory_gb": round(memory.total / GB, 1), "memory_available_gb_at_start": round(memory.available / GB, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(), "python": platform.python_version(), "versions": versions,
        "commit": _git("rev-parse", "--short", "HEAD"), "dirty": bool(_git("status", "--porcelain")),
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", ""), "nice": os.nice(0),
    }


# ---------------------------------------------------------------------------------------------
# profiles


def _package(path: str) -> str:
    """A frame's home: the project file, the site-packages package, or the standard library module."""
    p = Path(path)
    parts = p.parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    try:
        rel = p.resolve().relative_to(REPO)
        return str(rel)
    except (ValueError, OSError):
        pass
    if path.startswith("<"):
        return path
    return "stdlib:" + p.stem


def profile_summary(session_path: Path, text_path: Path, top: int = 16) -> dict:
    """The text report, and two tables: project functions by inclusive time (outermost call only)
    and self time by package or project file."""
    from pyinstrument.renderers import ConsoleRenderer
    from pyinstrument.session import Session

    session = Session.load(str(session_path))
    text_path.write_text(ConsoleRenderer(unicode=False, color=False, show_all=False).render(session))
    root = session.root_frame()
    total = root.time if root else 0.0
    inclusive: dict[str, float] = {}
    self_time: dict[str, float] = {}

    def home_of(frame) -> str:
        if frame.is_synthetic and frame.parent is not None:     # "[self]": the parent's own time
            frame = frame.parent
        home = _package(frame.file_path or "<unknown>")
        # a C call: named (DuckDBPyConnection.execute, PyLazyFrame.collect)
        return f"built-in {frame.function}" if home == "<built-in>" else home

    def walk(frame, active: frozenset) -> None:
        home = home_of(frame)
        own = frame.time - sum(child.time for child in frame.children)
        self_time[home] = self_time.get(home, 0.0) + max(own, 0.0)
        key = f"{frame.function} ({home}:{frame.line_no})"
        project = not frame.is_synthetic and any(home.startswith(d + "/") for d in PROJECT_DIRS)
        if project and key not in active:
            inclusive[key] = inclusive.get(key, 0.0) + frame.time
            active = active | {key}
        for child in frame.children:
            walk(child, active)

    if root is not None:
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
        walk(root, frozenset())
    rank = lambda d: [(k, round(v, 2), round(100 * v / total, 1) if total else 0.0)  # noqa: E731
                      for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]
    return {"seconds": round(total, 2), "functions": rank(inclusive), "self_by_home": rank(self_time),
            "text": str(text_path.relative_to(REPO)) if text_path.is_relative_to(REPO) else str(text_path)}


# ---------------------------------------------------------------------------------------------
# the run


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.budget = Budget(args.max_rss_gb, args.max_seconds)
        self.work = args.work.resolve()
        self.out = args.out.resolve()
        self.steps: list[Step] = []
        self.cohorts: dict[int, dict] = {}
        self.env = dict(os.environ, PREFECT_HOME=str(self.work / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180", PREFECT_LOGGING_LEVEL="WARNING",
                        PYTHONUNBUFFERED="1",
                        PYTHONPATH=str(REPO))
        self.env.pop("PREFECT_API_URL", None)      # the nightly as a user runs it: its temporary server
        self.py = sys.executable

    def cli(self, *args) -> list:
        return [self.py, "-m", "flows.cli", *args]

    def step(self, name: str, size: int | None, argv: list | None, rows: int | None = None,
             skip: str = "", runs: int = 1) -> Step:
        """Run (or skip) a step; with `runs` > 1, the run of median wall time is kept (short steps
        on a shared machine), the others' seconds go to `extra["runs"]`."""
        step = Step(name, size, rows=rows)
        if not skip and self.args.steps and name not in self.args.steps:
            skip = "not selected (--steps)"
        if skip or argv is None:
            step.note = skip
        else:
            tag = f"{name}-{size}" if size else name
            print(f"== {tag}: {' '.join(str(a) for a in argv)}", flush=True)
            tries = []
            for k in range(runs):
                attempt = Step(name, size, rows=rows)
                run_step(attempt, argv, self.budget, self.work / "logs" / f"{tag}{'' if k == 0 else f'-{k}'}.log",
                         self.env)
                tries.append(attempt)
                if not attempt.ok:
                    break
            step = sorted(tries, key=lambda t: t.seconds)[len(tries) // 2] if all(t.ok for t in tries) else tries[-1]
            if runs > 1:
                step.extra["runs"] = [t.seconds for t in tries]
            print(f"   {step.outcome()}, {step.seconds} s, peak {step.peak_rss / GB:.2f} GB "
                  f"(tree {step.peak_tree_rss / GB:.2f} GB)" + (f", runs {step.extra['runs']}" if runs > 1 else ""),
                  flush=True)
        self.steps.append(step)
        return step

    # -- per cohort size ---------------------------------------------------------------------

    def cohort(self, n: int) -> None:
        base = self.work / f"cohort-{n}"
        history, next_day, inbox = base / "history", base / "next-day", base / "inbox"
        db, digests = base / "cartwatch.duckdb", base / "digest"
        for path in (base,):
            shutil.rmtree(path, ignore_errors=True)
        synth = self.step("synth", n, self.cli("synth", "--cohort", "--patients", n, "--seed", SEED,
                                               "--out", history, "--next-day", next_day))
        if not synth.ok:
            for name in COHORT_STEPS[1:]:
                self.step(name, n, None, skip="no cohort: synth did not finish")
            return
        info = json.loads((history / "COHORT_INFO").read_text())
        self.cohorts[n] = info
        rows = sum(info["files"].values())
        labs = info["files"]["labs.csv"]
        synth.rows = rows
        synth.extra = {"generator_seconds": info["seconds"]}
        ref = self.step("reference", n, [self.py, HERE / "reference_pass.py", history, "--site-tz", SITE_TZ,
                                         "--out", base / "reference.parquet"],
                        rows=labs + info["files"]["infusions.csv"], runs=3)
        ref.extra = _last_json(ref) | ref.extra
        feeds = [history / name for name in info["files"]]    # the feeds only: COHORT_INFO is no feed
        ingest = self.step("ingest", n, self.cli("ingest", "--db", db, "--site-tz", SITE_TZ, *feeds), rows=rows)
        ingest.extra = _ingest_totals(ingest)
        as_of, next_as_of = info["as_of"], info["next_as_of"]
        after = (datetime.fromisoformat(next_as_of.replace("Z", "+00:00")) + timedelta(days=1)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        needs_ingest = "" if ingest.ok else f"not run: ingest {ingest.outcome()}"
        evaluate = self.step("evaluate", n, self.cli("export", "windows", "--db", db, "--site-tz", SITE_TZ,
                                                     "--as-of", as_of, "--out", base / "windows.csv"),
                             rows=rows, skip=needs_ingest)
        if evaluate.ok:
            evaluate.extra = {"windows": _count_csv_rows(base / "windows.csv")}
        inbox.mkdir(parents=True, exist_ok=True)
        nightly = lambda at: self.cli("nightly", "--db", db, "--site-tz", SITE_TZ, "--inbox", inbox,  # noqa: E731
                                      "--digest-dir", digests, "--as-of", at)
        first = self.step("nightly_first", n, nightly(as_of), rows=0, skip=needs_ingest)
        first.extra = _nightly_counts(first)
        needs_first = needs_ingest or ("" if first.ok else f"not run: the first nightly {first.outcome()}")
        if not needs_first:
            for path in sorted(next_day.iterdir()):
                shutil.copy2(path, inbox / path.name)
        new_day = self.step("nightly_new_day", n, nightly(next_as_of), rows=sum(info["next_day_files"].values()),
                            skip=needs_first)
        new_day.extra = _nightly_counts(new_day) | {"active_patients": info["active_patients"]}
        needs_new_day = needs_first or ("" if new_day.ok else f"not run: the new-day nightly {new_day.outcome()}")
        no_file = self.step("nightly_no_file", n, nightly(after), rows=0, skip=needs_new_day)
        no_file.extra = _nightly_counts(no_file)

    # -- once ----------------------------------------------------------------------------------

    def parsers(self) -> None:
        out = self.work / "parsers.json"
        out.unlink(missing_ok=True)
        step = self.step("parsers", None, [self.py, HERE / "bench_parsers.py", "--results", self.args.parser_results,
                                           "--json", out], rows=2 * self.args.parser_results)
        if step.ok and out.exists():
            step.extra = json.loads(out.read_text())

    def profiles(self, n: int) -> None:
        info = self.cohorts.get(n)
        if info is None or not self.args.profile:
            for name in ("profile_ingest", "profile_build", "build_steps"):
                self.step(name, n, None, skip="not selected (--no-profile)" if not self.args.profile
                          else f"not run: no {n}-patient cohort")
            return
        base = self.work / f"cohort-{n}"
        db = base / "profile.duckdb"
        for path in (db, Path(f"{db}.wal")):
            path.unlink(missing_ok=True)
        pyinstrument = [self.py, "-m", "pyinstrument", "-i", CHUNK_PROFILE_INTERVAL, "-r", "pyisession"]
        rows = sum(info["files"].values())
        results = {}
        for name, args, skip in (
                ("profile_ingest", ("ingest", "--db", db, "--site-tz", SITE_TZ,
                                    *(base / "history" / name for name in info["files"])), ""),
                ("profile_build", ("export", "windows", "--db", db, "--site-tz", SITE_TZ, "--as-of", info["as_of"],
                                   "--out", base / "profile-windows.csv"), None)):
            session = self.work / f"{name}.pyisession"
            if skip is None:
                skip = "" if results.get("profile_ingest") else "not run: the profiled ingest did not finish"
            step = self.step(name, n, pyinstrument + ["-o", session, "-m", "flows.cli", *args], rows=rows,
                             skip=skip)
            results[name] = step.ok
            if step.ok and session.exists():
                step.extra = profile_summary(session, self.out / f"{name.replace('_', '-')}.txt")
        step = self.step("build_steps", n, [self.py, HERE / "build_steps.py", db, "--as-of", info["as_of"],
                                            "--site-tz", SITE_TZ],
                         skip="" if results.get("profile_ingest") else "not run: the profiled ingest did not finish")
        step.extra = _last_json(step)

    def run(self) -> dict:
        self.work.mkdir(parents=True, exist_ok=True)
        self.out.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        info = machine()
        print(f"cartwatch bench: sizes {self.args.sizes}, budget {self.budget.max_rss_gb:g} GB / "
              f"{self.budget.max_seconds:g} s per step; load {info['load_average_at_start']}", flush=True)
        # Byte-compile the environment once: where PYTHONDONTWRITEBYTECODE is set (it is on the project's
        # machines) every process would otherwise compile each module it imports (about 5 s for a CLI run).
        purelib = sysconfig.get_paths()["purelib"]
        self.step("bytecode", None, [self.py, "-m", "compileall", "-q", "-j", "0", purelib,
                                     *(REPO / d for d in PROJECT_DIRS)])
        self.step("prefect_probe", None, [self.py, HERE / "prefect_probe.py"])
        for n in self.args.sizes:
            self.cohort(n)
        self.parsers()
        self.profiles(min(self.args.sizes))
        info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        results = {"machine": info, "budget": asdict(self.budget), "sizes": self.args.sizes,
                   "cohorts": {str(k): v for k, v in self.cohorts.items()},
                   "steps": [asdict(s) | {"outcome": s.outcome()} for s in self.steps],
                   "ratios": ratios(self.steps, self.args.sizes),
                   "total_seconds": round(time.perf_counter() - started, 1)}
        (self.out / "latest.json").write_text(_relative(json.dumps(results, indent=2, default=str)) + "\n")
        (self.out / "latest.md").write_text(_relative(render(results)))
        if self.args.clean:
            shutil.rmtree(self.work, ignore_errors=True)
        print(f"results: {self.out / 'latest.md'} ({results['total_seconds']:.0f} s)", flush=True)
        return results


# ---------------------------------------------------------------------------------------------
# reading what a step printed


def _relative(text: str) -> str:
    """Paths inside the checkout written relative to it (results from any clone read the same)."""
    return text.replace(f"{REPO}/", "")


def _log(step: Step) -> str:
    return Path(step.log).read_text(errors="replace") if step.log and Path(step.log).exists() else ""


def _last_json(step: Step) -> dict:
    for line in reversed(_log(step).splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return {}
    return {}


def _ingest_totals(step: Step) -> dict:
    """The `total` line of `cartwatch ingest` (read, accepted, quarantined, duplicate)."""
    for line in _log(step).splitlines():
        fields = line.split()
        if fields[:1] == ["total"] and all(f.isdigit() for f in fields[1:5]) and len(fields) >= 5:
            return dict(zip(("read", "accepted", "quarantined", "duplicate"), map(int, fields[1:5])))
    return {}


def _nightly_counts(step: Step) -> dict:
    """Mode, evaluation seconds and alerts from `cartwatch nightly`'s summary lines, when present."""
    text, out = _log(step), {}
    m = re.search(r"evaluation: (\w+) \(([^)]*)\), ([\d.]+) s; (\d+) alerts", text)
    if m:
        out = {"mode": m.group(1), "reason": m.group(2), "evaluate_seconds": float(m.group(3)),
               "alerts": int(m.group(4))}
    m = re.search(r"(\d+) files, (\d+) new; rows read (\d+)", text)
    if m:
        out |= {"files": int(m.group(1)), "new_files": int(m.group(2)), "rows_read": int(m.group(3))}
    return out


def _count_csv_rows(path: Path) -> int | None:
    if not path.exists():
        return None
    with open(path, "rb") as handle:
        return max(0, sum(1 for _ in handle) - 1)


# ---------------------------------------------------------------------------------------------
# ratios and the report


def _find(steps: list[Step], name: str, size: int | None) -> Step | None:
    return next((s for s in steps if s.name == name and s.size == size), None)


def ratios(steps: list[Step], sizes: list[int]) -> list[dict]:
    out = []
    for n in sizes:
        ingest, evaluate, ref = (_find(steps, k, n) for k in ("ingest", "evaluate", "reference"))
        row = {"what": f"raw CSV -> windows (ingest + evaluate) / reference pass, {n:,} patients", "size": n}
        if ingest and evaluate and ref and ingest.ok and evaluate.ok and ref.ok:
            wall = ingest.seconds + evaluate.seconds
            cpu = ingest.cpu_seconds + evaluate.cpu_seconds
            row |= {"cartwatch_seconds": round(wall, 2), "reference_seconds": ref.seconds,
                    "ratio": round(wall / ref.seconds, 1), "cpu_ratio": round(cpu / max(ref.cpu_seconds, 0.01), 1),
                    "peak_rss_gb": round(max(ingest.peak_rss, evaluate.peak_rss) / GB, 2),
                    "reference_peak_rss_gb": round(ref.peak_rss / GB, 2)}
        else:
            missing = [s.name for s in (ingest, evaluate, ref) if s is None or not s.ok]
            row["note"] = f"no ratio: {', '.join(missing)} did not finish"
        out.append(row)
    if len(sizes) >= 2:
        small, large = min(sizes), max(sizes)
        a, b = _find(steps, "nightly_new_day", small), _find(steps, "nightly_new_day", large)
        row = {"what": f"nightly with one new day: {large:,}-patient history / {small:,}-patient history"}
        if a and b and a.ok and b.ok:
            row |= {"small_seconds": a.seconds, "large_seconds": b.seconds, "ratio": round(b.seconds / a.seconds, 2)}
            ea, eb = a.extra.get("evaluate_seconds"), b.extra.get("evaluate_seconds")
            if ea and eb:
                row["evaluate_ratio"] = round(eb / ea, 2)
        else:
            row["note"] = "no ratio: a new-day nightly did not finish"
        out.append(row)
    probe = _find(steps, "prefect_probe", None)
    for n in sizes:
        quiet = _find(steps, "nightly_no_file", n)
        row = {"what": f"nightly with no new file / Prefect's fixed cost (one empty flow run), {n:,} patients"}
        if quiet and probe and quiet.ok and probe.ok:
            row |= {"nightly_seconds": quiet.seconds, "prefect_seconds": probe.seconds,
                    "ratio": round(quiet.seconds / probe.seconds, 2)}
        else:
            row["note"] = "no ratio: the no-file nightly or the probe did not finish"
        out.append(row)
    return out


def _gb(value: int | None) -> str:
    return f"{value / GB:.2f}" if value else ""


def _num(value, fmt: str = ",.0f") -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else ""


RATE_STEPS = ("synth", "reference", "ingest", "evaluate", "parsers")
STEP_TEXT = {
    "synth": "write the cohort (`cartwatch synth --cohort`)",
    "reference": "reference: one DuckDB SQL pass of the core",
    "ingest": "`cartwatch ingest` (history CSVs)",
    "evaluate": "`cartwatch export windows` (full evaluation)",
    "nightly_first": "`cartwatch nightly`, first night (empty inbox)",
    "nightly_new_day": "`cartwatch nightly`, one new day in the inbox",
    "nightly_no_file": "`cartwatch nightly`, no new file",
    "bytecode": "set-up: byte-compile the environment (compileall)",
    "prefect_probe": "Prefect fixed cost: one empty flow run",
    "parsers": "HL7 + FHIR parser benchmark",
    "profile_ingest": "ingest under pyinstrument",
    "profile_build": "evaluation under pyinstrument",
    "build_steps": "evaluation, seconds per build step",
}


def render(r: dict) -> str:
    m = r["machine"]
    lines = [
        "# cartwatch benchmark results", "",
        f"Written by `make bench` (`benchmarks/run_all.py`) on {m['date']}, commit {m['commit']}"
        f"{' (uncommitted changes)' if m['dirty'] else ''}; the whole run took {r['total_seconds']:,.0f} s.", "",
        "## Machine", "",
        "| | |", "|---|---|",
        f"| CPU | {m['cpu_model']}, {m['cores_logical']} logical cores ({m['cores_physical']} physical) |",
        f"| memory | {m['memory_gb']} GiB ({m['memory_available_gb_at_start']} GiB available at start) |",
        f"| load average at start (1, 5, 15 min) | {', '.join(map(str, m['load_average_at_start']))} "
        f"(the run's niceness: {m['nice']}) |",
        f"| load average at end | {', '.join(map(str, m['load_average_at_end']))} |",
        f"| OS, Python | {m['os']}, Python {m['python']} (PYTHONDONTWRITEBYTECODE="
        f"{m['PYTHONDONTWRITEBYTECODE'] or 'unset'}; bytecode compiled by the run's first step) |",
        "| versions | " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + " |",
        f"| budget per step | {r['budget']['max_rss_gb']:g} GB for the process tree, "
        f"{r['budget']['max_seconds']:g} s |",
        "",
        "## Cohorts (`cartwatch synth --cohort`)", "",
        "| patients | lab rows | vitals rows | infusions | events | next day: rows (patients) | as of |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for n, c in r["cohorts"].items():
        f = c["files"]
        lines.append(f"| {int(n):,} | {f['labs.csv']:,} | {f['vitals.csv']:,} | {f['infusions.csv']:,} | "
                     f"{f['events.csv']:,} | {sum(c['next_day_files'].values()):,} ({c['active_patients']}) | "
                     f"{c['as_of']} |")
    lines += ["", "## Steps", "",
              "Each step is its own process. Peak RSS: the step's main process; tree: with its children "
              "(for nightly runs, Prefect's temporary server). Load: 1-minute load average when the step started.", "",
              "| patients | step | outcome | wall s | CPU s | rows | rows/s | peak RSS GB | tree GB | load | details |",
              "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s in r["steps"]:
        rate = (s["rows"] / s["seconds"] if s["name"] in RATE_STEPS and s["status"] == "ok" and s["rows"]
                and s["seconds"] else None)
        lines.append(f"| {_num(s['size'])} | {STEP_TEXT.get(s['name'], s['name'])} | {s['outcome']} | "
                     f"{_num(s['seconds'], '.1f')} | {_num(s['cpu_seconds'], '.1f')} | "
                     f"{_num(s['rows']) if s['status'] != 'skipped' else ''} | "
                     f"{_num(rate)} | {_gb(s['peak_rss'])} | {_gb(s['peak_tree_rss'])} | "
                     f"{_num(s['load_at_start'], '.2f')} | {_details(s)} |")
    lines += ["", "## Ratios", "", "| what | figure |", "|---|---|"]
    for row in r["ratios"]:
        lines.append(f"| {row['what']} | {_ratio_text(row)} |")
    parsers = next((s for s in r["steps"] if s["name"] == "parsers"), None)
    lines += ["", "## Parsers (`benchmarks/bench_parsers.py`)", ""]
    if parsers and parsers["status"] == "ok" and parsers["extra"]:
        for fmt, label in (("hl7", "HL7 v2 ORU^R01"), ("fhir", "FHIR R4 NDJSON")):
            e = parsers["extra"][fmt]
            lines.append(f"- {label}: {e['results']:,} results in {e['seconds']:.2f} s, "
                         f"**{e['results'] / e['seconds']:,.0f} results/s**")
    else:
        lines.append(f"- {parsers['outcome'] if parsers else 'not run'}")
    lines += ["", "## Profiles (pyinstrument)", ""]
    for name in ("profile_ingest", "profile_build"):
        s = next((x for x in r["steps"] if x["name"] == name), None)
        if s is None:
            continue
        title = f"### {STEP_TEXT[name]}, {_num(s['size'])} patients"
        if s["status"] != "ok" or not s["extra"]:
            lines += [title, "", f"{s['outcome']}", ""]
            continue
        e = s["extra"]
        lines += [title, "", f"{e['seconds']:.1f} s sampled; full tree: `{e['text']}`.", "",
                  "Project functions, inclusive time (outermost call):", "",
                  "| function | s | % |", "|---|---:|---:|"]
        lines += [f"| `{k}` | {v:.1f} | {p:.0f} |" for k, v, p in e["functions"]]
        lines += ["", "Self time by home (library package, project file, standard-library module, or the "
                  "C function called):", "",
                  "| home | s | % |", "|---|---:|---:|"]
        lines += [f"| `{k}` | {v:.1f} | {p:.0f} |" for k, v, p in e["self_by_home"]]
        lines.append("")
    steps = next((x for x in r["steps"] if x["name"] == "build_steps"), None)
    if steps is not None:
        lines += [f"### {STEP_TEXT['build_steps']}, {_num(steps['size'])} patients (`benchmarks/build_steps.py`)", ""]
        e = steps["extra"]
        if steps["status"] == "ok" and e.get("steps"):
            total = e["total_seconds"]
            lines += [f"A full build in one transaction (rolled back): {total:.1f} s. The ten slowest steps:", "",
                      "| step | s | % |", "|---|---:|---:|"]
            lines += [f"| `{k}` | {v:.1f} | {100 * v / total:.0f} |" for k, v in e["steps"][:10]]
        else:
            lines.append(steps["outcome"])
        lines.append("")
    lines += ["", "## What the reference pass does", "",
              "`benchmarks/reference_pass.py`: labs.csv and infusions.csv read by DuckDB, timestamps (offset, Z, "
              "naive in the site zone), values (comparators, thousands separators), units through a conversion "
              "table, the result version in force, the infusion (as-of join), day post-infusion in the site zone, "
              "baseline, x ULN, x baseline, ferritin running peak, post-peak nadir and re-rise. It does not grade "
              "CRS from vitals, quarantine, validate, dedupe across files, keep raw rows, or evaluate the other "
              "criteria sets: a lower bound for the same data, not a like-for-like replacement.", ""]
    return "\n".join(lines)


def _details(s: dict) -> str:
    e, name = s.get("extra") or {}, s["name"]
    if name == "reference" and e:
        runs = (f"; median of {len(e['runs'])} runs ({', '.join(f'{x:.1f}' for x in e['runs'])} s)"
                if "runs" in e else "")
        return (f"{e.get('ferritin_results', 0):,} ferritin results, {e.get('infusions_with_re_rise', 0)} re-rises"
                + runs)
    if name == "ingest" and e:
        return (f"read {e['read']:,}, accepted {e['accepted']:,}, quarantined {e['quarantined']:,}, "
                f"duplicate {e['duplicate']:,}")
    if name == "evaluate" and e:
        return f"{e.get('windows')} windows"
    if name.startswith("nightly") and e:
        parts = [f"{e['mode']} ({e['reason']}), evaluation {e['evaluate_seconds']:.1f} s, {e['alerts']} alerts"
                 if "mode" in e else ""]
        if "active_patients" in e:
            parts.append(f"{e['active_patients']} active patients")
        return "; ".join(p for p in parts if p)
    if name == "synth" and e:
        return f"generator {e['generator_seconds']:.1f} s inside the process"
    if name.startswith("profile") and e:
        return f"see Profiles; `{e['text']}`"
    if name == "build_steps" and e.get("steps"):
        return "see Profiles"
    return ""


def _ratio_text(row: dict) -> str:
    if "ratio" not in row:
        return row.get("note", "")
    if "reference_seconds" in row:
        return (f"**{row['ratio']} x** wall ({row['cartwatch_seconds']:.1f} s vs {row['reference_seconds']:.1f} s), "
                f"{row['cpu_ratio']} x CPU; peak RSS {row['peak_rss_gb']} GB vs {row['reference_peak_rss_gb']} GB")
    if "small_seconds" in row:
        text = f"**{row['ratio']} x** ({row['large_seconds']:.1f} s vs {row['small_seconds']:.1f} s)"
        return text + (f"; evaluation step {row['evaluate_ratio']} x" if "evaluate_ratio" in row else "")
    return f"**{row['ratio']} x** ({row['nightly_seconds']:.1f} s vs {row['prefect_seconds']:.1f} s)"


def expected_rows(sizes: list[int]) -> list[tuple[str, int | None]]:
    """Every (step, size) a run reports, ran or not: what the results file must hold."""
    rows = [("bytecode", None), ("prefect_probe", None)] + [(name, n) for n in sizes for name in COHORT_STEPS]
    return rows + [("parsers", None)] + [(name, min(sizes)) for name in ONCE_STEPS[3:]]


def _sizes(text: str) -> list[int]:
    return sorted({int(x.replace("_", "")) for x in text.split(",") if x.strip()})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=_sizes, default=[1000, 10000], help="cohort sizes (default 1000,10000)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 50 and 100 patients, small parser run")
    ap.add_argument("--max-rss-gb", type=float, default=6.0, help="per-step budget for the process tree")
    ap.add_argument("--max-seconds", type=float, default=1800.0, help="per-step time budget")
    ap.add_argument("--parser-results", type=int, default=None, help="results per format (default 1,000,000)")
    ap.add_argument("--no-profile", dest="profile", action="store_false", help="skip the pyinstrument profiles")
    ap.add_argument("--work", type=Path, help="cohorts, databases and logs (default var/bench, "
                                              "with --quick var/bench-quick)")
    ap.add_argument("--out", type=Path, help="where latest.md and latest.json go (default benchmarks/results, "
                                             "with --quick var/bench-quick/results)")
    ap.add_argument("--clean", action="store_true", help="delete the work folder at the end")
    ap.add_argument("--steps", type=lambda t: {x.strip() for x in t.split(",") if x.strip()}, default=set(),
                    help=f"run only these steps (the others are reported as not selected): "
                         f"{', '.join(ONCE_STEPS[:3] + COHORT_STEPS + ONCE_STEPS[3:])}")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes = [50, 100] if args.sizes == [1000, 10000] else args.sizes
        args.parser_results = args.parser_results or 20_000
    args.parser_results = args.parser_results or 1_000_000
    scratch = REPO / "var" / ("bench-quick" if args.quick else "bench")
    args.work = args.work or scratch
    args.out = args.out or (scratch / "results" if args.quick else HERE / "results")
    unknown = args.steps - set(COHORT_STEPS) - set(ONCE_STEPS)
    if unknown:
        ap.error(f"--steps: unknown step(s) {', '.join(sorted(unknown))}")
    return args


if __name__ == "__main__":
    Bench(parse_args()).run()
