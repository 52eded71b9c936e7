"""Units follow the archetype, and every written value converts back to the same clinical picture."""

from __future__ import annotations

import math

import pytest

from cartwatch.synth.units import LAB_ANALYTES, profiles, unit_names
from tests.synth.sample_files import read_rows
from transforms.units import UnitConverter

SI_UNITS = {"2276-4": "ug/L", "3255-7": "g/L", "718-7": "g/L", "1975-2": "umol/L", "2160-0": "umol/L",
            "1920-8": "ukat/L", "1742-6": "ukat/L", "2532-0": "ukat/L", "2571-8": "mmol/L"}
US_ALT_UNITS = {"777-3": "/uL", "751-8": "10^3/uL", "6690-2": "10^3/uL"}


def _patients(truth, units):
    return {e.patient_id for e in truth.episodes if e.detail["units"] == units}


def test_each_profile_is_used_by_its_patients_only(sample, rules):
    truth, folder = sample
    labs = read_rows(folder / "labs.csv")
    si, us_alt = _patients(truth, "si"), _patients(truth, "us_alt")
    assert si and us_alt
    canonical = {rules.analyte(a).loinc[0]: rules.analyte(a).canonical_unit for a in LAB_ANALYTES}
    accepted_odd = {(r.file, r.line) for r in truth.rows if r.expect in ("accepted", "quarantine")}
    for line, row in enumerate(labs, start=2):
        if ("labs.csv", line) in accepted_odd:
            continue
        expected = (SI_UNITS if row["patient_id"] in si else US_ALT_UNITS if row["patient_id"] in us_alt else {})
        assert row["unit"] == expected.get(row["loinc"], canonical[row["loinc"]]), (line, row)


def test_temperatures_in_fahrenheit_only_for_the_us_alt_patient(sample):
    truth, folder = sample
    us_alt = _patients(truth, "us_alt")
    temperatures = [r for r in read_rows(folder / "vitals.csv") if r["kind"] == "temperature"]
    assert {r["unit"] for r in temperatures if r["patient_id"] in us_alt} == {"[degF]"}
    assert {r["unit"] for r in temperatures if r["patient_id"] not in us_alt} == {"Cel"}


def test_written_values_convert_back_with_the_engine_converter(cohort, rules):
    """An independent converter (pint, transforms/units.py) reads what the oracle read."""
    converter = UnitConverter(rules)
    for sim in cohort:
        if sim.patient.design.units == "canonical":
            continue
        labs = sim.labs
        for i in range(0, len(labs["t"]), 7):
            analyte = LAB_ANALYTES[labs["analyte"][i]]
            if math.isnan(labs["written"][i]):
                continue
            unit = unit_names()[labs["unit"][i]]
            read = converter.to_canonical(analyte, unit).apply(labs["written"][i])
            assert read == pytest.approx(labs["as_read"][i], rel=1e-9), (analyte, unit)


def test_profiles_only_change_spelling_and_scale():
    canonical = profiles()["canonical"]
    for name, profile in profiles().items():
        assert profile.keys() == canonical.keys(), name
