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
        from cartwatch.store import open_store

        con = open_store(settings.db_path, create=False)
        try:
            as_of = evaluation_at(con, rules, settings, as_of, args.as_loaded)
            try:
                doc = explain(con, rules, args.patient, args.infusion, as_of)
            except ExplainError as exc:         # ids masked in the one line too, when output is masked
                raise cli.as_input(ValueError(exc.masked() if settings.mask_ids else str(exc))) from None
            except duckdb.CatalogException:     # tables or macros of an older cartwatch's evaluation
                raise cli.InputError("stored evaluation", "made before `cartwatch explain` existed: run "
                                     "`cartwatch nightly --full`, or pass --as-of to evaluate now") from None
        finally:
            con.close()
    text = render(doc, args.format, mask_ids=settings.mask_ids)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"explanation as of {doc['as_of']}: {len(doc['criteria_sets'])} criteria sets -> {args.out}"
              + (" (ids masked)" if settings.mask_ids else ""))   # as export and report say it
    else:
        sys.stdout.write(text)
    return cli.EXIT_OK


def evaluation_at(con, rules, settings, as_of, as_loaded: bool):
    """The moment explained: the stored evaluation's, or `as_of` (evaluated first, as `export --as-of`
    does, unless the store already holds the evaluation of exactly that moment)."""
    from cartwatch import cli
    from cartwatch.streams import StreamError, last_evaluation

    try:
        stored = last_evaluation(con)
    except StreamError:
        if as_of is None:
            raise
        stored = None
    if as_of is None or stored == (as_of, as_loaded):
        cli._check_rules_of_tables(con, rules)
        return stored[0]
    from cartwatch.incremental import evaluate

    evaluate(con, rules, as_of=as_of, as_loaded=as_loaded, site_tz=settings.site_tz)
    return as_of
