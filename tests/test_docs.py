"""The documentation: README.md is the front door (at most 250 lines) and docs/*.md the manual.

"Documented" means a reference-table row: a Markdown table row whose first cell names the key in backticks
(several names may share a row: "`beta1`, `beta2`"), in a table whose header's first cell says what the
table documents: `study key` (the study file's keys, `[table] key` for the keys of its tables), `setting`
(`TrainSettings`, a study's `[train]`), `column` (the results table, `COLUMN_DOCS`), `study` (the job files,
`jobs/<name>.toml`). Each must be documented exactly once across README.md and docs/*.md, and a study key
or setting row must not name one the code does not have (a stale row). Every relative link and image in
those pages must resolve to a file or folder of the repository, and a `#fragment` to a heading of its page.
"""
from __future__ import annotations

import copy
import dataclasses
import re
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from effdata.analysis.core.table import COLUMN_DOCS
from effdata.spec import TrainSettings
from effdata.study.study import STUDY_KEYS, StudyError, study_from_dict

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 250

# A minimal valid study; each of its tables is probed for the keys the loader allows.
MINIMAL = {"name": "docs", "sizes": ["n25k"], "scratch": {"data_chars": [1e4]}, "finetune": {"data_chars": [1e4]},
           "pretrain": {}, "extra_seeds": {"seeds": [1], "scratch_data_chars": [1e4]}}
TABLES = ("scratch", "finetune", "pretrain", "extra_seeds")


def pages(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def _prose_lines(text: str):
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.split("\n"), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            yield number, line


def reference_rows(root: Path = ROOT) -> dict[str, dict[str, list[str]]]:
    """For each kind of reference table (its header's first cell): name -> where each row naming it is."""
    found: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for page in pages(root):
        kind, previous = None, ""
        for number, line in _prose_lines(page.read_text()):
            if not line.startswith("|"):
                kind = None
            elif not previous.startswith("|"):           # a table's header
                kind = _cells(line)[0]
            elif kind is not None and not set(line) <= set("|-: "):
                for name in re.findall(r"`([^`]+)`", _cells(line)[0]):
                    found[kind][name].append(f"{page.relative_to(root)}:{number}")
            previous = line
    return found


def study_keys() -> set[str]:
    """Every key a study file may hold: STUDY_KEYS, and `[table] key` for each table's allowed keys (read from
    the loader's own refusal of an unknown key, so that this list cannot drift from the code)."""
    keys = set(STUDY_KEYS)
    for table in TABLES:
        raw = copy.deepcopy(MINIMAL)
        raw[table]["no_such_key"] = 1
        with pytest.raises(StudyError, match="allowed: ") as refused:
            study_from_dict(raw)
        allowed = str(refused.value).split("allowed: ", 1)[1].split(", ")
        keys |= {f"[{table}] {key}" for key in allowed}
    return keys


def expected() -> dict[str, set[str]]:
    return {"study key": study_keys(),
            "setting": {f.name for f in dataclasses.fields(TrainSettings)},
            "column": set(COLUMN_DOCS),
            "study": {f"jobs/{p.name}" for p in (ROOT / "jobs").glob("*.toml")}}


STRICT = ("study key", "setting")   # a row naming what the code does not have is stale; columns and studies may
                                    # document more than the list (the swept setting's column, a pair of jobs)


def documentation_problems(root: Path = ROOT) -> list[str]:
    found, problems = reference_rows(root), []
    for kind, names in expected().items():
        rows = found.get(kind, {})
        for name in sorted(names):
            where = rows.get(name, [])
            if len(where) != 1:
                problems.append(f"{kind} `{name}`: documented {len(where)} times, not once ({', '.join(where)})")
        if kind in STRICT:
            problems += [f"{kind} `{name}`: documented ({', '.join(where)}) but not in the code"
                         for name, where in sorted(rows.items()) if name not in names]
    return problems


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = defaultdict(int)
    out = set()
    for _, line in _prose_lines(page.read_text()):
        match = re.match(r"#{1,6} (.+)", line)
        if match:
            base = slug(match.group(1))
            out.add(base if not seen[base] else f"{base}-{seen[base]}")
            seen[base] += 1
    return out


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def link_problems(root: Path = ROOT) -> list[str]:
    problems = []
    for page in pages(root):
        for number, line in _prose_lines(page.read_text()):
            for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
                if re.match(r"[a-z]+:", target):       # http:, https:, mailto:
                    continue
                path, _, fragment = target.partition("#")
                resolved = (page.parent / path).resolve() if path else page
                where = f"{page.relative_to(root)}:{number}: {target}"
                if not resolved.exists():
                    problems.append(f"{where}: no such file")
                elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
                    problems.append(f"{where}: no heading #{fragment} in {resolved.name}")
    return problems


def test_every_key_setting_column_and_job_is_documented_exactly_once():
    assert documentation_problems() == []


def test_every_relative_link_resolves():
    assert link_problems() == []


def test_readme_is_the_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    linked = set(LINK.findall(text))
    missing = [p.name for p in pages()[1:] if f"docs/{p.name}" not in linked]
    assert missing == [], f"docs pages the README does not link: {missing}"
    design = set(LINK.findall((ROOT / "docs" / "DESIGN.md").read_text()))
    missing = [p.name for p in pages()[1:] if p.name != "DESIGN.md" and p.name not in design]
    assert missing == [], f"docs pages docs/DESIGN.md does not link: {missing}"


def test_the_checks_fail_on_a_planted_duplicate_a_missing_row_and_a_broken_link(tmp_path):
    """The same checks on a copy of the pages, with a setting documented twice, a column row removed, a stale
    study key, and a link and an anchor that do not resolve: each is reported."""
    for page in pages():
        target = tmp_path / page.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(page, target)
    for folder in ("analysis", "jobs", "benchmarks", "effdata", "tests"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    (tmp_path / "docs" / "notes").symlink_to(ROOT / "docs" / "notes")   # pages link issue notes
    assert documentation_problems(tmp_path) == [] and link_problems(tmp_path) == []

    training = tmp_path / "docs" / "training.md"
    text = training.read_text()
    row = next(line for line in text.split("\n") if line.startswith("| `batch_size` |"))
    training.write_text(text.replace(row, f"{row}\n| `batch_size` | 32 | planted again |\n"
                                          "| `no_such_setting` | 1 | planted, stale |", 1))
    analysis = tmp_path / "docs" / "analysis.md"
    text = analysis.read_text()
    row = next(line for line in text.split("\n") if line.startswith("| `loss` |"))
    analysis.write_text(text.replace(row + "\n", "", 1) + "\n[planted](missing.md) [planted](studies.md#no-such-heading)\n")

    problems = documentation_problems(tmp_path)
    assert any(p.startswith("setting `batch_size`: documented 2 times") for p in problems), problems
    assert any(p.startswith("setting `no_such_setting`: documented") for p in problems), problems
    assert any(p.startswith("column `loss`: documented 0 times") for p in problems), problems
    links = link_problems(tmp_path)
    assert any("missing.md: no such file" in p for p in links), links
    assert any("no heading #no-such-heading" in p for p in links), links


@pytest.mark.parametrize("heading, anchor", [
    ("Settings (`[train]`)", "settings-train"),
    ('The length search (`length_search = "branches"`)', "the-length-search-length_search--branches"),
    ("Where a run's time goes, and a study's", "where-a-runs-time-goes-and-a-studys"),
    ("6. The audit: what each answer rests on", "6-the-audit-what-each-answer-rests-on"),
])
def test_anchors_are_githubs(heading, anchor):
    assert slug(heading) == anchor


# A command that runs into the next on one line (`… w1m=text+code-lr2python benchmarks/dt_slope.py …`, in a NOTES
# file for a session before anyone noticed): a reader's copy-paste then runs neither.
JOINED = re.compile(r"[^\s;&|(`/\"'=]python3? (?:-m |benchmarks/)")


def joined_commands(text: str) -> list[str]:
    return [line for line in text.splitlines() if JOINED.search(line)]


def test_no_command_in_the_studies_notes_runs_into_the_next():
    found = {str(p.relative_to(ROOT)): joined_commands(p.read_text()) for p in sorted(ROOT.glob("analysis/**/*.md"))}
    assert {page: lines for page, lines in found.items() if lines} == {}
    assert joined_commands("--pick w1m=text+code-lr2python benchmarks/dt_slope.py x.csv") != []
    assert joined_commands("then `python -m effdata.analyze t.csv`; .venv/bin/python -m effdata.plan x") == []
