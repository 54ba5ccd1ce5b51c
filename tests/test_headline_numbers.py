"""The results tables of README.md and docs/findings.md quote their reports: each row's β and 90 % interval must be
the linked report's fits.json, to the two decimals shown.

A row names its report by its first link into `analysis/` (to the folder's REPORT.md or NOTES.md); a row without one
continues the row above (a study's text row under its text + code row), so a row quoting another folder must link
it. Rows that quote no report of ours (the paper's) name no folder and are skipped. A careful reader found README
numbers that had drifted from the reports they cite; regenerating a report now fails here until the page is
re-read.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("README.md", "docs/findings.md")
HEADER = re.compile(r"^\| study \| pretraining")
LINK = re.compile(r"\]\(([^)#\s]*analysis/[^)#\s]+)\)")
BETA = re.compile(r"^\**(-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\]\**$")
PRETRAIN = {"text": "text", "text + code": "text+code", "50% text + 50% code": "text+code"}


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def table_rows(page: Path) -> list[tuple[int, Path | None, str, str]]:
    """(line number, report folder or None, pretraining, β cell) of each row of the page's results tables."""
    rows, folder, inside = [], None, False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if HEADER.match(line):
            inside, folder = True, None
            continue
        if not inside or line.startswith("|---"):
            continue
        if not line.startswith("|"):
            inside = False
            continue
        study, pretrain, beta = _cells(line)[:3]
        link = LINK.search(study)
        if link:
            target = Path(os.path.normpath(page.parent / link.group(1)))
            folder = target.parent if target.suffix == ".md" else target
        elif study.startswith("paper"):
            folder = None
        rows.append((number, folder, pretrain, beta))
    return rows


def row_problems(page: Path) -> list[str]:
    """Each row whose β or interval is not its report's, or that cannot be read."""
    problems = []
    for number, folder, pretrain, beta in table_rows(page):
        if folder is None:
            continue
        where, shown = f"{page.name}:{number} ({folder.name})", BETA.match(beta)
        if pretrain not in PRETRAIN or not shown:
            problems.append(f"{where}: cannot read pretraining {pretrain!r} or β {beta!r}")
            continue
        fits = folder / "fits.json"
        if not fits.exists():
            problems.append(f"{where}: no fits.json")
            continue
        law = json.loads(fits.read_text())["transfer"][PRETRAIN[pretrain]]
        measured = [law["beta"], *law["intervals"]["beta"]]
        if not all(_rounds_to(float(s), m) for s, m in zip(shown.groups(), measured)):
            problems.append(f"{where}: β {beta} against the report's "
                            f"{measured[0]:.3f} [{measured[1]:.3f}, {measured[2]:.3f}]")
    return problems


def _rounds_to(shown: float, measured: float) -> bool:
    """Two decimals of the value, or of the report's three significant figures (0.4349 shows as 0.435 there, and
    0.44 here)."""
    return any(abs(shown - m) <= 0.005 + 1e-9 for m in (measured, float(f"{measured:.3g}")))


@pytest.mark.parametrize("page", PAGES)
def test_each_results_row_quotes_its_report(page):
    rows = table_rows(ROOT / page)
    assert sum(folder is not None for _, folder, _, _ in rows) >= 10, "the results table was not found"
    assert row_problems(ROOT / page) == []


def test_a_number_that_drifted_from_its_report_is_found(tmp_path):
    """The check can fail: in a copy of the README, the first row's β off by 0.02 is reported, and so is a row
    that links a report other than the one its numbers come from."""
    (tmp_path / "analysis").symlink_to(ROOT / "analysis")
    text = (ROOT / "README.md").read_text()
    lines = text.splitlines()
    first = next(row for row in table_rows(ROOT / "README.md") if row[1] is not None)
    line = lines[first[0] - 1]
    value = BETA.match(first[3]).group(1)
    page = tmp_path / "README.md"
    page.write_text(text.replace(line, line.replace(value, f"{float(value) + 0.02:.2f}", 1)))
    assert [p.split(" ")[0] for p in row_problems(page)] == [f"README.md:{first[0]}"]
    linked = next(row for row in table_rows(ROOT / "README.md") if row[1] is not None and LINK.search(lines[row[0] - 1]))
    line = lines[linked[0] - 1]
    page.write_text(text.replace(line, LINK.sub("](analysis/cpu-v2/REPORT.md)", line, count=1)))
    assert any(p.startswith(f"README.md:{linked[0]} (cpu-v2)") for p in row_problems(page))
