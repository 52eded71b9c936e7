"""Lint: SQL style (sqlfluff, DuckDB dialect) and no clinical numbers outside the rules file."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SQL_DIR = REPO / "sql"
CODE_DIRS = (REPO / "sql", REPO / "transforms", REPO / "cartwatch", REPO / "flows")
CLINICAL_WORDS = re.compile(
    r"ferritin|fibrinogen|platelet|hemoglobin|\bhb\b|\banc\b|\bwbc\b|\bast\b|\balt\b|\bldh\b|bilirubin|"
    r"triglycerid|creatinine|\bcrp\b|temperature|fever|\bsbp\b|\bmap\b|spo2|hscore|cd25|\buln\b|baseline",
    re.I)
# A number other than 0 and 1 (0.5 or 38.4 included); word-attached digits (stg_v2, 2276-4) are not numbers.
NUMBER = re.compile(r"(?<![\w.$-])(?:[2-9]\d*|1\d+|\d+\.\d+|0\.\d+)(?![\w.-])")
SQL_COMMENT = re.compile(r"/\*.*?\*/|--[^\n]*", re.S)
PY_COMMENT = re.compile(r'#[^\n]*|"""[\s\S]*?"""')
STRING = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")


def _code_lines(path: Path) -> list[tuple[int, str]]:
    text = path.read_text(encoding="utf-8")
    stripped = (SQL_COMMENT if path.suffix == ".sql" else PY_COMMENT).sub(
        lambda m: "\n" * m.group(0).count("\n"), text)
    return [(i, STRING.sub("''", line)) for i, line in enumerate(stripped.splitlines(), 1)]


def clinical_literals() -> list[str]:
    found = []
    for folder in CODE_DIRS:
        for path in sorted(folder.rglob("*")):
            if path.suffix not in (".sql", ".py") or "synth" in path.parts or "schema" in path.parts:
                continue
            for number, line in _code_lines(path):
                if CLINICAL_WORDS.search(line) and NUMBER.search(line):
                    found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    return found


def test_no_clinical_numbers_outside_the_rules_file():
    assert clinical_literals() == []


def test_the_check_catches_a_literal(tmp_path, monkeypatch):
    (tmp_path / "bad.sql").write_text("SELECT * FROM t WHERE ferritin > 10000 -- ok in a comment: 5\n")
    this = sys.modules[__name__]
    monkeypatch.setattr(this, "CODE_DIRS", (tmp_path,))
    monkeypatch.setattr(this, "REPO", tmp_path)
    assert clinical_literals() == ["bad.sql:1: SELECT * FROM t WHERE ferritin > 10000"]


def test_sql_follows_the_style_config():
    from sqlfluff.core import FluffConfig, Linter

    linter = Linter(config=FluffConfig.from_path(str(REPO)))
    result = linter.lint_paths((str(SQL_DIR),))
    problems = [f"{Path(v['filepath']).relative_to(REPO)}:{v2['start_line_no']}: {v2['code']} {v2['description']}"
                for v in result.as_records() for v2 in v["violations"]]
    assert problems == []


def test_every_sql_file_has_the_header_the_style_guide_asks_for():
    missing = []
    for path in sorted((SQL_DIR / "derived").glob("*.sql")) + sorted((SQL_DIR / "flags").glob("*.sql")):
        head = path.read_text(encoding="utf-8")[:2000]
        for field in ("Title:", "Description:", "Grain:", "Source criterion:", "Parameters:", "Upstream tables:"):
            if field not in head:
                missing.append(f"{path.name}: {field}")
    assert missing == []


def test_run_order_names_only_existing_steps():
    from cartwatch.build import steps
    for step in steps():
        home = REPO / "transforms" / step if step.endswith(".py") else SQL_DIR / step
        assert home.is_file(), step


def test_each_table_has_one_home_named_after_it():
    """A derived or flags file builds the table of its name, and no two files build one table."""
    from cartwatch.build import steps
    homes = {}
    for step in steps():
        if step.startswith("macros/"):
            continue
        layer, name = step.split("/")
        path = REPO / "transforms" / step if step.endswith(".py") else SQL_DIR / step
        table = f"{layer}.{name.rsplit('.', 1)[0]}"
        assert table in path.read_text(encoding="utf-8"), f"{step} does not build {table}"
        assert homes.setdefault(table, step) == step, f"{table}: {homes[table]} and {step}"
    for layer in ("derived", "flags"):
        for path in (REPO / "transforms" / layer).glob("[!_]*.py"):
            assert f"{layer}/{path.name}" in steps(), f"{path} is in no build step"


def test_the_package_does_not_import_the_flows():
    """The flows call cartwatch/ and transforms/, never the other way round (transforms/ does not
    import cartwatch/ either: the build steps get what they need from their BuildContext)."""
    importing = re.compile(r"^\s*(?:from|import)\s+(\w+)", re.M)
    for folder, forbidden in ((REPO / "cartwatch", {"flows"}), (REPO / "transforms", {"flows", "cartwatch"})):
        for path in sorted(folder.rglob("*.py")):
            found = set(importing.findall(path.read_text(encoding="utf-8"))) & forbidden
            assert not found, f"{path.relative_to(REPO)} imports {', '.join(sorted(found))}"
