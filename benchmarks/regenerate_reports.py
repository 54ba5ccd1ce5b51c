"""Regenerate every committed report from the command it names, or check that it would come out the same.

    python benchmarks/regenerate_reports.py                 # rewrite them in place, figures included
    python benchmarks/regenerate_reports.py --check         # write into a temporary folder and compare
    python benchmarks/regenerate_reports.py --check --only analysis/shape

Each `analysis/*/REPORT.md` (and `analysis/*/*/REPORT.md`, and a `PLAN.md` that names its command) says how it
was made: a `python -m effdata.analyze … --out <its folder>` (or `effdata.plan`) in backticks, written by the
NOTES file it includes. That command, run on the committed table, is the only way a report is meant to change;
a report edited by hand, or code that changed a number without the reports being regenerated, fails
`--check` (tests/test_regenerate.py runs it in CI).

What `--check` compares, byte for byte, with the committed files: every Markdown, JSON and CSV file the command
writes. Figures cost most of an analysis's time and PNG bytes differ between matplotlib builds, so the
transfer analyses run with `--no-figures`; their figure list is then compared separately (the report's
*Figures* section and fits.json's `figures` key are left out of the byte comparison, and the figures the
committed report links must be exactly the PNG files committed beside it). A sweep draws one figure, cheaply,
so it runs with its figure and is compared whole.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT_GLOBS = ("analysis/*/REPORT.md", "analysis/*/*/REPORT.md", "analysis/*/PLAN.md", "analysis/*/*/PLAN.md")
COMMAND = re.compile(r"`python -m (effdata\.(?:analyze|plan)) ([^`]+)`")
COMPARED = (".md", ".json", ".csv")
FIGURE_LINK = re.compile(r"\]\(([\w.-]+)\.png\)")


@dataclass(frozen=True)
class Job:
    report: Path          # the committed report, relative to the repository root
    module: str           # effdata.analyze or effdata.plan
    args: tuple[str, ...]

    @property
    def folder(self) -> Path:
        return self.report.parent

    @property
    def is_sweep(self) -> bool:
        # A sweep's analysis writes sweep.json, not fits.json (effdata/analysis/sweep).
        return (ROOT / self.folder / "sweep.json").exists()

    def argv(self, out: Path, figures: bool) -> list[str]:
        """The named command with its --out pointed at `out`; --no-figures added where figures are off."""
        args = list(self.args)
        args[args.index("--out") + 1] = str(out)
        if not figures and self.module == "effdata.analyze" and "--no-figures" not in args:
            args.append("--no-figures")
        return [sys.executable, "-m", self.module, *args]


def find_jobs(root: Path = ROOT) -> tuple[list[Job], list[str]]:
    """(jobs, problems): the command of each committed report whose --out is the report's own folder.
    A REPORT.md that names none is a problem; a PLAN.md that names none is left out (it is optional there)."""
    jobs, problems = [], []
    reports = sorted({p for pattern in REPORT_GLOBS for p in root.glob(pattern)})
    for path in reports:
        relative = path.relative_to(root)
        named = [Job(relative, module, tuple(shlex.split(args))) for module, args in COMMAND.findall(path.read_text())]
        own = [job for job in named if "--out" in job.args
               and Path(job.args[job.args.index("--out") + 1]) == relative.parent]
        if own:
            jobs.append(own[0])
        elif path.name == "REPORT.md":
            problems.append(f"{relative}: names no `python -m effdata.analyze … --out {relative.parent}`")
    # The planner reads the fits an analysis writes: analyses first.
    jobs.sort(key=lambda job: (job.module != "effdata.analyze", str(job.report)))
    return jobs, problems


def run(job: Job, out: Path, figures: bool, root: Path = ROOT, in_process: bool = False) -> None:
    """The job's command, as a subprocess (what a reader runs), or in this process (`in_process`: its module's
    `main` on the same arguments, from `root`): the test suite's way, which saves the 1.6 s of importing the
    analysis in every one of some 25 reports."""
    argv = job.argv(out, figures)
    if in_process:
        code, stderr = _run_here(job.module, argv[3:], root)
    else:
        result = subprocess.run(argv, cwd=root, capture_output=True, text=True, check=False)
        code, stderr = result.returncode, result.stderr
    if code != 0:
        raise RuntimeError(f"{job.report}: {shlex.join(argv[1:])} exited {code}:\n{stderr[-2000:]}")


def _run_here(module: str, args: list[str], root: Path) -> tuple[int, str]:
    """(exit code, stderr) of `python -m module args` run in this process from `root`."""
    stderr, before = io.StringIO(), os.getcwd()
    os.chdir(root)   # contextlib.chdir is Python 3.11+, and 3.10 is supported
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
            code = importlib.import_module(module).main(args) or 0
    except SystemExit as exc:   # argparse and the command lines exit with 2 on bad input
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(before)
    return code, stderr.getvalue()


def _without_figures(name: str, text: str) -> str:
    """A report without its *Figures* section, a fits.json without its `figures` key."""
    if name.endswith(".md"):
        return re.sub(r"\n## Figures\n.*?(?=\n## |\Z)", "\n", text, flags=re.DOTALL)
    if name == "fits.json":
        data = json.loads(text)
        data.pop("figures", None)
        return json.dumps(data, indent=1, ensure_ascii=False)
    return text


def _figure_problems(job: Job, root: Path) -> list[str]:
    """The committed report links exactly the PNG files committed beside it."""
    linked = set(FIGURE_LINK.findall((root / job.report).read_text()))
    committed = {p.stem for p in (root / job.folder).glob("*.png")}
    problems = [f"{job.report}: links {name}.png, which is not committed" for name in sorted(linked - committed)]
    problems += [f"{job.folder}/{name}.png is committed but the report does not show it"
                 for name in sorted(committed - linked)]
    return problems


def compare(job: Job, out: Path, figures: bool, root: Path = ROOT) -> list[str]:
    """Differences between what the command wrote into `out` and the committed files; [] when identical."""
    problems = [] if figures else _figure_problems(job, root)
    for written in sorted(p for p in out.iterdir() if p.suffix in COMPARED):
        committed = root / job.folder / written.name
        if not committed.exists():
            problems.append(f"{job.folder}/{written.name}: written by the command but not committed")
            continue
        # A file that names the command that wrote it (PLAN.md) names the temporary folder: read it as the
        # report's own folder, the only difference the temporary --out may make.
        new, old = written.read_text().replace(str(out), str(job.folder)), committed.read_text()
        if not figures:
            new, old = _without_figures(written.name, new), _without_figures(written.name, old)
        if new != old:
            problems.append(f"{job.folder}/{written.name}: differs from what `{job.module}` writes now "
                            f"(first difference at character {_first_difference(new, old)})")
    return problems


def _first_difference(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def check(only: list[str] | None = None, root: Path = ROOT) -> list[str]:
    """Every job run into a temporary folder and compared; the problems found ([] when all match)."""
    jobs, problems = find_jobs(root)
    with tempfile.TemporaryDirectory(prefix="effdata-reports-") as tmp:
        for index, job in enumerate(jobs):
            if only and not any(str(job.folder).startswith(o.rstrip("/")) for o in only):
                continue
            problems += check_job(job, Path(tmp) / str(index), root)
    return problems


def check_job(job: Job, out: Path, root: Path = ROOT, in_process: bool = False) -> list[str]:
    """One job run into `out` and compared with its committed folder: the problems found ([] when it matches).
    Figures are drawn and compared only where the report's numbers live in them (sweeps, plans)."""
    figures = job.is_sweep or job.module == "effdata.plan"
    run(job, out, figures, root, in_process)
    return compare(job, out, figures, root)


def regenerate(only: list[str] | None = None, root: Path = ROOT) -> None:
    """Each job run in place, figures included; the folder's old figures removed first, so that a figure the
    analysis no longer draws does not stay committed beside the report."""
    jobs, problems = find_jobs(root)
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    for job in jobs:
        if only and not any(str(job.folder).startswith(o.rstrip("/")) for o in only):
            continue
        for old in (root / job.folder).glob("*.png"):
            old.unlink()
            old.with_suffix(".svg").unlink(missing_ok=True)
        print(f"{job.report}: {shlex.join(job.argv(job.folder, figures=True)[1:])}", flush=True)
        run(job, job.folder, figures=True, root=root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files; change nothing")
    parser.add_argument("--only", nargs="+", help="only the reports under these folders (e.g. analysis/shape)")
    args = parser.parse_args(argv)
    if not args.check:
        regenerate(args.only)
        return 0
    problems = check(args.only)
    for problem in problems:
        print(problem)
    print("all committed reports regenerate identically" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
