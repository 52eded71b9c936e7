/*
Title: stg_vitals
Description: One batch of parsed vital-sign rows judged and brought to canonical form: the kind,
  the reading in the kind's canonical unit (an oxygen device by its name), the time in UTC, and the
  first reason a row cannot be used.
Grain: one row per parsed row of the batch (batch_row); rows with a reason go to quarantine.
Source criterion: docs/contract.md section 1 (vitals feed; HL7 and FHIR vital signs map to it);
  kinds, canonical units and oxygen devices from the rules file.
Parameters: $site_tz, $now, $future_tolerance, $earliest_year, $o2_devices
Upstream tables: parsed_batch, staging_units, staging_vital_kinds
*/

WITH source AS (
    SELECT * FROM parsed_batch
),

-- each value is read in steps, one CTE each (sql/staging/feed_values.sql says why)
texts AS (
    SELECT
        *,
        time_text(measured_at) AS measured_text,
        number_text(value) AS value_text
    FROM source
),

readings AS (
    SELECT
        *,
        time_read(measured_text, FALSE) AS measured_read,
        number_read(value_text) AS number
    FROM texts
),

read_values AS (
    SELECT
        *,
        time_utc(measured_read, $site_tz) AS measured_utc
    FROM readings
),

cleaned AS (
    SELECT
        batch_row,
        line,
        raw,
        error,
        feed_text(patient_id) AS patient_id,
        lower(feed_text(kind)) AS kind,
        feed_text(value) AS value_original,
        feed_text(unit) AS unit_original,
        number,
        time_judged(measured_utc, $now, $future_tolerance, $earliest_year) AS measured
    FROM read_values
),

valued AS (
    SELECT
        c.*,
        k.canonical_unit,
        u.scale,
        u.shift,
        u.error AS unit_error,
        c.kind = 'o2_device' AS is_device
    FROM cleaned AS c
    LEFT JOIN staging_vital_kinds AS k ON c.kind = k.kind
    LEFT JOIN staging_units AS u ON c.kind = u.measure AND coalesce(c.unit_original, '') = u.unit
),

judged AS (
    SELECT
        *,
        coalesce(
            error,
            id_error(patient_id, 'patient_id', TRUE),
            CASE WHEN kind IS NULL THEN 'missing kind' END,
            CASE WHEN canonical_unit IS NULL THEN 'unknown vital kind ' || quoted(kind) END,
            'measured_at: ' || measured.error,
            CASE WHEN is_device AND value_original IS NULL THEN 'missing value' END,
            CASE WHEN is_device AND NOT list_contains($o2_devices, lower(value_original))
                    THEN 'unknown o2_device ' || quoted(lower(value_original)) END,
            CASE WHEN NOT is_device THEN coalesce(number.error, unit_error) END
        ) AS reason
    FROM valued
)

SELECT
    -- lineage within the batch
    batch_row,
    line,
    raw,
    reason,
    -- ids
    patient_id,
    kind,
    -- values, canonical units (an oxygen device is a name, not a number)
    CASE WHEN NOT is_device THEN number.value * scale + shift END AS value,
    CASE WHEN is_device THEN lower(value_original) END AS value_text,
    CASE WHEN NOT is_device THEN canonical_unit END AS unit,
    -- timestamps
    measured.at AS observed_at,
    -- the row's identity, the same whichever format or file delivered it
    sha1(concat_ws(
        chr(31), coalesce(patient_id, ''), coalesce(kind, ''), coalesce(iso_utc(measured.at), ''),
        number_key(CASE WHEN NOT is_device THEN number.value * scale + shift END),
        coalesce(CASE WHEN is_device THEN lower(value_original) END, '')
    )) AS row_key
FROM judged
