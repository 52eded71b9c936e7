"""The explanation as one self-contained HTML page (no script, no external file); every text
from the data is escaped."""

from __future__ import annotations

from html import escape

from cartwatch.explain import words as w
from cartwatch.explain.render_text import heading

STYLE = ("body{font-family:sans-serif;max-width:60em;margin:1em auto}h2{margin-top:1.5em}"
         "li{margin:.15em 0}.verdict{font-weight:bold}")


def items(lines: list[str]) -> list[str]:
    """Escaped list items; an indented line continues the item before it (a ferritin result's
    signal and timing under its value)."""
    out: list[str] = []
    for line in lines:
        if line.startswith(" ") and out:
            out[-1] += "<br>" + escape(line.strip())
        else:
            out.append(escape(line.strip()))
    return out


def set_section(s: dict) -> str:
    parts = [f"<h2>{escape(s['label'])}: <span class=\"verdict\">{escape(w.status_words(s['verdict']))}</span></h2>",
             "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in s["summary"]) + "</ul>"]
    for section in s["sections"]:
        parts.append(f"<h3>{escape(section['title'])}</h3><ul>"
                     + "".join(f"<li>{item}</li>" for item in items(section["lines"])) + "</ul>")
    if s.get("latest_day"):
        d = s["latest_day"]
        parts.append(f"<p>Latest day {escape(w.day(d['day']))}: {escape(w.status_words(d['status']))}</p>")
    return "\n".join(parts)


def render_html(doc: dict) -> str:
    head = heading(doc)
    body = [f"<h1>{escape(head[0])}</h1>"] + [f"<p>{escape(line)}</p>" for line in head[1:]]
    body += [set_section(s) for s in doc["criteria_sets"]]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>cartwatch explain {escape(doc['patient_id'])}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
