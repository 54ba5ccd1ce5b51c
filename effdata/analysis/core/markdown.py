"""Markdown pieces every report section shares: a value with its interval, a table."""
from __future__ import annotations

from effdata.fmt import sig


def fmt_interval(fit, name: str, digits: int = 3) -> str:
    value = getattr(fit, name)
    interval = fit.intervals.get(name)
    if interval is None:
        return f"{sig(value, digits)} (no interval)"
    return f"{sig(value, digits)} [{sig(interval[0], digits)}, {sig(interval[1], digits)}]"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)
