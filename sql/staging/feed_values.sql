/*
Title: feed_values (macros)
Description: How a value written in a feed is read: text cleaned of surrounding white space, a
  numeric result (censored comparators, thousands separators, exponents) and an ISO 8601 timestamp
  (naive times in a given zone, DST gaps refused, the repeated hour read as its first occurrence),
  each with the quarantine reason when it cannot be used. Shared by every sql/staging/stg_*.sql.
Grain: scalar macros.
Source criterion: docs/contract.md section 1 (value and timestamp formats of the feeds).
Parameters: none (zones, clocks and bounds are macro arguments).
Upstream tables: none.
*/


-- a field's text without surrounding white space (vertical tabs and NBSP included); '' is NULL
CREATE OR REPLACE MACRO feed_text(x) AS
    nullif(regexp_replace(x, '^[\s\x0b\x1c-\x1f\x{85}\x{a0}]+|[\s\x0b\x1c-\x1f\x{85}\x{a0}]+$', '', 'g'), '');

-- a value quoted for a reason, as Python's repr writes a plain string: 'text'
CREATE OR REPLACE MACRO quoted(x) AS
    CASE WHEN contains(x, '''') AND NOT contains(x, '"') THEN '"' || x || '"'
        ELSE '''' || replace(replace(x, '\', '\\'), '''', '\''') || '''' END;

-- The macros below run in steps, each over the column the step before made (`number_text`, then
-- `number_read`, ...): a macro is expanded where it is called, so one macro calling another on the
-- same argument would repeat the regular expressions and zone look-ups many times per row.

-- Numbers, step 1 of 2: the text, and its parts as a comparator, then a number with optional
-- thousands groups and exponent: <5, >=100000, 1,250, -0.3, 1e-3
CREATE OR REPLACE MACRO number_text(t) AS {
    'text': feed_text(t),
    'parts': regexp_extract(
        feed_text(t),
        '^(<=|>=|<|>|=)?\s*([+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[+-]?\.\d+)(?:[eE]([+-]?\d+))?$',
        ['cmp', 'num', 'exp']
    )
};

-- Numbers, step 2 of 2: STRUCT(value, comparator, error). A decimal comma (1,25 or 1,2345) is
-- refused rather than guessed: it is ambiguous with a thousands group.
CREATE OR REPLACE MACRO number_read(n) AS CASE
    WHEN n.text IS NULL THEN { 'value': NULL::DOUBLE, 'comparator': NULL::VARCHAR, 'error': 'missing value' }
    WHEN n.parts.num = '' THEN {
        'value': NULL::DOUBLE,
        'comparator': NULL::VARCHAR,
        'error': CASE WHEN regexp_matches(n.text, '^(<=|>=|<|>|=)?\s*[+-]?\d+,\d{1,2}$|^[+-]?\d+,\d{4,}$')
            THEN 'ambiguous decimal comma in value ' || quoted(n.text)
            ELSE 'non-numeric value ' || quoted(left(n.text, 40)) END
    }
    ELSE {
        'value': try_cast(replace(n.parts.num, ',', '') AS DOUBLE)
        * CASE WHEN n.parts.exp = '' THEN 1.0 ELSE pow(10.0, try_cast(n.parts.exp AS INTEGER)) END,
        'comparator': nullif(nullif(n.parts.cmp, ''), '='),
        'error': NULL::VARCHAR
    }
END;

-- Timestamps, step 1 of 4: the text and its ISO 8601 parts (date, optional time to the second or
-- below, optional offset)
CREATE OR REPLACE MACRO time_text(t) AS {
    'text': feed_text(t),
    'parts': regexp_extract(
        feed_text(t),
        '^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2})(?::?(\d{2})(?::?(\d{2})(?:[.,](\d{1,9}))?)?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$',
        ['y', 'mo', 'd', 'h', 'mi', 's', 'f', 'off']
    )
};

CREATE OR REPLACE MACRO iso_local(p) AS try_cast(
    p.y || '-' || p.mo || '-' || p.d || ' ' || coalesce(nullif(p.h, ''), '00') || ':'
    || coalesce(nullif(p.mi, ''), '00') || ':' || coalesce(nullif(p.s, ''), '00') || '.'
    || rpad(left(p.f, 6), 6, '0') AS TIMESTAMP
);

-- an offset (Z, +02, +0200, -04:00) in minutes; NULL when there is none
CREATE OR REPLACE MACRO iso_offset_minutes(off) AS CASE
    WHEN off = '' THEN NULL
    WHEN upper(off) = 'Z' THEN 0
    ELSE (CASE WHEN off[1] = '-' THEN -1 ELSE 1 END)
        * (try_cast(off[2:3] AS INTEGER) * 60 + CASE WHEN length(replace(off, ':', '')) = 5
            THEN try_cast(right(replace(off, ':', ''), 2) AS INTEGER) ELSE 0 END)
END;

-- Timestamps, step 2 of 4: the local date-time, the offset, and why the text is no moment
CREATE OR REPLACE MACRO time_read(r, allow_date_only) AS {
    'text': r.text,
    'local': iso_local(r.parts),
    'offset_minutes': iso_offset_minutes(r.parts.off),
    'error': CASE
        WHEN r.text IS NULL THEN 'missing timestamp'
        WHEN NOT allow_date_only AND regexp_matches(r.text, '^\d{4}-\d{2}-\d{2}$')
            THEN 'timestamp ' || quoted(r.text) || ' has no time of day'
        WHEN r.parts.y = '' OR iso_local(r.parts) IS NULL OR r.parts.h > '23'
            OR abs(coalesce(iso_offset_minutes(r.parts.off), 0)) >= 1440
            THEN CASE WHEN regexp_matches(r.text, '^\d{4}-\d{2}-\d{2}') AND try_cast(left(r.text, 10) AS DATE) IS NULL
                THEN 'impossible date ' || quoted(r.text)
                ELSE 'unparseable timestamp ' || quoted(left(r.text, 40)) END
    END
};

-- a naive local time in zone tz as UTC: its first occurrence when the hour repeats (the earlier
-- candidate that reads back as the same local time); NULL when it does not exist (clocks went
-- forward)
CREATE OR REPLACE MACRO local_to_utc(tz, local) AS CASE
    WHEN timezone(tz, timezone(tz, local - INTERVAL 1 HOUR) + INTERVAL 1 HOUR) = local
        THEN timezone(tz, local - INTERVAL 1 HOUR) + INTERVAL 1 HOUR
    WHEN timezone(tz, timezone(tz, local)) = local THEN timezone(tz, local)
END;

-- Timestamps, step 3 of 4: the UTC moment (offset given, or local in zone tz)
CREATE OR REPLACE MACRO time_utc(r, tz) AS {
    'text': r.text,
    'error': r.error,
    'tz': tz,
    'at': CASE
        WHEN r.error IS NOT NULL THEN NULL::TIMESTAMPTZ
        WHEN r.offset_minutes IS NOT NULL THEN timezone('UTC', r.local - r.offset_minutes * INTERVAL 1 MINUTE)
        ELSE local_to_utc(tz, r.local)
    END
};

-- an ISO 8601 moment written as Python's isoformat writes a UTC datetime (row keys, reasons)
CREATE OR REPLACE MACRO iso_utc(ts) AS
    strftime(timezone('UTC', ts), '%Y-%m-%dT%H:%M:%S')
    || CASE WHEN strftime(timezone('UTC', ts), '%f') = '000000' THEN ''
        ELSE '.' || strftime(timezone('UTC', ts), '%f') END
    || '+00:00';

-- Timestamps, step 4 of 4: STRUCT(at, error), a plausible UTC moment (no later than now +
-- tolerance, not before the earliest plausible year) or why not
CREATE OR REPLACE MACRO time_judged(u, now, tolerance, earliest_year) AS CASE
    WHEN u.error IS NOT NULL THEN { 'at': NULL::TIMESTAMPTZ, 'error': u.error }
    WHEN u.at IS NULL THEN {
        'at': NULL::TIMESTAMPTZ,
        'error': 'nonexistent local time ' || quoted(u.text) || ' in ' || u.tz || ' (clocks went forward)'
    }
    WHEN u.at > now + tolerance THEN { 'at': NULL::TIMESTAMPTZ, 'error': 'in the future (' || iso_utc(u.at) || ')' }
    WHEN year(timezone('UTC', u.at)) < earliest_year
        THEN { 'at': NULL::TIMESTAMPTZ, 'error': 'before ' || earliest_year || ' (' || iso_utc(u.at) || ')' }
    ELSE { 'at': u.at, 'error': NULL::VARCHAR }
END;

-- a number as Python's f"{value:.9g}" writes it, '' for none (row keys: 1250 and "1,250" agree)
CREATE OR REPLACE MACRO number_key(x) AS coalesce(printf('%.9g', x), '');

-- why a patient or infusion id cannot be used (NULL: it can): missing, or holding a control
-- character (a line break or NUL would forge lines in digests and pagers)
CREATE OR REPLACE MACRO id_error(id, what, required) AS CASE
    WHEN id IS NULL AND required THEN 'missing ' || what
    WHEN regexp_matches(id, '[\x00-\x1f\x7f]') THEN what || ' contains a control character'
END;
