"""Numeric result values as real lab systems send them (censored, thousands separators, text)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A comparator, then a number with optional thousands groups: `<5`, `>=100000`, `1,250`, `-0.3`.
_NUMBER = re.compile(
    r"^\s*(?P<cmp><=|>=|<|>|=)?\s*(?P<num>[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[+-]?\.\d+)"
    r"(?:[eE](?P<exp>[+-]?\d+))?\s*$")
_DECIMAL_COMMA = re.compile(r"^\s*(<=|>=|<|>|=)?\s*[+-]?\d+,\d{1,2}\s*$|^\s*[+-]?\d+,\d{4,}\s*$")


class ValueParseError(ValueError):
    """A value that cannot be read as a number; its message is the quarantine reason."""


@dataclass(frozen=True)
class ParsedValue:
    value: float
    comparator: str | None  # '<', '<=', '>', '>=' for censored results; None when exact


def parse_value(text: str | None) -> ParsedValue:
    """Read a result value; `1,250` is 1250 (never 1.25), `<5` keeps its comparator.

    A decimal comma (`1,25`) is refused rather than guessed: it is ambiguous with a thousands
    separator in feeds that mix locales.
    """
    if text is None or not text.strip():
        raise ValueParseError("missing value")
    match = _NUMBER.match(text)
    if not match:
        if _DECIMAL_COMMA.match(text):
            raise ValueParseError(f"ambiguous decimal comma in value {text.strip()!r}")
        raise ValueParseError(f"non-numeric value {text.strip()[:40]!r}")
    number = float(match.group("num").replace(",", ""))
    if match.group("exp"):
        number *= 10 ** int(match.group("exp"))
    comparator = match.group("cmp")
    return ParsedValue(number, None if comparator in (None, "=") else comparator)
