"""The results tables of README.md and docs/findings.md quote their reports: each row's β and 90 % interval, and
its β with each N left out (Huber; least squares), must be the linked report's fits.json, to the two decimals shown.
A left-out range's ends are the lowest and highest refit; a refit outside it must be named in the cell ("0.21–0.43,
−0.11 without w500k").

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
from typing import NamedTuple

import pytest

from test_docs import _cells

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("README.md", "docs/findings.md")
HEADER = re.compile(r"^\| study \| pretraining")
LINK = re.compile(r"\]\(([^)#\s]*analysis/[^)#\s]+)\)")
BETA = re.compile(r"^(-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\]$")
RANGE = re.compile(r"^(-?[\d.]+)–(-?[\d.]+)$")
NUMBER = re.compile(r"-?\d+\.\d+")
PRETRAIN = {"text": "text", "text + code": "text+code", "50% text + 50% code": "text+code"}


class Row(NamedTuple):
    number: int            # the line in its page
    folder: Path | None    # the report it quotes (None: the paper's)
    pretrain: str
    beta: str              # "0.47 [0.37, 0.58]", unicode minus read as "-"
    left_out: str          # "0.41–0.49; 0.47–0.53", the same


def table_rows(page: Path) -> list[Row]:
    """Each row of the page's results tables."""
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
        study, pretrain, beta, left_out = _cells(line.replace("−", "-"))[:4]
        link = LINK.search(study)
        if link:
            target = Path(os.path.normpath(page.parent / link.group(1)))
            folder = target.parent if target.suffix == ".md" else target
        elif study.startswith("paper"):
            folder = None
        rows.append(Row(number, folder, pretrain, beta.replace("**", ""), left_out.replace("**", "")))
    return rows


def left_out_problems(cell: str, law: dict) -> list[str]:
    """The cell's "a–b; c–d" against the audit's refits without each N, by each estimator (Huber, then least
    squares); a part that is not a range (cpu-v2's text row: "−0.07 without n500k") is not checked."""
    named = [float(x) for x in NUMBER.findall(cell)]
    problems = []
    for part, key, estimator in zip(cell.split(";"), ("estimates", "other"), law["estimators"]):
        refits = [x[key]["beta"] for x in law["left_out"] if x["group"] == "N"]
        ends = RANGE.match(part.split(",")[0].strip())
        if not refits or not ends:
            continue
        lo, hi = (float(v) for v in ends.groups())
        inside = [b for b in refits if lo - 0.006 <= b <= hi + 0.006]
        unnamed = [b for b in refits if b not in inside and not any(_rounds_to(v, b) for v in named)]
        if unnamed or not inside or not _rounds_to(lo, min(inside)) or not _rounds_to(hi, max(inside)):
            problems.append(f"{estimator} {lo:.2f}–{hi:.2f} against refits "
                            + ", ".join(f"{b:.3f}" for b in sorted(refits)))
    return problems


def row_problems(page: Path) -> list[str]:
    """Each row whose β or interval is not its report's, or that cannot be read."""
    problems = []
    for number, folder, pretrain, beta, left_out in table_rows(page):
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
        fitted = json.loads(fits.read_text())
        law = fitted["transfer"][PRETRAIN[pretrain]]
        measured = [law["beta"], *law["intervals"]["beta"]]
        if not all(_rounds_to(float(s), m) for s, m in zip(shown.groups(), measured)):
            problems.append(f"{where}: β {beta} against the report's "
                            f"{measured[0]:.3f} [{measured[1]:.3f}, {measured[2]:.3f}]")
        audit = next(a for a in fitted["audit"]["laws"] if a["law"] == f"transfer law '{PRETRAIN[pretrain]}'")
        problems += [f"{where}: each N left out, {p}" for p in left_out_problems(left_out, audit)]
    return problems


def _rounds_to(shown: float, measured: float) -> bool:
    """Two decimals of the value, or of the report's three significant figures (0.4349 shows as 0.435 there, and
    0.44 here)."""
    return any(abs(shown - m) <= 0.005 + 1e-9 for m in (measured, float(f"{measured:.3g}")))


@pytest.mark.parametrize("page", PAGES)
def test_each_results_row_quotes_its_report(page):
    rows = table_rows(ROOT / page)
    assert sum(row.folder is not None for row in rows) >= 10, "the results table was not found"
    assert row_problems(ROOT / page) == []


def test_a_number_that_drifted_from_its_report_is_found(tmp_path):
    """The check can fail: in a copy of the README, the first row's β off by 0.02 is reported, and so is a row
    that links a report other than the one its numbers come from."""
    (tmp_path / "analysis").symlink_to(ROOT / "analysis")
    text = (ROOT / "README.md").read_text()
    lines = text.splitlines()
    first = next(row for row in table_rows(ROOT / "README.md") if row.folder is not None)
    line = lines[first.number - 1]
    value = BETA.match(first.beta).group(1)
    page = tmp_path / "README.md"
    page.write_text(text.replace(line, line.replace(value, f"{float(value) + 0.02:.2f}", 1)))
    assert [p.split(" ")[0] for p in row_problems(page)] == [f"README.md:{first.number}"]
    linked = next(row for row in table_rows(ROOT / "README.md")
                  if row.folder is not None and LINK.search(lines[row.number - 1]))
    line = lines[linked.number - 1]
    page.write_text(text.replace(line, LINK.sub("](analysis/cpu-v2/REPORT.md)", line, count=1)))
    assert any(p.startswith(f"README.md:{linked.number} (cpu-v2)") for p in row_problems(page))


def test_a_left_out_range_that_misses_a_refit_is_found(tmp_path):
    """The check can fail: in a copy of the README, the first row's Huber range raised by 0.05 at its low end
    (so that the lowest refit falls outside it, unnamed) is reported. (A refit named outside its range passes: the
    README's v4 text row, "0.21–0.43, −0.11 without w500k".)"""
    (tmp_path / "analysis").symlink_to(ROOT / "analysis")
    text = (ROOT / "README.md").read_text()
    first = next(row for row in table_rows(ROOT / "README.md") if row.folder is not None)
    line = text.splitlines()[first.number - 1]
    cell = _cells(line)[3]
    low = RANGE.match(first.left_out.split(";")[0].strip()).group(1)
    raised = f"{float(low) + 0.05:.2f}"
    page = tmp_path / "README.md"
    page.write_text(text.replace(line, line.replace(cell, cell.replace(low, raised, 1))))
    problems = row_problems(page)
    assert len(problems) == 1 and "each N left out, Huber" in problems[0]
