/*
Title: stg_lab_results
Description: One batch of parsed lab rows (any format) judged and brought to canonical form: the
  analyte from its LOINC or local code, the value and reference range as numbers in the analyte's
  canonical unit, collection and result times in UTC, and the first reason a row cannot be used.
Grain: one row per parsed row of the batch (batch_row); rows with a reason go to quarantine.
Source criterion: docs/contract.md section 1 (labs feed; HL7 OBX and FHIR Observation map to it);
  canonical units and LOINC codes from the rules file's analytes.
Parameters: $site_tz, $now, $future_tolerance, $earliest_year
Upstream tables: parsed_batch (the reader's batch), staging_loinc, staging_local_codes,
  staging_units (conversions to the canonical unit, built from the rules file), staging_analytes
*/

WITH source AS (
    SELECT * FROM parsed_batch
),

-- each value is read in steps, one CTE each (sql/staging/feed_values.sql says why)
texts AS (
    SELECT
        *,
        time_text(collected_at) AS collected_text,
        time_text(resulted_at) AS resulted_text,
        number_text(value) AS value_text,
        number_text(ref_low) AS low_text,
        number_text(ref_high) AS high_text
    FROM source
),

read_times AS (
    SELECT
        *,
        time_read(collected_text, FALSE) AS collected_read,
        time_read(resulted_text, FALSE) AS resulted_read,
        number_read(value_text) AS number,
        number_read(low_text) AS low,
        number_read(high_text) AS high
    FROM texts
),

utc_times AS (
    SELECT
        *,
        time_utc(collected_read, $site_tz) AS collected_utc,
        time_utc(resulted_read, $site_tz) AS resulted_utc
    FROM read_times
),

cleaned AS (
    SELECT
        -- ids and codes
        batch_row,
        line,
        raw,
        error,
        feed_text(patient_id) AS patient_id,
        feed_text(code) AS code,
        coalesce(feed_text(code_system), 'LN') AS code_system,
        feed_text(test_name) AS test_name,
        feed_text(accession) AS accession,
        feed_text(source_system) AS source_system,
        -- values
        upper(coalesce(feed_text(result_status), 'F')) AS result_status,
        feed_text(value) AS value_original,
        feed_text(unit) AS unit_original,
        feed_text(ref_low) AS ref_low_text,
        feed_text(ref_high) AS ref_high_text,
        number,
        low,
        high,
        -- timestamps
        time_judged(collected_utc, $now, $future_tolerance, $earliest_year) AS collected,
        resulted_utc.text AS resulted_given,
        time_judged(resulted_utc, $now, $future_tolerance, $earliest_year) AS resulted
    FROM utc_times
),

coded AS (
    SELECT
        c.*,
        upper(c.code_system) IN ('LN', 'LOINC', 'HTTP://LOINC.ORG') AS is_loinc,
        loinc_map.analyte AS loinc_analyte,
        coalesce(own.analyte, any_system.analyte) AS local_analyte,
        coalesce(own.loinc, any_system.loinc) AS local_loinc
    FROM cleaned AS c
    LEFT JOIN staging_loinc AS loinc_map ON c.code = loinc_map.loinc
    LEFT JOIN staging_local_codes AS own
        ON c.code_system = own.code_system AND c.code = own.local_code
    LEFT JOIN staging_local_codes AS any_system
        ON any_system.code_system = '' AND c.code = any_system.local_code
),

mapped AS (
    SELECT
        *,
        CASE
            WHEN code IS NULL THEN 'missing code'
            WHEN is_loinc AND loinc_analyte IS NULL THEN 'unknown LOINC ' || quoted(code)
            WHEN NOT is_loinc AND local_analyte IS NULL
                THEN 'unmapped local code ' || quoted(code) || ' (system ' || quoted(code_system) || ')'
            WHEN NOT is_loinc AND local_analyte NOT IN (SELECT analyte FROM staging_analytes)
                THEN 'local code ' || quoted(code) || ' maps to unknown analyte ' || quoted(local_analyte)
        END AS code_error,
        CASE WHEN is_loinc THEN loinc_analyte ELSE local_analyte END AS analyte,
        CASE WHEN is_loinc THEN code ELSE local_loinc END AS loinc,
        CASE WHEN NOT is_loinc THEN code END AS local_code,
        -- a cancellation may withdraw a result without repeating its value
        value_original IS NULL AND result_status = 'X' AS withdrawn_without_value
    FROM coded
),

valued AS (
    SELECT
        m.*,
        u.scale,
        u.shift,
        u.error AS unit_error,
        a.canonical_unit
    FROM mapped AS m
    LEFT JOIN staging_units AS u ON m.analyte = u.measure AND coalesce(m.unit_original, '') = u.unit
    LEFT JOIN staging_analytes AS a ON m.analyte = a.analyte
),

judged AS (
    SELECT
        *,
        coalesce(
            error,
            id_error(patient_id, 'patient_id', TRUE),
            code_error,
            CASE WHEN result_status NOT IN ('F', 'C', 'X', 'P') THEN 'unknown result_status ' || quoted(result_status) END,
            CASE WHEN NOT withdrawn_without_value THEN coalesce(number.error, unit_error) END,
            CASE WHEN NOT withdrawn_without_value AND ref_low_text IS NOT NULL
                    THEN 'ref_low: ' || coalesce(low.error, unit_error) END,
            CASE WHEN NOT withdrawn_without_value AND ref_high_text IS NOT NULL
                    THEN 'ref_high: ' || coalesce(high.error, unit_error) END,
            'collected_at: ' || collected.error,
            CASE WHEN resulted_given IS NOT NULL THEN 'resulted_at: ' || resulted.error END,
            CASE WHEN resulted.at < collected.at THEN 'resulted_at is before collected_at' END
        ) AS reason
    FROM valued
),

final AS (
    SELECT
        -- lineage within the batch
        batch_row,
        line,
        raw,
        reason,
        -- ids and codes
        patient_id,
        analyte,
        loinc,
        local_code,
        test_name,
        -- values, canonical units
        CASE WHEN NOT withdrawn_without_value THEN number.value * scale + shift END AS value,
        CASE WHEN NOT withdrawn_without_value THEN number.comparator END AS comparator,
        canonical_unit AS unit,
        value_original,
        unit_original,
        CASE WHEN NOT withdrawn_without_value THEN low.value * scale + shift END AS ref_low,
        CASE WHEN NOT withdrawn_without_value THEN high.value * scale + shift END AS ref_high,
        result_status,
        accession,
        source_system,
        -- timestamps
        collected.at AS observed_at,
        resulted.at AS resulted_at
    FROM judged
)

SELECT
    *,
    -- the row's identity, the same whichever format or file delivered it
    sha1(concat_ws(
        chr(31), coalesce(patient_id, ''), coalesce(analyte, ''), coalesce(iso_utc(observed_at), ''),
        coalesce(comparator, ''), number_key(value), coalesce(result_status, ''), coalesce(accession, ''),
        coalesce(iso_utc(resulted_at), '')
    )) AS row_key
FROM final
