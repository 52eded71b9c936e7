"""The rules loader refuses a broken file with a message naming the rule and the problem."""

from pathlib import Path

import pytest
import yaml

from transforms.rules import DEFAULT_RULES_PATH, REQUIRED_RULES, RulesError, load_rules


def test_shipped_rules_load_with_every_required_rule(rules):
    assert rules.version == "2026.12.0"
    assert set(REQUIRED_RULES) <= set(rules.values)
    assert rules.value("iec_hs.rapid_rise_ng_ml_per_hour") == 100
    assert rules.analyte("ferritin").canonical_unit == "ng/mL"
    assert rules.analyte_by_loinc()["2276-4"] == "ferritin"
    assert rules.sql_params("iec_hs.re_rise_factor") == {"iec_hs__re_rise_factor": 2.0}


def _write_broken(tmp_path: Path, mutate) -> Path:
    doc = yaml.safe_load(DEFAULT_RULES_PATH.read_text())
    mutate(doc)
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["rules"].pop("iec_hs.re_rise_factor"), "rules is missing iec_hs.re_rise_factor"),
    (lambda d: d["rules"]["crs.fever_c"].update(unit="degF"),
     "rule 'crs.fever_c' has unit 'degF', expected 'Cel'"),
    (lambda d: d["rules"]["crs.fever_c"].update(value="thirty-eight"),
     "rule 'crs.fever_c' value must be a number, got 'thirty-eight'"),
    (lambda d: d["rules"]["crs.fever_c"].update(value=True), "rule 'crs.fever_c' value must be a number"),
    (lambda d: d["rules"]["crs.fever_c"].update(source=" "), "rule 'crs.fever_c' has an empty source"),
    (lambda d: d["rules"]["iec_hs.re_rise_factor"].pop("notes"),
     "rule 'iec_hs.re_rise_factor' has no consensus and must say so in its notes"),
    (lambda d: d["rules"]["crs.fever_c"].pop("source"), "rule 'crs.fever_c' is missing source"),
    (lambda d: d.pop("rules_version"), "top level is missing rules_version"),
    (lambda d: d["analytes"].pop("fibrinogen"), "analytes is missing fibrinogen"),
    (lambda d: d["analytes"]["ferritin"].update(default_low=500),
     "analyte 'ferritin' has a range whose low end is above its high end"),
    (lambda d: d["analytes"]["fibrinogen"].update(loinc=["2276-4"]), "a LOINC code is listed under two analytes"),
    (lambda d: d["o2_devices"].update(high_flow=7), "o2 device 'high_flow' must map to a CRS grade 0-4"),
    (lambda d: d["hscore"]["items"].pop("ferritin"), "hscore items is missing ferritin"),
])
def test_broken_files_are_refused(tmp_path, mutate, message):
    with pytest.raises(RulesError) as err:
        load_rules(_write_broken(tmp_path, mutate))
    assert message in str(err.value)
    assert str(tmp_path / "rules.yaml") in str(err.value)


def test_unreadable_files_are_refused(tmp_path):
    with pytest.raises(RulesError, match="rules file not found"):
        load_rules(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [unclosed")
    with pytest.raises(RulesError, match="not valid YAML"):
        load_rules(bad)


def test_rules_object_is_immutable(rules):
    with pytest.raises(TypeError):
        rules.values["crs.fever_c"] = 37.0
