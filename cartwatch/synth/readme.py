"""data/sample/README.md, rendered from the ground truth so the stories never drift from the files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from cartwatch.synth.archetypes import ARCHETYPES
from cartwatch.synth.oracle import READINGS
from cartwatch.synth.sites import HOME_TIMEZONE, SITES
from cartwatch.synth.truth import GroundTruth

INTRO = """\
# Sample data: a synthetic CAR-T cohort

Everything here is synthetic, made by `cartwatch.synth` (seeded, byte-identical for a seed). Do not
edit these files by hand: regenerate them with

    {command}

`make demo` loads this folder as of the moment in `AS_OF` ({as_of}); nothing here is dated after it
except one deliberately mistyped result. `ground_truth.csv` (one row per patient and infusion) and
`ground_truth.json` (the same, plus every ferritin signal, the CRS instants, and one entry per file
line the loader must treat specially) are the specification the pipeline is reconciled against;
the loader skips them (their headers match no feed).

## How to read the expected flags

- **Status** is the highest `astct_iec_hs_2023` status of the episode (`none`, `watch`, `suspected`,
  `criteria_met`), evaluated as of `AS_OF` with every correction and cancellation applied, at each
  ferritin result using only results collected by then (clinical-rules.md §3).
- **Days** are local calendar days post-infusion in the patient's `site_timezone` (day 0 = infusion
  day). **Onset day** is the day of the first ferritin result at which the status reaches
  `suspected`; **criteria met day** the day it first becomes `criteria_met`; **late** = onset day
  >= {late_day:g}.
- **CRS** columns come from the designed daily grade, which the vitals (or the documented
  `crs_grade` events) reproduce: onset = first day with grade >= 1, peak day = first day at the
  highest grade, **resolution day** = the first full grade-0 day after onset (resolution is at its
  end, 24:00 local).
- Every number in the stories comes from `transforms/clinical_rules.yaml` ({rules_version}).
- The expected verdicts were checked under {readings} readings of the points the rules leave open
  (below); a patient whose verdict would change with the reading was redrawn, so none of these
  verdicts depends on one.

### Where the rules needed a reading

1. **CRS-phase peak window** (onset to resolution + {lag:g} h) is inclusive at both ends: a ferritin
   collected exactly at resolution + {lag:g} h is still CRS-phase (`hard_ferritin_lag_boundary`).
2. **A re-rise inside that window** is ambiguous (does the judged result count towards the peak it
   is compared with?). The sample never relies on it: IEC-HS re-rises start after the window has
   closed, and the re-escalation case is carried by the rapid-rise rule, which needs no peak.
3. **CRS onset and re-escalation are known from the first reading that shows them** (a fever at
   14:00 does not make a 06:00 ferritin "during CRS"); the sample's verdicts are the same if they
   are taken from 00:00 of their day.
4. **Cytopenias**: after lymphodepletion almost every patient has ANC < 1.0; whether that counts as
   the "new, worsening or refractory cytopenia" manifestation is left to the engine. Every
   `criteria_met` here is carried by fibrinogen < max(150 mg/dL, LLN), AST/ALT > 5 x ULN (or 5 x an
   abnormal baseline) or marrow hemophagocytosis, and the one `suspected`-only patient has
   recovered counts, so the verdicts hold whether cytopenias count or not.
5. **Rapid rise** compares with any earlier result 0 < gap <= {window:g} h, including a pre-infusion
   draw; the verdicts are the same without pre-infusion results.
6. **Fever after CRS resolution** would be graded as a new CRS day by the ASTCT vitals rules, so
   temperatures stay below 38.0 C after resolution (IEC-HS here is afebrile, a simplification).
7. **Improvement** is 00:00 of the first day graded below the peak so far; with an afebrile tail on
   oxygen after tocilizumab (grade 2 -> 0), improvement and resolution fall on the same day.
8. **A cancelled result (X)** has an empty value; a **corrected** one (C) repeats the accession and
   LOINC with a later `resulted_at`; a **preliminary** (P) is replaced by the F of the same
   accession and LOINC.
9. **Naive timestamps** (the New York bedside vitals) are local times of {home}, the settings'
   default `site_tz`: load this folder with that site time zone.
"""


def render(truth: GroundTruth, command: str, rules, formats: tuple[str, ...] = ("csv",),
           out_dir: Path | None = None) -> str:
    """The README; `formats` beyond csv add the section on the HL7 / FHIR copies (with the rows
    each file gives when `out_dir` holds them)."""
    text = INTRO.format(command=command, as_of=truth.as_of, rules_version=truth.rules_version,
                        late_day=rules.value("iec_hs.late_onset_day"), readings=len(READINGS),
                        lag=rules.value("iec_hs.ferritin_lag_hours"),
                        window=rules.value("iec_hs.rapid_rise_window_hours"), home=HOME_TIMEZONE)
    parts = [text, _files(truth)]
    if set(formats) - {"csv"}:
        parts.append(_formats(formats, out_dir))
    parts += [_sites(), _summary(truth), _stories(truth), _rows(truth)]
    return "\n".join(parts) + "\n"


FORMAT_FILES = {
    "hl7": [("hl7/labs_batch.hl7", "labs as ORU^R01 v2.5.1 in one FHS/BHS batch, one message per order "
             "(accession and resulted time), CR segment ends"),
            ("hl7/labs_resend.hl7", "the results `labs_resend.csv` re-sends, plain messages"),
            ("hl7/vitals.hl7", "vitals, one ORU^R01 per measurement time, plain messages (no batch)")],
    "fhir": [("fhir/MedicationAdministration.ndjson", "the drug events (tocilizumab, corticosteroid, "
              "anakinra, ruxolitinib, etoposide, emapalumab; a vasopressor count of 1)"),
             ("fhir/Observation.ndjson", "labs and vitals, one Observation a line (systolic and diastolic "
              "as one blood pressure panel), as a Bulk Data export writes them"),
             ("fhir/Procedure.ndjson", "the infusions"),
             ("fhir/result_versions_bundle.json", "a Bundle (collection) with every version of each result "
              "that was corrected, cancelled or preliminary, the same resources as in the export")],
}

FORMATS_TEXT = """\
## The same patients in HL7 v2 and FHIR R4

`hl7/` and `fhir/` carry {patients} again, written from the same rows by `write_sample_feeds` in
`transforms/parsers/hl7_writer.py` and `fhir_writer.py` (the whole cohort would be about 1.7 MB of
HL7 and 12 MB of FHIR): Madrid results with `Z` times and SI units, New York bedside times
without offset, a correction, a cancellation, preliminaries, the deliberately malformed rows and a
re-sent file. Loaded after the CSV files, every result and reading in them is a duplicate (the
same result delivered twice in another format is stored once) or quarantined for the same defect
as its CSV row.

| file | holds | rows read |
|---|---|---:|
{table}

**CSV-only.** HL7 ORU^R01 carries results only: infusions and events stay in the CSV files. FHIR
carries the drug events as `MedicationAdministration`; documented assessments and findings
(`crs_grade`, `icans_grade`, `hemophagocytosis`, `splenomegaly`, `hepatomegaly`,
`immunosuppression`, `death`) and a vasopressor count other than 1 have no form the parser reads,
and an export has no re-sent file.

**Same meaning, other spelling.** HL7 writes `Z` as `+0000`; FHIR numbers drop trailing zeros
(`12.50` is 12.5) and `1,250` becomes the number 1250; naive New York times get their UTC offset in
FHIR (a FHIR time of day requires one; the repeated hour of a DST change is read as its first
occurrence, as the loader reads naive times); oxygen devices are charted words (`Room air`); a unit
that is no UCUM code (`mg/L FEU`) is sent as text. Malformed rows stay malformed: the impossible
date is the HL7 timestamp `20260230...` (quarantined as an impossible date, as in CSV), the row without
patient is an Observation without subject.

**Infusions and drug events.** The FHIR infusions (`Procedure`) carry the site time zone as the
R4 `tz-code` extension of `performedDateTime`, and the drug administrations their dose as text
(`dosage.text`, `8 mg/kg`); the parser reads both, so they too are duplicates of their CSV rows.

**Load order.** `cartwatch ingest data/sample` (and `make demo`) reads a folder's own files before
its subfolders, each level sorted by name: the CSV files first, then `fhir/` and `hl7/`, whose rows
are then counted as duplicates. The stored results are the same in any order, except the lineage
columns and which spelling (`value_original`) is kept.
"""


def _rows_read(path: Path) -> str:
    from transforms.parsers.detect import read_batches
    if not path.is_file():
        return "-"
    _, batches = read_batches(path)
    return str(sum(batch.frame.height for batch in batches))


def _formats(formats: tuple[str, ...], out_dir: Path | None) -> str:
    from transforms.parsers.hl7_writer import SAMPLE_PATIENTS
    names = [f"`{p}`" for p in SAMPLE_PATIENTS]
    patients = (", ".join(names[:-1]) + " and " + names[-1]) if len(names) > 1 else names[0]
    rows = [f"| `{name}` | {what} | {_rows_read(out_dir / name) if out_dir else '-'} |"
            for fmt in ("hl7", "fhir") if fmt in formats for name, what in FORMAT_FILES[fmt]]
    return FORMATS_TEXT.format(patients=f"patients {patients}", table="\n".join(rows),
                               home=HOME_TIMEZONE)


def _files(truth: GroundTruth) -> str:
    lines = ["## Files and what the loader must count", "",
             "| file | rows read | accepted | duplicate | quarantined |", "|---|---:|---:|---:|---:|"]
    lines += [f"| `{f.file}` | {f.rows_read} | {f.accepted} | {f.duplicate} | {f.quarantined} |" for f in truth.files]
    lines += ["", "`labs_resend.csv` is read after `labs.csv` (name order), so all its rows are duplicates.",
              "`infusions.csv` carries `site_timezone` for every patient.", ""]
    return "\n".join(lines)


def _sites() -> str:
    lines = ["## Sites", "", "| site | time zone | lab system | lab times | vitals times | ranges sent | test names |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {s.city} | {s.timezone} | {s.lab_system} | {s.lab_clock} | {s.vitals_clock} | "
              f"{'yes' if s.sends_ranges else 'no (rules defaults apply)'} | {s.language} |" for s in SITES.values()]
    lines += ["", "`offset`: local time with its UTC offset; `utc`: `Z`; `naive`: local time without offset.", ""]
    return "\n".join(lines)


def _summary(truth: GroundTruth) -> str:
    counts = Counter(e.archetype for e in truth.episodes if e.infusion_id.endswith("-I1"))
    missing = [a for a in ARCHETYPES if a not in counts]
    lines = ["## Patients at a glance", "",
             "| patient | infusion | archetype | product | time zone | CRS grade (onset / peak / resolution day) "
             "| expected | onset day | criteria met day | late | quarantined |",
             "|---|---|---|---|---|---|---|---:|---:|---|---:|"]
    for e in truth.episodes:
        crs = "none" if e.crs_peak_grade is None else (
            f"{e.crs_peak_grade} ({e.crs_onset_day} / {e.crs_peak_day} / {e.crs_resolution_day})")
        lines.append(f"| {e.patient_id} | {e.infusion_id} | `{e.archetype}` | {e.car_t_product} | {e.site_timezone} "
                     f"| {crs} | **{e.iec_hs_status}** | {_dash(e.iec_hs_onset_day)} "
                     f"| {_dash(e.iec_hs_criteria_met_day)} | {'yes' if e.late_onset else 'no'} | {e.quarantined_rows} |")
    lines += ["", f"Archetypes present: {len(counts)} of {len(ARCHETYPES)}"
              + (f" (missing: {', '.join(missing)})" if missing else "") + ".", ""]
    return "\n".join(lines)


def _dash(value) -> str:
    return "-" if value is None else str(value)


def _stories(truth: GroundTruth) -> str:
    lines = ["## Each patient's story", ""]
    for e in truth.episodes:
        lines += [f"### {e.patient_id} ({e.infusion_id}): `{e.archetype}`, expected **{e.iec_hs_status}**", "",
                  f"Infused {e.infused_at} ({e.site_timezone}). {e.story}", ""]
    return "\n".join(lines)


def _rows(truth: GroundTruth) -> str:
    lines = ["## File lines with an expectation", "",
             "Line numbers count the header as line 1. Reasons for quarantine are codes; the loader's "
             "message should contain the words in `ground_truth.json` `quarantine_reason_words`.", "",
             "| file | line | patient | expectation | reason | note |", "|---|---:|---|---|---|---|"]
    resent = [r for r in truth.rows if r.file == "labs_resend.csv"]
    for r in truth.rows:
        if r.file != "labs_resend.csv":
            lines.append(f"| `{r.file}` | {r.line} | {r.patient_id} | {r.expect} | {r.reason} | {r.note} |")
    if resent:
        lines.append(f"| `labs_resend.csv` | {resent[0].line}-{resent[-1].line} | {resent[0].patient_id} | duplicate "
                     f"| re-sent file | each repeats its row in `labs.csv` (see ground_truth.json) |")
    return "\n".join(lines) + "\n"
