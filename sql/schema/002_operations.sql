/*
Title: 002_operations
Description: Tables of the scheduled operations: the scope of an incremental build, the state of
  the last build, per-night results of nightly runs and backfills, the digests with the state that
  keeps a reported window from being repeated, and the completion record of backfill nights.
Grain: see each table's comment.
*/

-- the patients a scoped (incremental) build evaluates; no non-NULL row means every patient.
-- Read by the four base files of sql/derived (infusion_episodes, lab_results, vitals_timeline,
-- events_timeline); written only inside the incremental build's transaction.
CREATE TABLE ref.scope (
    patient_id VARCHAR
);

-- one row: what the derived and flags layers currently hold (cartwatch/incremental.py)
CREATE TABLE meta.build_state (
    singleton BOOLEAN PRIMARY KEY DEFAULT true,
    fingerprint VARCHAR NOT NULL,      -- sha256 of the rules file, sql/ and the site zone
    as_of TIMESTAMPTZ NOT NULL,
    as_loaded BOOLEAN NOT NULL,
    load_seq BIGINT NOT NULL,          -- the highest stg load_seq then: rows above it arrived since
    tables VARCHAR[] NOT NULL,         -- the tables the build writes, schema-qualified
    stamp VARCHAR NOT NULL,            -- also the comment on each of them: a table rebuilt elsewhere has lost it
    mode VARCHAR NOT NULL,             -- full | incremental | unchanged
    patients INTEGER,                  -- patients evaluated by the last build (NULL: all)
    built_at TIMESTAMPTZ NOT NULL
);

-- one row per onset window per criteria set, as evaluated by one night of a stream
-- (stream: 'nightly', or 'backfill:<id>'); columns after as_of are contract.md §5 `export windows`
CREATE TABLE flags.windows_by_night (
    stream VARCHAR NOT NULL,
    night DATE NOT NULL,
    as_of TIMESTAMPTZ NOT NULL,
    patient_id VARCHAR NOT NULL,
    infusion_id VARCHAR,
    criteria_set VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    onset_at TIMESTAMPTZ,
    onset_day INTEGER,
    end_at TIMESTAMPTZ,
    end_day INTEGER,
    crs_onset_day INTEGER,
    crs_peak_day INTEGER,
    crs_resolved_day INTEGER,
    late_onset BOOLEAN,
    evidence VARCHAR,
    rules_version VARCHAR
);

-- one row per patient and infusion per night of a stream: that night's latest day of flags.daily
-- (the day post-infusion the on-call team was looking at); columns after as_of are contract.md §5 `export flags`
CREATE TABLE flags.daily_by_night (
    stream VARCHAR NOT NULL,
    night DATE NOT NULL,
    as_of TIMESTAMPTZ NOT NULL,
    patient_id VARCHAR NOT NULL,
    infusion_id VARCHAR,
    day INTEGER,
    crs_grade INTEGER,
    crs_grade_source VARCHAR,
    ferritin_max DOUBLE,
    ferritin_signal VARCHAR,
    easix DOUBLE,
    m_easix DOUBLE,
    hscore_min DOUBLE,
    hscore_max DOUBLE,
    hlh_2004_met INTEGER,
    hlh_2004_evaluable INTEGER,
    astct_iec_hs_2023 VARCHAR,
    cartox_2017 VARCHAR,
    shah_2020 VARCHAR,
    ucsf_masl_2020 VARCHAR,
    hlh_94 VARCHAR,
    rules_version VARCHAR
);

-- one row per digest of a stream: the document (JSON, ids unmasked: masking is applied when it is
-- rendered) and the reporting state after it, which the stream's next digest starts from
CREATE TABLE flags.digest_by_night (
    stream VARCHAR NOT NULL,
    night DATE NOT NULL,
    as_of TIMESTAMPTZ NOT NULL,
    since TIMESTAMPTZ,
    digest JSON NOT NULL,
    state JSON NOT NULL,
    alerts INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (stream, as_of)
);

-- one row per backfill (its id is a hash of what makes its nights reproducible)
CREATE TABLE meta.backfills (
    backfill_id VARCHAR PRIMARY KEY,
    params JSON NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    nights INTEGER NOT NULL,
    patients INTEGER NOT NULL
);

-- one row per completed backfill night, written in the transaction that stores its results:
-- a killed backfill resumes at the first night without one
CREATE TABLE meta.backfill_nights (
    backfill_id VARCHAR NOT NULL,
    night DATE NOT NULL,
    as_of TIMESTAMPTZ NOT NULL,
    windows INTEGER NOT NULL,
    alerts INTEGER NOT NULL,
    seconds DOUBLE NOT NULL,
    completed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (backfill_id, night)
);
