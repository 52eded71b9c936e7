/*
Title: in_build_scope
Description: Scalar macro: does an incremental build evaluate this patient? ref.scope lists the
  patients touched by new or newly known rows; with no patient listed, the build is full and
  every patient is in scope.
Grain: one boolean per row.
Source criterion: none clinical: the incremental nightly run (cartwatch/incremental.py), which must
  give the same tables as a full rebuild.
Parameters: none. Macro arguments: patient_id.
Upstream tables: ref.scope
*/
CREATE OR REPLACE MACRO derived.in_build_scope(patient) AS (
    patient IN (SELECT s.patient_id FROM ref.scope AS s)
    OR NOT EXISTS (SELECT 1 FROM ref.scope AS s WHERE s.patient_id IS NOT NULL)
);
