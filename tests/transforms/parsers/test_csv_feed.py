"""The CSV reader: physical lines and raw text per row, the same rows whatever the block size,
and hostile files (encodings, line ends, duplicate headers, huge fields) read or refused whole."""

from __future__ import annotations

import codecs
from pathlib import Path

import polars as pl
import pytest

from transforms.parsers.csv_feed import NotAFeed, parse_csv_batches

HEADER = "patient_id,collected_at,loinc,value,unit"
ROWS = [
    'P1,2026-06-01T08:00:00Z,2276-4,"1,250",ng/mL',       # quoted thousands separator
    " , ,",                                               # blank: nothing sent, no row
    'P2,2026-06-01T08:00:00Z,2276-4,"two\nlines",ng/mL',  # a quoted field spanning lines
    "P3,2026-06-01T08:00:00Z,x",                          # wrong field count
    'P4,ab"c,2276-4,5,ng/mL',                             # a stray quote is a literal character
    "P5,2026-06-01T08:00:00Z,2276-4,5,ng/mL",
]


def rows(path: Path, **kwargs) -> pl.DataFrame:
    batches = list(parse_csv_batches(path, **kwargs))
    return pl.concat([b.frame for b in batches]).select("line", "raw", "error", "patient_id", "value")


def write(tmp_path: Path, text: str | bytes, name: str = "labs.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_lines_raw_text_and_values(tmp_path):
    got = rows(write(tmp_path, "\n".join([HEADER, *ROWS]) + "\n"))
    assert got.rows() == [
        (2, ROWS[0], None, "P1", "1,250"),
        (4, ROWS[2], None, "P2", "two\nlines"),
        (6, ROWS[3], "csv: expected 5 fields, got 3", None, None),
        (7, ROWS[4], None, "P4", "5"),
        (8, ROWS[5], None, "P5", "5"),
    ]


@pytest.mark.parametrize("block_bytes", [1, 7, 40, 64, 1 << 20])
def test_block_size_changes_nothing(tmp_path, block_bytes):
    path = write(tmp_path, "\r\n".join([HEADER, *ROWS]) + "\r\n")
    assert rows(path, block_bytes=block_bytes).equals(rows(path))


def test_utf16_and_byte_order_marks_read_as_utf8(tmp_path):
    text = "\n".join([HEADER, ROWS[5]]) + "\n"
    expected = rows(write(tmp_path, text))
    assert rows(write(tmp_path, codecs.BOM_UTF8 + text.encode("utf-8"), "bom.csv")).equals(expected)
    assert rows(write(tmp_path, text.encode("utf-16"), "utf16.csv")).equals(expected)   # with its BOM


def test_old_mac_line_ends_are_lines(tmp_path):
    got = rows(write(tmp_path, "\r".join([HEADER, ROWS[5], ROWS[0]]) + "\r"))
    assert got["line"].to_list() == [2, 3] and got["patient_id"].to_list() == ["P5", "P1"]


def test_vertical_tab_line_ends_are_refused(tmp_path):
    with pytest.raises(NotAFeed, match="vertical tabs"):
        rows(write(tmp_path, "\x0b".join([HEADER, ROWS[5]]) + "\x0b"))


def test_a_column_named_twice_is_refused(tmp_path):
    with pytest.raises(NotAFeed, match="more than once: value"):
        rows(write(tmp_path, HEADER + ",value\nP1,2026-06-01T08:00:00Z,2276-4,166,ng/mL,332\n"))


def test_a_line_that_is_not_utf8_is_an_error_row(tmp_path):
    data = "\n".join([HEADER, ROWS[5]]).encode() + b"\nP6,2026-06-01T08:00:00Z,2276-4,5,ng/\xe9L\n" + ROWS[0].encode()
    got = rows(write(tmp_path, data))
    assert got.select("line", "error", "patient_id").rows() == [
        (2, None, "P5"), (3, "csv: not UTF-8 (byte 0xE9 at position 37)", None), (4, None, "P1")]
    assert got["raw"][1] == "P6,2026-06-01T08:00:00Z,2276-4,5,ng/\ufffdL"


def test_a_quoted_field_going_on_across_a_line_that_is_not_utf8_is_one_error_row(tmp_path):
    """The line was taken out first, so the open quote ran on into the next row: P2 was lost."""
    data = (HEADER + '\nP1,2026-06-01T08:00:00Z,2276-4,"5\n').encode() + b'\xffmore",ng/mL\n' + ROWS[5].encode()
    got = rows(write(tmp_path, data))
    assert got.select("line", "error", "patient_id").rows() == [
        (2, "csv: not UTF-8 (byte 0xFF at position 1)", None), (4, None, "P5")]
    assert got["raw"][0] == 'P1,2026-06-01T08:00:00Z,2276-4,"5\n\ufffdmore",ng/mL'


@pytest.mark.parametrize("block_bytes", [7, 1 << 20])
def test_a_blank_line_after_the_header_keeps_the_line_numbers(tmp_path, block_bytes):
    """The first block was the header and a blank line: the next row was numbered 2, not 3."""
    got = rows(write(tmp_path, HEADER + "\n\n" + ROWS[5]), block_bytes=block_bytes)
    assert got.select("line", "patient_id").rows() == [(3, "P5")]


def test_a_header_that_is_no_csv_row_is_refused(tmp_path):
    with pytest.raises(NotAFeed, match="header is not a CSV row"):
        rows(write(tmp_path, b"\r patient_id\nP1\n"))


def test_a_huge_quoted_field_is_an_error_row_and_reading_goes_on(tmp_path):
    huge = 'P7,2026-06-01T08:00:00Z,2276-4,"' + "9" * 200_000 + '",ng/mL'
    got = rows(write(tmp_path, "\n".join([HEADER, huge, ROWS[5]]) + "\n"))
    assert got.select("line", "patient_id").rows() == [(2, None), (3, "P5")]
    assert got["error"][0].startswith("csv: field larger than field limit")


def test_empty_file_and_header_only_give_no_rows(tmp_path):
    assert list(parse_csv_batches(write(tmp_path, b"", "empty.csv"))) == []
    assert list(parse_csv_batches(write(tmp_path, HEADER + "\n", "header.csv"))) == []
