import pytest

from transforms.units import UnitConverter, UnitError


@pytest.fixture(scope="module")
def units(rules):
    return UnitConverter(rules)


@pytest.mark.parametrize("analyte, unit, value, expected", [
    ("ferritin", "ng/mL", 500, 500),
    ("ferritin", "ug/L", 500, 500),                 # same value
    ("ferritin", "µg/L", 500, 500),
    ("ferritin", "mg/L", 10, 10000),                # 10 mg/L is 10,000 ng/mL
    ("fibrinogen", "g/L", 1.5, 150),                # x 100
    ("ast", "IU/L", 40, 40),
    ("ast", "ukat/L", 1, 60),                       # x 60
    ("ldh", "µkat/L", 2, 120),
    ("bilirubin_total", "umol/L", 17.1, 1.0),       # / 17.1
    ("triglycerides", "mmol/L", 1, 88.57),          # x 88.57
    ("creatinine", "umol/L", 88.4, 1.0),            # / 88.4
    ("crp", "mg/dL", 1.2, 12),                      # x 10
    ("platelets", "10^3/uL", 95, 95),
    ("platelets", "10*3/uL", 95, 95),
    ("platelets", "10*9/L", 95, 95),
    ("platelets", "x10E9/L", 95, 95),
    ("platelets", "K/uL", 95, 95),
    ("platelets", "/uL", 95000, 95),                # / 1000
    ("anc", "10^3/uL", 0.9, 0.9),
    ("hemoglobin", "g/L", 85, 8.5),                 # / 10
    ("hemoglobin", "mmol/L", 5, 8.055),             # x 1.611
    ("d_dimer", "ug/mL FEU", 2.5, 2.5),
    ("temperature", "[degF]", 100.4, 38.0),
    ("temperature", "Cel", 38.2, 38.2),
    ("inr", "{ratio}", 1.3, 1.3),
    ("inr", "", 1.3, 1.3),
])
def test_converts_to_canonical(units, analyte, unit, value, expected):
    assert units.to_canonical(analyte, unit).apply(value) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("analyte, unit, reason", [
    ("ferritin", "mmol/L", "unit 'mmol/L' does not convert to 'ng/mL' for ferritin"),
    ("ferritin", "", "missing unit for ferritin"),
    ("ferritin", "furlongs", "unit 'furlongs' does not convert to 'ng/mL' for ferritin"),
    ("ferritin", "ng/(mL", "unit 'ng/(mL' does not convert to 'ng/mL' for ferritin"),   # found by fuzzing
    ("ferritin", "ng/mL)", "unit 'ng/mL)' does not convert to 'ng/mL' for ferritin"),
    ("scd25", "pg/mL", "unit 'pg/mL' does not convert to 'U/mL' for scd25"),
    ("d_dimer", "ng/mL DDU", "unit 'ng/mL DDU' does not convert to 'mg/L FEU' for d_dimer (DDU vs FEU)"),
])
def test_unconvertible_units_are_refused_never_guessed(units, analyte, unit, reason):
    with pytest.raises(UnitError) as err:
        units.to_canonical(analyte, unit)
    assert str(err.value) == reason
