/*
Title: 001_layers
Description: The layered store: raw (as received), stg (canonical units), quarantine, meta, ref,
  derived and flags schemas, and the tables written at ingest.
Grain: see each table's comment.
*/

CREATE SCHEMA IF NOT EXISTS meta;
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS stg;
CREATE SCHEMA IF NOT EXISTS quarantine;
CREATE SCHEMA IF NOT EXISTS ref;
CREATE SCHEMA IF NOT EXISTS derived;
CREATE SCHEMA IF NOT EXISTS flags;

-- one row per loaded file (a file's content hash makes a re-delivered file a no-op)
CREATE TABLE meta.files (
    file_sha256 VARCHAR PRIMARY KEY,
    source_file VARCHAR NOT NULL,
    format VARCHAR NOT NULL,
    feed VARCHAR,
    loaded_at TIMESTAMPTZ NOT NULL,
    rows_read INTEGER NOT NULL,
    accepted INTEGER NOT NULL,
    duplicate INTEGER NOT NULL,
    quarantined INTEGER NOT NULL,
    run_id VARCHAR
);

-- one row per expectation per validated file
CREATE TABLE meta.validations (
    file_sha256 VARCHAR NOT NULL,
    feed VARCHAR NOT NULL,
    suite VARCHAR NOT NULL,
    expectation VARCHAR NOT NULL,
    column_name VARCHAR,
    success BOOLEAN NOT NULL,
    element_count INTEGER,
    unexpected_count INTEGER,
    validated_at TIMESTAMPTZ NOT NULL
);

-- every row read, exactly as received
CREATE TABLE raw.received (
    file_sha256 VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    line INTEGER NOT NULL,
    feed VARCHAR,
    format VARCHAR NOT NULL,
    raw VARCHAR,
    loaded_at TIMESTAMPTZ NOT NULL
);

-- one row per rejected input row
CREATE TABLE quarantine.rows (
    source_file VARCHAR NOT NULL,
    line INTEGER NOT NULL,
    feed VARCHAR,
    reason VARCHAR NOT NULL,
    raw VARCHAR,
    loaded_at TIMESTAMPTZ NOT NULL,
    file_sha256 VARCHAR NOT NULL
);

-- one row per result version (all versions kept; corrections applied as of a moment in derived)
CREATE TABLE stg.lab_results (
    row_key VARCHAR NOT NULL,
    patient_id VARCHAR NOT NULL,
    -- codes
    analyte VARCHAR NOT NULL,
    loinc VARCHAR,
    local_code VARCHAR,
    test_name VARCHAR,
    -- values, canonical units (NULL only for a cancellation that carries no value)
    value DOUBLE,
    comparator VARCHAR,
    unit VARCHAR NOT NULL,
    value_original VARCHAR,
    unit_original VARCHAR,
    ref_low DOUBLE,
    ref_high DOUBLE,
    result_status VARCHAR NOT NULL,
    accession VARCHAR,
    source_system VARCHAR,
    -- timestamps
    observed_at TIMESTAMPTZ NOT NULL,
    resulted_at TIMESTAMPTZ,
    loaded_at TIMESTAMPTZ NOT NULL,
    -- lineage
    source_file VARCHAR NOT NULL,
    source_line INTEGER NOT NULL,
    source_format VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    load_seq BIGINT NOT NULL
);

-- one row per vital-sign reading
CREATE TABLE stg.vitals (
    row_key VARCHAR NOT NULL,
    patient_id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    value DOUBLE,
    value_text VARCHAR,
    unit VARCHAR,
    observed_at TIMESTAMPTZ NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    source_file VARCHAR NOT NULL,
    source_line INTEGER NOT NULL,
    source_format VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    load_seq BIGINT NOT NULL
);

-- one row per CAR-T infusion
CREATE TABLE stg.infusions (
    row_key VARCHAR NOT NULL,
    patient_id VARCHAR NOT NULL,
    infusion_id VARCHAR NOT NULL,
    product VARCHAR NOT NULL,
    target_antigen VARCHAR,
    indication VARCHAR,
    site_timezone VARCHAR,
    observed_at TIMESTAMPTZ NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    source_file VARCHAR NOT NULL,
    source_line INTEGER NOT NULL,
    source_format VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    load_seq BIGINT NOT NULL
);

-- one row per clinician-documented event
CREATE TABLE stg.events (
    row_key VARCHAR NOT NULL,
    patient_id VARCHAR NOT NULL,
    event_type VARCHAR NOT NULL,
    value_num DOUBLE,
    value_text VARCHAR,
    observed_at TIMESTAMPTZ NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    source_file VARCHAR NOT NULL,
    source_line INTEGER NOT NULL,
    source_format VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    load_seq BIGINT NOT NULL
);

-- local lab codes -> LOINC and analyte (loaded from sql/reference/lab_codes.csv on open)
CREATE TABLE ref.lab_codes (
    code_system VARCHAR NOT NULL,
    local_code VARCHAR NOT NULL,
    loinc VARCHAR,
    analyte VARCHAR NOT NULL,
    test_name VARCHAR,
    unit_hint VARCHAR,
    reviewer VARCHAR,
    code_system_version VARCHAR,
    notes VARCHAR
);

-- calendar day of `ts` minus calendar day of `infused_at`, both in time zone `tz` (clinical-rules.md §1)
CREATE MACRO day_post_infusion(tz, ts, infused_at) AS
    (timezone(tz, ts)::DATE - timezone(tz, infused_at)::DATE);

-- one row per pipeline run (nightly, backfill night, ingest)
CREATE TABLE meta.runs (
    run_id VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,
    as_of TIMESTAMPTZ,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    outcome VARCHAR,
    files INTEGER,
    counts JSON,
    duration_s DOUBLE,
    rules_version VARCHAR,
    error VARCHAR
);
