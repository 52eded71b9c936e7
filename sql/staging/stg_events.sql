/*
Title: stg_events
Description: One batch of parsed clinician-documented events judged: CRS/ICANS grades and
  vasopressor counts as whole numbers on their scale, yes/no findings as 1/0, treatments and death
  with their text, the time in UTC (a date alone is 00:00 in the site zone), and the first reason a
  row cannot be used.
Grain: one row per parsed row of the batch (batch_row); rows with a reason go to quarantine.
Source criterion: docs/contract.md section 1 (events feed; FHIR MedicationAdministration maps to it).
Parameters: $site_tz, $now, $future_tolerance, $earliest_year, $graded, $graded_max, $counted,
  $counted_max, $findings, $other_events, $true_words, $false_words
Upstream tables: parsed_batch
*/

WITH source AS (
    SELECT * FROM parsed_batch
),

-- each value is read in steps, one CTE each (sql/staging/feed_values.sql says why)
texts AS (
    SELECT
        *,
        time_text(event_at) AS happened_text,
        number_text(value) AS value_text
    FROM source
),

readings AS (
    SELECT
        *,
        time_read(happened_text, TRUE) AS happened_read,
        number_read(value_text) AS number
    FROM texts
),

read_values AS (
    SELECT
        *,
        time_utc(happened_read, $site_tz) AS happened_utc
    FROM readings
),

cleaned AS (
    SELECT
        batch_row,
        line,
        raw,
        error,
        feed_text(patient_id) AS patient_id,
        lower(feed_text(event_type)) AS event_type,
        feed_text(value) AS value_original,
        number,
        time_judged(happened_utc, $now, $future_tolerance, $earliest_year) AS happened
    FROM read_values
),

typed AS (
    SELECT
        *,
        CASE
            WHEN list_contains($graded, event_type) THEN 'scale'
            WHEN list_contains($counted, event_type) THEN 'count'
            WHEN list_contains($findings, event_type) THEN 'finding'
            WHEN list_contains($other_events, event_type) THEN 'text'
        END AS value_kind,
        CASE WHEN list_contains($graded, event_type) THEN $graded_max ELSE $counted_max END AS upper_bound
    FROM cleaned
),

judged AS (
    SELECT
        *,
        coalesce(
            error,
            id_error(patient_id, 'patient_id', TRUE),
            CASE WHEN event_type IS NULL THEN 'missing event_type' END,
            CASE WHEN value_kind IS NULL THEN 'unknown event_type ' || quoted(event_type) END,
            'event_at: ' || happened.error,
            CASE WHEN value_kind IN ('scale', 'count') THEN coalesce(
                event_type || ': ' || number.error,
                CASE WHEN number.comparator IS NOT NULL OR number.value != round(number.value)
                        OR NOT number.value BETWEEN 0 AND upper_bound
                    THEN event_type || ' must be a whole number 0-' || upper_bound || ', got '
                    || quoted(value_original) END
            ) END,
            CASE WHEN value_kind = 'finding'
                    AND NOT list_contains($true_words || $false_words, coalesce(lower(value_original), ''))
                    THEN event_type || ' must be true or false, got ' || coalesce(quoted(value_original), 'None') END
        ) AS reason
    FROM typed
),

final AS (
    SELECT
        -- lineage within the batch
        batch_row,
        line,
        raw,
        reason,
        -- ids
        patient_id,
        event_type,
        -- values: a number on the event's scale, 1/0 for a finding, text for treatments and death
        CASE
            WHEN value_kind IN ('scale', 'count') THEN number.value
            WHEN value_kind = 'finding' THEN list_contains($true_words, lower(value_original))::INTEGER::DOUBLE
        END AS value_num,
        CASE WHEN value_kind = 'text' THEN value_original END AS value_text,
        -- timestamps
        happened.at AS observed_at
    FROM judged
)

SELECT
    *,
    -- the row's identity, the same whichever format or file delivered it
    sha1(concat_ws(
        chr(31), coalesce(patient_id, ''), coalesce(event_type, ''), coalesce(iso_utc(observed_at), ''),
        number_key(value_num), coalesce(value_text, '')
    )) AS row_key
FROM final
