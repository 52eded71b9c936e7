"""The repository documents itself: contract, clinical rules, operations, an example settings file
with every setting, and a changelog; nothing points at files users do not have."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from sample_paths import REPO

DOCS = REPO / "docs"


def text(name: str) -> str:
    return (REPO / name).read_text(encoding="utf-8")


def flat(s: str) -> str:
    return " ".join(s.split())


@pytest.mark.parametrize("path", ["README.md", *sorted(str(p.relative_to(REPO)) for p in DOCS.rglob("*") if p.is_file())])
def test_docs_point_at_nothing_outside_the_repository(path):
    assert not re.search(r"\.\./shared|CLINICAL_RULES\.md|CONTRACT\.md", text(path)), path


def test_the_contract_lists_every_export_column_command_and_option():
    from cartwatch.cli import parser
    from cartwatch.export import EXPORT_COLUMNS

    contract = flat(text("docs/contract.md"))
    for table, columns in EXPORT_COLUMNS.items():
        assert ", ".join(columns) in contract, table
    top = parser()
    commands = next(a for a in top._actions if a.dest == "command").choices
    for name, sub in commands.items():
        assert f"cartwatch {name}" in contract, name
        for action in sub._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    assert f"`{option}" in contract or f"{option} " in contract or f"{option}`" in contract, \
                        f"{name} {option}"
    for status in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |"):
        assert status in contract


def test_clinical_rules_page_gives_every_parameter_its_value_unit_and_source():
    doc = yaml.safe_load(text("transforms/clinical_rules.yaml"))
    page = text("docs/clinical-rules.md")
    for rule_id, rule in doc["rules"].items():
        row = next((line for line in page.splitlines() if line.startswith(f"| `{rule_id}` |")), None)
        assert row is not None, rule_id
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[1]) == float(rule["value"]) and cells[2] == str(rule["unit"]), rule_id
        assert cells[3] == str(rule["source"]), rule_id
    for name, analyte in doc["analytes"].items():
        row = next(line for line in page.splitlines() if line.startswith(f"| `{name}` |"))
        assert analyte["canonical_unit"] in row and all(code in row for code in analyte["loinc"] or []), name


def test_the_example_settings_file_has_every_setting_and_loads(monkeypatch):
    from cartwatch.settings import SETTING_NAMES, load_settings

    example = DOCS / "cartwatch.toml"
    assert set(tomllib.loads(example.read_text())["cartwatch"]) == set(SETTING_NAMES)
    monkeypatch.delenv("CART_ENV", raising=False)
    for name in ("SMTP_USER", "SMTP_PASSWORD"):
        monkeypatch.setenv(name, "x")
    settings = load_settings(example)
    assert settings.lock_wait_seconds == 600 and settings.prefect_port == 4200


def test_operations_guide_covers_the_service_the_ui_and_an_existing_server():
    guide = text("docs/operations.md")
    for needle in ("[Service]", "ExecStart=", "docker run", "http://127.0.0.1:4200", "prefect_api_url",
                   "prefect_startup_seconds", "lock_wait_seconds"):
        assert needle in guide, needle


def test_the_changelog_names_this_release():
    version = tomllib.loads(text("pyproject.toml"))["project"]["version"]
    release = version.split(".dev")[0]
    assert f"- {release} (unreleased)" in text("README.md") or f"- {release} (" in text("README.md")
