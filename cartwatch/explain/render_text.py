"""The explanation as text for a terminal: at most 100 columns, one block per criteria set."""

from __future__ import annotations

import textwrap
from datetime import datetime

from cartwatch.explain import words as w

WIDTH = 100


def heading(doc: dict) -> list[str]:
    tz = doc["site_tz"]
    at = lambda text: w.when(datetime.fromisoformat(text), tz) if text else "-"   # noqa: E731
    rules = doc["rules_version"] + ("" if doc["rules_released"] else " (not a released rules file)")
    lines = [f"{doc['patient_id']}, infusion {doc['infusion_id']} ({doc['product']}, infused {at(doc['infused_at'])})",
             f"as of {at(doc['as_of'])}; rules version {rules}"]
    others = [o["infusion_id"] for o in doc["other_infusions"]]
    if others:
        lines.append(f"other infusions of this patient: {', '.join(others)} (--infusion ID)")
    return lines


def set_block(s: dict) -> list[str]:
    lines = [f"{s['label']}: {w.status_words(s['verdict'])}"]
    lines += [f"  {line}" for line in s["summary"]]
    for section in s["sections"]:
        lines.append(f"  {section['title']}")
        lines += [f"    {line}" for line in section["lines"]]
    if s.get("latest_day"):
        d = s["latest_day"]
        lines.append(f"  latest day {w.day(d['day'])}: {w.status_words(d['status'])}")
    return lines


def wrapped(line: str) -> list[str]:
    """A long line wrapped at WIDTH, its continuation indented under its text."""
    if len(line) <= WIDTH:
        return [line]
    indent = " " * (len(line) - len(line.lstrip()) + 2)
    return textwrap.wrap(line, WIDTH, subsequent_indent=indent, break_on_hyphens=False)


def render_text(doc: dict) -> str:
    lines = heading(doc)
    for s in doc["criteria_sets"]:
        lines += [""] + set_block(s)
    return "\n".join(out for line in lines for out in wrapped(line)) + "\n"
