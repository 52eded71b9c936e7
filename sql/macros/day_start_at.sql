/*
Title: day_start_at
Description: Scalar macro: the moment a calendar day post-infusion begins, 00:00 of that date in
  the site time zone, as a UTC instant; a day ends where the next one starts. The one definition
  of day boundaries (derived.episode_days, and a met day's end in flags.windows_ucsf_masl_2020).
Grain: one timestamp per call.
Source criterion: clinical-rules.md §1 (Day post-infusion: calendar days in the site time zone, so a
  day across a DST change is 23 or 25 hours long).
Parameters: none. Macro arguments: site_tz, infused_at, day (day post-infusion, 0 = the
  infusion's calendar day).
Upstream tables: none
*/
CREATE OR REPLACE MACRO derived.day_start_at(site_tz, infused_at, day) AS (
    timezone(site_tz, (timezone(site_tz, infused_at)::DATE + day::INTEGER)::TIMESTAMP)
);
