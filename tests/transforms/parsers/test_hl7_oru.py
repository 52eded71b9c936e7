"""HL7 v2 ORU^R01 parser: real-world-shaped fixtures, exact fields, helpers, python-hl7 cross-check."""

from __future__ import annotations

import re
from pathlib import Path

import hl7
import pytest

from transforms.parsers.base import FEED_FIELDS, ParsedRow
from transforms.parsers.codes import vital_kind_by_loinc
from transforms.parsers.hl7_oru import (DEFAULT_SEPARATORS, Separators, hl7_timestamp_to_iso,
                                        parse_hl7_file, parse_hl7_text, read_separators,
                                        split_reference_range, unescape)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hl7"


def rows_of(name: str) -> list[ParsedRow]:
    return list(parse_hl7_file(FIXTURES / name))


def lab(**fields) -> dict:
    out = dict.fromkeys(FEED_FIELDS["labs"])
    out.update(fields)
    return out


# --- fixtures, field by field ----------------------------------------------------------------

def test_v23_local_codes_alternate_loinc_and_naive_times():
    rows = rows_of("oru_v23_local_codes.hl7")
    common = dict(patient_id="00123456", collected_at="2025-03-02T06:00:00", source_system="BEAKER",
                  result_status="F")
    cbc = dict(common, resulted_at="2025-03-02T07:05:00", accession="ACC100")
    chem = dict(common, resulted_at="2025-03-02T07:40:00", accession="ACC101")
    assert [r.fields for r in rows] == [
        # OBX-3.4-6 holds an alternate LOINC: it wins over the local primary code
        lab(**cbc, code="6690-2", code_system="LN", value="2.1", unit="10*3/uL", test_name="WBC",
            ref_low="4.0", ref_high="11.0"),
        lab(**cbc, code="718-7", code_system="LN", value="8.4", unit="g/dL", test_name="Hemoglobin",
            ref_low="12.0", ref_high="17.5"),
        # local codes only: passed through with their system, mapped later through ref.lab_codes
        lab(**cbc, code="PLT", code_system="L", value="45", unit="10*3/uL", test_name="Platelets",
            ref_low="150", ref_high="400"),
        lab(**cbc, code="ANC", code_system="L", value="0.3", unit="10*3/uL",
            test_name="Neutrophils abs", ref_low="1.8", ref_high="7.7"),
        lab(**chem, code="FERR", code_system="L", value="18500", unit="ng/mL", test_name="Ferritin",
            ref_low="30", ref_high="400"),
        lab(**chem, code="SIL2R", code_system="L", value="5400", unit="U/mL",
            test_name="Soluble IL-2 receptor", ref_low=None, ref_high="2400"),
        lab(**chem, code="FIBR", code_system="L", value="128", unit="mg/dL", test_name="Fibrinogen",
            ref_low="200", ref_high="400"),
    ]
    assert {r.feed for r in rows} == {"labs"} and {r.line for r in rows} == {1}
    assert all(r.error is None for r in rows)


def test_v24_lf_sn_values_escapes_text_and_negative_range():
    rows = rows_of("oru_v24_sendout_lf.hl7")
    assert [r.line for r in rows] == [1] * 6 + [2] * 3
    by_code = {r.fields["code"]: r.fields for r in rows}
    assert by_code["26881-3"]["value"] == "<5"                    # SN <^5
    assert by_code["2276-4"]["value"] == ">=100000"               # SN >=^100000
    assert by_code["1988-5"]["value"] == "125"                    # SN ^125
    assert by_code["5902-2"]["value"] == "1:2"                    # SN ratio: text, quarantined later
    assert by_code["48065-7"]["value"] == "see comment"           # ST passed as text
    assert by_code["2571-8"]["test_name"] == "Triglycerides & fasting"        # \T\
    assert by_code["1968-7"]["test_name"] == "Bilirubin^direct \\ conj."      # \S\ and \E\
    assert by_code["1968-7"]["accession"] == "25-062-000124|B"                # \F\ in OBR-3
    assert (by_code["BE"]["ref_low"], by_code["BE"]["ref_high"]) == ("-2", "+2")
    assert by_code["BE"]["value"] == "-3.5" and by_code["BE"]["code_system"] == "99LAB"
    # TX: repetitions are lines, \.br\ a line break, \X4D\ the byte 'M'
    assert by_code["COMMENT"]["value"] == "Specimen slightly hemolyzed.\nResult verified.\nSecond line Mg"
    assert by_code["2276-4"] == lab(
        patient_id="MRN0042", collected_at="2025-03-03T08:00:00-05:00", code="2276-4",
        code_system="LN", value=">=100000", unit="ug/L", test_name="Ferritin", ref_low="30",
        ref_high="400", resulted_at="2025-03-03T10:00:00-05:00", result_status="F",
        accession="25-062-000123", source_system="MILLENNIUM")


def test_v251_batch_dst_correction_cancellation_and_vitals():
    rows = rows_of("oru_v251_batch_crlf.hl7")
    labs = [r.fields for r in rows if r.feed == "labs"]
    ferritin = lab(patient_id="E7654321", collected_at="2025-03-08T23:30:00-05:00", code="2276-4",
                   code_system="LN", unit="ng/mL", test_name="Ferritin [Mass/volume] in Serum or Plasma",
                   ref_low="30", ref_high="400", accession="F-9001", source_system="EPIC")
    fibrinogen = dict(ferritin, collected_at="2025-03-09T01:30:00-05:00", code="3255-7",
                      test_name="Fibrinogen", ref_low="200")
    assert labs == [
        # collected before the US spring-forward (EST, -05:00), resulted after it (EDT, -04:00)
        dict(ferritin, value="24310", resulted_at="2025-03-09T03:15:00-04:00", result_status="F"),
        dict(fibrinogen, value="142", unit="mg/dL", resulted_at="2025-03-09T03:15:00-04:00",
             result_status="F"),
        # the correction and the cancellation carry the accession of what they replace
        dict(ferritin, value="2431", resulted_at="2025-03-09T05:09:00-04:00", result_status="C"),
        dict(fibrinogen, value=None, unit=None, resulted_at="2025-03-09T05:09:00-04:00",
             result_status="X"),
    ]
    vitals = [(r.fields["kind"], r.fields["value"], r.fields["unit"], r.fields["measured_at"])
              for r in rows if r.feed == "vitals" and r.error is None]
    at = "2025-03-09T08:00:00-04:00"
    assert vitals == [
        ("temperature", "39.2", "Cel", at), ("heart_rate", "118", "/min", at),
        ("sbp", "84", "mm[Hg]", at), ("dbp", "48", "mm[Hg]", at), ("map", "60", "mm[Hg]", at),
        ("spo2", "91", "%", at), ("spo2", "89", "%", "2025-03-09T08:15:00-04:00"),  # OBX-14 wins
        ("o2_flow", "40", "L/min", at), ("o2_device", "high_flow", None, at),
    ]
    withdrawn = [r for r in rows if r.error]
    assert [(r.feed, r.line, r.error) for r in withdrawn] == [
        ("vitals", 3, "hl7: message 3: vital sign temperature with result status X "
                      "(withdrawn, not a measurement)")]
    assert {r.fields["patient_id"] for r in rows if r.error is None} == {"E7654321"}


def test_mllp_framing():
    rows = rows_of("oru_mllp.hl7")
    assert [(r.line, r.fields["code"], r.fields["value"], r.fields["accession"]) for r in rows] == [
        (1, "2532-0", "612", "ACC-777"), (2, "2160-0", "1.2", "ACC-778")]
    assert rows[0].fields["collected_at"] == "2025-03-10T11:30:00+01:00"
    assert "\x0b" not in rows[0].raw and "\x1c" not in rows[1].raw


def test_separators_read_from_each_msh():
    rows = rows_of("oru_custom_separators.hl7")
    assert [r.fields for r in rows] == [
        lab(patient_id="SITE2-55", collected_at="2025-03-11T07:00:00", code="1920-8",
            code_system="LN", value="233", unit="U/L", test_name="AST", ref_low="10", ref_high="40",
            resulted_at="2025-03-11T08:50:00", result_status="F", accession="A#55",
            source_system="ALTLIS"),
        lab(patient_id="SITE2-55", collected_at="2025-03-11T07:00:00", code="1742-6",
            code_system="LN", value="198", unit="U/L", test_name="ALT $ GPT", ref_low="7",
            ref_high="55", resulted_at="2025-03-11T08:50:00", result_status="F", accession="A#55",
            source_system="ALTLIS"),
    ]


def test_broken_messages_give_one_error_row_each_and_the_rest_parses():
    rows = rows_of("oru_errors.hl7")
    assert [(r.line, r.feed, r.error) for r in rows if r.error] == [
        (1, "labs", "hl7: message 1: no MSH segment"),
        (2, "labs", "hl7: message 2: no PID segment before OBX"),
        (3, "labs", "hl7: message 3: OBX before OBR"),
        (4, "labs", "hl7: message 4: broken MSH segment (separators or MSH-9 missing)"),
        (5, "labs", "hl7: message 5: not an ORU result message (MSH-9 ADT^A01^ADT_A01)"),
        (6, "labs", "hl7: message 6: no OBX segment"),
    ]
    assert rows[2].raw.startswith("MSH|") and rows[2].raw.count("\r") == 3   # the whole message
    good = [r.fields for r in rows if not r.error]
    # unparseable timestamps are passed through as sent, for the normalizer to quarantine
    assert [(f["code"], f["collected_at"]) for f in good] == [
        ("1988-5", "2025-13-45T12:00:00"), ("1742-6", "2025031207XX")]
    assert {r.line for r in rows} == set(range(1, 8))


@pytest.mark.parametrize("end", ["\r", "\n", "\r\n", "\x0b"])
def test_segment_ends_give_identical_rows(end):
    text = _text("oru_v23_local_codes.hl7")
    assert "\r" in text and "\n" not in text
    assert list(parse_hl7_text(text.replace("\r", end))) == rows_of("oru_v23_local_codes.hl7")


def _text(name: str) -> str:
    """The fixture's text with its line ends as sent (read_text would turn CR into LF)."""
    return (FIXTURES / name).read_bytes().decode("utf-8")


def _batch_segments() -> list[str]:
    return _text("oru_v251_batch_crlf.hl7").replace("\r\n", "\r").split("\r")


@pytest.mark.parametrize("layout", ["vt_between", "vt_before_each", "mixed_ends", "mllp_per_message"])
def test_vertical_tabs_mixed_ends_and_framing_read_like_cr(layout):
    """A file starting with FHS whose segments VT separates was one long batch segment: no row."""
    segments = [s for s in _batch_segments() if s]
    if layout == "vt_between":
        text = "\x0b".join(segments) + "\x0b"
    elif layout == "vt_before_each":
        text = "".join("\x0b" + s for s in segments)
    elif layout == "mixed_ends":
        text = "".join(s + ("\r", "\n", "\r\n", "\x0b")[i % 4] for i, s in enumerate(segments))
    else:   # each message (MSH to the next MSH or batch trailer) framed \x0b ... \x1c\r
        text = "\r".join(segments).replace("\rMSH", "\x1c\r\x0bMSH").replace("\rBTS", "\x1c\r\x0bBTS")
    expected = rows_of("oru_v251_batch_crlf.hl7")
    assert len(expected) == 14 and list(parse_hl7_text(text)) == expected


def test_row_raw_is_its_obr_and_obx():
    row = rows_of("oru_mllp.hl7")[0]
    assert row.raw == ("OBR|1||ACC-777|LDH^LDH^L|||20250310113000+0100|||||||||||||||"
                       "20250310115500+0100|||F\rOBX|1|NM|2532-0^Lactate dehydrogenase^LN||612|U/L|"
                       "122-222|H|||F")


def test_several_patients_in_one_message_and_missing_coding_system():
    text = ("MSH|^~\\&|LIS|H|||20250101||ORU^R01|1|P|2.5.1\r"
            "PID|1||A-1\rOBR|1||X1|||20250101080000\rOBX|1|NM|2276-4^Ferritin||900|ng/mL\r"
            "PID|2||B-2\rOBR|2||X2|||20250101090000\rOBX|1|NM|2276-4^Ferritin^LN||950|ng/mL\r")
    rows = list(parse_hl7_text(text))
    assert [(r.fields["patient_id"], r.fields["code_system"], r.fields["accession"]) for r in rows] == [
        ("A-1", None, "X1"), ("B-2", "LN", "X2")]


def test_placer_number_when_no_filler_number_and_latin1_file(tmp_path):
    text = ("MSH|^~\\&|LIS|H|||20250101||ORU^R01|1|P|2.3\r"
            "PID|1||A-1\rOBR|1|PLACER-9^LIS||||20250101080000\r"
            "OBX|1|NM|718-7^Hämoglobin^LN||11.9|g/dL\r")
    path = tmp_path / "latin1.hl7"
    path.write_bytes(text.encode("latin-1"))
    [row] = parse_hl7_file(path)
    assert row.fields["accession"] == "PLACER-9" and row.fields["test_name"] == "Hämoglobin"


def test_vitals_codes_come_from_the_rules_file(rules):
    kinds = vital_kind_by_loinc()
    for kind, spec in rules.vitals.items():
        assert kinds[spec["loinc"]] == kind
    assert kinds["2708-6"] == "spo2"                               # codes.yaml alias


# --- helpers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, iso", [
    ("20250309031500-0400", "2025-03-09T03:15:00-04:00"),
    ("20250308233000-0500", "2025-03-08T23:30:00-05:00"),
    ("202503091200+0530", "2025-03-09T12:00+05:30"),
    ("20250309120000.1234+0000", "2025-03-09T12:00:00.1234+00:00"),
    ("20250309120000", "2025-03-09T12:00:00"),
    ("2025030912", "2025-03-09T12:00"),
    ("20250309", "2025-03-09"),
    ("20250309-0500", "2025-03-09"),
    (" 20250309120000 ", "2025-03-09T12:00:00"),
    ("", None), ("  ", None), (None, None),
    # not a timestamp or not a real moment: passed through unchanged
    ("20251345120000", "2025-13-45T12:00:00"), ("20250230", "2025-02-30"), ("2025-03-09", "2025-03-09"),
    ("202503", "202503"), ("20250309120000+2500", "20250309120000+2500"), ("yesterday", "yesterday"),
    ("20250309126000", "2025-03-09T12:60:00"),
])
def test_hl7_timestamp_to_iso(text, iso):
    assert hl7_timestamp_to_iso(text) == iso


@pytest.mark.parametrize("text, expected", [
    ("30-400", ("30", "400")), ("4.0 - 11.0", ("4.0", "11.0")), ("-10--2", ("-10", "-2")),
    ("-2-+2", ("-2", "+2")), ("<150", (None, "150")), ("< 0.5", (None, "0.5")),
    ("<=7", (None, "7")), (">60", ("60", None)), (">= 1.5", ("1.5", None)), (".5-1", (".5", "1")),
    ("", (None, None)), (None, (None, None)), ("negative", (None, None)), ("5", (None, None)),
    ("1-2-3", (None, None)),
])
def test_split_reference_range(text, expected):
    assert split_reference_range(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f", "a|b^c&d~e\\f"),
    ("line1\\.br\\line2", "line1\nline2"),
    ("\\X41\\\\X4D\\", "AM"), ("\\XC3A9\\", "é"), ("\\XE9\\", "é"),          # UTF-8, else Latin-1
    ("\\H\\bold\\N\\", "bold"),
    ("open \\F", "open \\F"),                         # unterminated: literal
    ("\\Zcustom\\", "\\Zcustom\\"), ("\\XZZ\\", "\\XZZ\\"),   # unknown or bad hex: literal
    ("plain", "plain"),
])
def test_unescape(text, expected):
    assert unescape(text, DEFAULT_SEPARATORS) == expected


@pytest.mark.parametrize("msh, expected", [
    ("MSH|^~\\&|A", DEFAULT_SEPARATORS),
    ("MSH#$~\\&#A", Separators("#", "$", "~", "\\", "&")),
    ("MSH|^~\\&#|A", DEFAULT_SEPARATORS),            # v2.7 truncation character tolerated
    ("MSH|^~|A", Separators("|", "^", "~", "", "")),  # no escape / subcomponent characters
    ("MSH|", None), ("MSH", None), ("MSH||A", None), ("MSH|^^~\\&|A", None), ("MSHA^~\\&A", None),
    ("MSH ^~\\& A", None),
])
def test_read_separators(msh, expected):
    assert read_separators(msh) == expected


# --- cross-check with python-hl7 (the maintained library, too slow for the hot path) ----------

def _messages_for_python_hl7(path: Path) -> list[str]:
    """The file's ORU messages as python-hl7 wants them: CR-separated, no MLLP, no batch."""
    text = path.read_bytes().decode("utf-8").replace("\x0b", "").replace("\x1c", "")
    messages: list[list[str]] = []
    for seg in re.split(r"\r\n|\r|\n", text):
        if seg.startswith("MSH"):
            messages.append([seg])
        elif seg and seg[:3] not in ("FHS", "BHS", "BTS", "FTS") and messages:
            messages[-1].append(seg)
    return ["\r".join(m) for m in messages]


def _python_hl7_obx(path: Path):
    """Per OBX, what python-hl7 reads from it, its OBR and the PID before it."""
    for text in _messages_for_python_hl7(path):
        msg = hl7.parse(text)
        count = {"PID": 0, "OBR": 0, "OBX": 0}
        for seg in msg:
            sid = str(seg[0])
            if sid not in count:
                continue
            count[sid] += 1
            if sid != "OBX":
                continue

            def field(seg_id, f, c=1):
                return msg.extract_field(seg_id, count[seg_id], f, 1, c) or None

            yield {"patient": field("PID", 3), "type": field("OBX", 2), "value": field("OBX", 5),
                   "unit": field("OBX", 6), "name": field("OBX", 3, 2), "status": field("OBX", 11),
                   "accession": field("OBR", 3) or field("OBR", 2),
                   "at": field("OBX", 14) or field("OBR", 7)}


@pytest.mark.parametrize("name", ["oru_v23_local_codes.hl7", "oru_v24_sendout_lf.hl7",
                                  "oru_v251_batch_crlf.hl7", "oru_mllp.hl7",
                                  "oru_custom_separators.hl7"])
def test_fields_agree_with_python_hl7(name):
    ours = rows_of(name)                  # in these files every OBX gives exactly one row
    theirs = list(_python_hl7_obx(FIXTURES / name))
    assert len(ours) == len(theirs)
    for row, ref in zip(ours, theirs):
        if row.error:
            continue
        f = row.fields
        assert f["patient_id"] == ref["patient"]
        assert f["unit"] == ref["unit"]
        assert f.get("collected_at", f.get("measured_at")) == hl7_timestamp_to_iso(ref["at"])
        if ref["type"] == "NM":
            assert f["value"] == ref["value"]
        if row.feed == "labs":
            assert (f["test_name"], f["result_status"], f["accession"]) == (
                ref["name"], ref["status"], ref["accession"])
