/*
Title: stg_infusions
Description: One batch of parsed infusion rows judged: the CAR-T infusion that starts each
  episode, its time in UTC (a naive time read in the row's own site zone when it has one), the
  product, and the first reason a row cannot be used.
Grain: one row per parsed row of the batch (batch_row); rows with a reason go to quarantine.
Source criterion: docs/contract.md section 1 (infusions feed; FHIR Procedure and
  MedicationAdministration map to it).
Parameters: $site_tz, $now, $future_tolerance, $earliest_year
Upstream tables: parsed_batch, staging_time_zones (the zones DuckDB can compute days in)
*/

WITH source AS (
    SELECT * FROM parsed_batch
),

cleaned AS (
    SELECT
        batch_row,
        line,
        raw,
        error,
        feed_text(patient_id) AS patient_id,
        feed_text(infusion_id) AS given_infusion_id,
        feed_text(product) AS product,
        feed_text(target_antigen) AS target_antigen,
        feed_text(indication) AS indication,
        feed_text(site_timezone) AS site_timezone,
        infused_at
    FROM source
),

zoned AS (
    SELECT
        c.*,
        c.site_timezone IS NOT NULL AND z.name IS NULL AS unknown_zone
    FROM cleaned AS c
    LEFT JOIN staging_time_zones AS z ON c.site_timezone = z.name
),

-- the time is read in steps, one CTE each (sql/staging/feed_values.sql says why)
texts AS (
    SELECT
        *,
        time_text(infused_at) AS infused_text
    FROM zoned
),

readings AS (
    SELECT
        *,
        time_read(infused_text, FALSE) AS infused_read
    FROM texts
),

read_times AS (
    SELECT
        *,
        -- a naive time is read in the row's own site zone when it has one
        time_utc(infused_read, CASE WHEN unknown_zone THEN 'UTC' ELSE coalesce(site_timezone, $site_tz) END)
            AS infused_utc
    FROM readings
),

timed AS (
    SELECT
        *,
        time_judged(infused_utc, $now, $future_tolerance, $earliest_year) AS infused
    FROM read_times
),

judged AS (
    SELECT
        *,
        coalesce(
            error,
            id_error(patient_id, 'patient_id', TRUE),
            CASE WHEN unknown_zone THEN 'unknown site_timezone ' || quoted(site_timezone) END,
            'infused_at: ' || infused.error,
            CASE WHEN product IS NULL THEN 'missing product' END,
            id_error(given_infusion_id, 'infusion_id', FALSE)
        ) AS reason,
        coalesce(given_infusion_id, patient_id || '-' || strftime(timezone('UTC', infused.at), '%Y%m%dT%H%MZ'))
            AS infusion_id
    FROM timed
)

SELECT
    -- lineage within the batch
    batch_row,
    line,
    raw,
    reason,
    -- ids
    patient_id,
    infusion_id,
    -- values
    product,
    target_antigen,
    indication,
    site_timezone,
    -- timestamps
    infused.at AS observed_at,
    -- the row's identity, the same whichever format or file delivered it
    sha1(concat_ws(
        chr(31), coalesce(patient_id, ''), coalesce(infusion_id, ''), coalesce(iso_utc(infused.at), ''),
        coalesce(product, ''), coalesce(site_timezone, '')
    )) AS row_key
FROM judged
