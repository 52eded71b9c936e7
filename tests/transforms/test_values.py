import pytest

from transforms.values import ParsedValue, ValueParseError, parse_value


@pytest.mark.parametrize("text, expected", [
    ("1250", ParsedValue(1250.0, None)),
    ("1,250", ParsedValue(1250.0, None)),          # thousands separator, never 1.25
    ("1,250,000", ParsedValue(1250000.0, None)),
    ("<5", ParsedValue(5.0, "<")),
    ("< 5", ParsedValue(5.0, "<")),
    (">100000", ParsedValue(100000.0, ">")),
    (">=100,000", ParsedValue(100000.0, ">=")),
    ("<=0.5", ParsedValue(0.5, "<=")),
    ("=12.5", ParsedValue(12.5, None)),
    ("-0.3", ParsedValue(-0.3, None)),
    (".5", ParsedValue(0.5, None)),
    ("1.2e3", ParsedValue(1200.0, None)),
    ("  42  ", ParsedValue(42.0, None)),
])
def test_numbers_as_lab_systems_send_them(text, expected):
    assert parse_value(text) == expected


@pytest.mark.parametrize("text, reason", [
    ("pending", "non-numeric value 'pending'"),
    ("see note", "non-numeric value 'see note'"),
    ("1,25", "ambiguous decimal comma in value '1,25'"),
    ("12,5000", "ambiguous decimal comma in value '12,5000'"),
    ("", "missing value"),
    (None, "missing value"),
    ("1:2", "non-numeric value '1:2'"),
])
def test_text_is_refused_with_a_reason(text, reason):
    with pytest.raises(ValueParseError, match="^" + reason.replace("(", r"\(") + "$"):
        parse_value(text)
