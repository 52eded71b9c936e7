/*
Title: lab_results
Description: The lab result versions in force as of $as_of: corrections replace, cancellations
  withdraw, preliminaries give way to their final.
Grain: one row per result (patient, accession, LOINC; a result without accession stands alone).
Source criterion: clinical-rules.md §1 (Corrections: applied in resulted_at order; on a tie P and F
  before C before X, then file order); contract.md §3 (a row is known from coalesce(resulted_at, observed_at)).
Parameters: $as_of, $as_loaded, $rules_version
Upstream tables: stg.lab_results, ref.scope (patients of an incremental build)
*/
CREATE OR REPLACE TABLE derived.lab_results AS
WITH known AS (
    SELECT *
    FROM stg.lab_results
    WHERE derived.known_as_of(coalesce(resulted_at, observed_at), loaded_at, $as_of, $as_loaded)
      -- incremental builds evaluate only the patients in ref.scope
      AND derived.in_build_scope(patient_id)
),

last_applied AS (
    SELECT *
    FROM known
    QUALIFY row_number() OVER (
        PARTITION BY patient_id, coalesce(accession, row_key), coalesce(loinc, local_code, analyte)
        ORDER BY
            coalesce(resulted_at, observed_at) DESC,
            -- clinical-rules.md §1: on a tie, P and F before C before X
            CASE result_status WHEN 'X' THEN 3 WHEN 'C' THEN 2 ELSE 1 END DESC,
            load_seq DESC
    ) = 1
)

SELECT
    * EXCLUDE (value_original, unit_original),
    $rules_version AS rules_version
FROM last_applied
-- clinical-rules.md §1: a cancelled result is withdrawn from every evaluation
WHERE result_status <> 'X';
