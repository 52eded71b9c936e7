"""What the report reads of a stored night (cartwatch/streams.py), in place of the evaluation in the
tables: the CTEs `infusions`, `read_windows`, `follow_up`, `crs` and `deaths` of outcomes.OUTCOMES.

A backfill evaluates in its own databases and stores only each night's windows and latest day of
flags (flags.windows_by_night, flags.daily_by_night); the derived tables of the main database
may hold another moment's evaluation, or none. So a stored night's report reads:

- windows and follow-up (the latest day with flags): what the night stored;
- infusions: the staged infusions known by the night's as-of (each in its latest delivery), of
  those the night evaluated (with a day of flags): a backfill's cohort, not every patient;
- the CRS peak day: the one the night's windows were measured against (their `crs_peak_day`);
  the day of CRS improvement is not stored per night, so the time from it to onset is empty;
- deaths known by the night's as-of, on the latest infusion at or before them (day post-infusion
  in the infusion's zone, or $site_tz).
"""

NIGHT_SOURCES = """
read_windows AS (
    SELECT * FROM flags.windows_by_night WHERE stream = $stream AND as_of = $as_of
),
follow_up AS (
    SELECT patient_id, infusion_id, max(day) AS last_day FROM flags.daily_by_night
    WHERE stream = $stream AND as_of = $as_of GROUP BY ALL
),
known_infusions AS (
    SELECT patient_id, infusion_id, product, target_antigen, indication, observed_at AS infused_at,
           coalesce(site_timezone, $site_tz) AS site_tz
    FROM stg.infusions WHERE observed_at <= $as_of
    QUALIFY row_number() OVER (PARTITION BY patient_id, infusion_id ORDER BY load_seq DESC) = 1
),
infusions AS (
    SELECT c.patient_id, c.infusion_id, k.product, k.target_antigen, k.indication
    FROM cohort AS c JOIN known_infusions AS k USING (patient_id, infusion_id)
    JOIN follow_up USING (patient_id, infusion_id)
),
crs AS (
    SELECT patient_id, infusion_id, arg_min(crs_peak_day, onset_at) AS crs_peak_day,
           NULL::INTEGER AS crs_improvement_day
    FROM read_windows WHERE crs_peak_day IS NOT NULL GROUP BY ALL
),
deaths AS (
    SELECT k.patient_id, k.infusion_id, min(day_post_infusion(k.site_tz, e.observed_at, k.infused_at)) AS death_day
    FROM (SELECT * FROM stg.events WHERE event_type = 'death' AND observed_at <= $as_of) AS e
    ASOF JOIN known_infusions AS k ON e.patient_id = k.patient_id AND e.observed_at >= k.infused_at
    GROUP BY ALL
)"""
