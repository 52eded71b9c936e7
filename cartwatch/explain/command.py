"""The `cartwatch explain` sub-command: its options and what it runs (registered by cartwatch/cli.py
in one line, so the command line stays a table of contents)."""

from __future__ import annotations

import sys
from pathlib import Path

from cartwatch.explain.render import FORMATS


def add_explain(sub, common, as_of_option) -> None:
    p = sub.add_parser("explain", help="why (or why not) a patient is flagged, criteria set by criteria set")
    common(p)
    as_of_option(p, "explain what the nightly said at this moment (evaluates first unless the store holds it)")
    p.add_argument("patient", help="the patient id, as in the feeds")
    p.add_argument("--infusion", help="the infusion id (default: the patient's latest infusion)")
    p.add_argument("--format", choices=FORMATS, default="text")
    p.add_argument("--out", help="file to write (default: standard output)")
    p.set_defaults(run=cmd_explain)


def cmd_explain(args) -> int:
    from cartwatch import cli, preflight

    settings = cli.settings_from_args(args)
    as_of = cli.parse_as_of(args.as_of, settings.site_tz)
    if args.out:
        preflight.output_file(Path(args.out), "--out")
    rules = preflight.rules(settings.rules_path)
    with cli.database_lock(settings, "explain"):
        import duckdb

        from cartwatch.explain import ExplainError, explain, render

        evaluated_at = evaluation_needed(settings, as_of, args.as_loaded)
        with cli.reading_store(settings, rules, evaluated_at, args.as_loaded) as con:
            as_of = evaluated_at or stored_evaluation(con, rules)
            try:
                doc = explain(con, rules, args.patient, args.infusion, as_of)
            except ExplainError as exc:         # ids masked in the one line too, when output is masked
                raise cli.as_input(ValueError(exc.masked() if settings.mask_ids else str(exc))) from None
            except duckdb.CatalogException:     # tables or macros of an older cartwatch's evaluation
                raise cli.InputError("stored evaluation", "made before `cartwatch explain` existed: run "
                                     "`cartwatch nightly --full`, or pass --as-of to evaluate now") from None
    text = render(doc, args.format, mask_ids=settings.mask_ids)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"explanation as of {doc['as_of']}: {len(doc['criteria_sets'])} criteria sets -> {args.out}"
              + (" (ids masked)" if settings.mask_ids else ""))   # as export and report say it
    else:
        sys.stdout.write(text)
    return cli.EXIT_OK


def evaluation_needed(settings, as_of, as_loaded: bool):
    """The moment to evaluate in a scratch database (cartwatch/scratch.py), or None to read the
    store as it is: without --as-of, or when the store already holds the evaluation of exactly
    that moment."""
    from cartwatch.store import open_store
    from cartwatch.streams import StreamError, last_evaluation

    if as_of is None:
        return None
    con = open_store(settings.db_path, create=False)
    try:
        return None if last_evaluation(con) == (as_of, as_loaded) else as_of
    except StreamError:
        return as_of
    finally:
        con.close()


def stored_evaluation(con, rules):
    """The moment of the store's evaluation, checked against the rules file given."""
    from cartwatch import cli
    from cartwatch.streams import last_evaluation

    moment, _ = last_evaluation(con)
    cli._check_rules_of_tables(con, rules)
    return moment
