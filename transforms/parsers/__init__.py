"""Wire-format parsers: a file in, ParsedRow objects out (see base.py)."""
