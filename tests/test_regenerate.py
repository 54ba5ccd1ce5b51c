"""Every committed report regenerates identically from the command it names (issue 24 item 4).

benchmarks/regenerate_reports.py finds each analysis/**/REPORT.md's `python -m effdata.analyze … --out <its
folder>`, runs it into a temporary folder and compares what it writes with the committed files (see its
docstring for how figures are compared). When this fails, either the code changed a number (regenerate the
reports with `python benchmarks/regenerate_reports.py` and say why in the commit) or a report was edited by hand.
One test per report. The whole set takes about 4–5 CPU-minutes (282 CPU-s in the suite of 6 December, 226 alone),
half the suite's, so it is its own command: `make check-reports` runs every report (CI runs it after `make test`), and
`make test` (`-m "not reports"`) keeps only `IN_SUITE`, a report of each kind that regenerates in about a second or
a few, so that a change that moves a number still fails the tests the day it is made.
"""

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from scripts import load_script



ROOT = Path(__file__).resolve().parent.parent


def _load():
    return load_script("regenerate_reports")


def test_every_committed_report_names_its_command():
    jobs, problems = _load().find_jobs()
    assert not problems
    folders = {str(job.folder) for job in jobs}
    assert {"analysis/cpu", "analysis/cpu/plan", "analysis/cpu-v2", "analysis/cpu-fixed-budget", "analysis/quick", "analysis/shape", "analysis/lr",
            "analysis/lr/batch", "analysis/lr/warmup", "analysis/cpu-v2/plan", "analysis/cpu-fixed-budget/plan",
            "analysis/cpu-fixed-tokens/30m/seed1"} <= folders   # three folders down: missed until 6 December
    committed = {str(p.parent.relative_to(ROOT)) for p in ROOT.glob("analysis/**/REPORT.md")}
    assert committed <= folders
    assert IN_SUITE <= folders   # a report the suite keeps that has moved would leave the suite none of its kind


JOBS = _load().find_jobs()[0]


def _scratch_key(job) -> str | None:
    """The content of a report's from-scratch runs (what its from-scratch laws are fitted on), or None."""
    tables = [a for a in job.args if a.endswith(".csv")]
    if job.module != "effdata.analyze" or not tables:
        return None
    rows = pd.read_csv(ROOT / tables[0])
    scratch = rows[rows["mode"] == "scratch"] if "mode" in rows else rows
    columns = [c for c in ("n_params", "data_chars", "data_tokens", "loss", "seed") if c in scratch]
    ordered = scratch[columns].sort_values(columns).reset_index(drop=True)
    return hashlib.sha256(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes()).hexdigest()[:12]


# What `make test` regenerates (CPU-seconds in the suite of 6 December): a transfer analysis with the audit
# (analysis/shape 4.3, its from-scratch laws and transfer fits; analysis/cpu-w200k-tokens 0.4, a table without
# from-scratch laws), a sweep and a plan (each about a second); `make check-reports` regenerates them all.
IN_SUITE = {"analysis/shape", "analysis/cpu-w200k-tokens", "analysis/lr", "analysis/cpu/plan"}


def _marks(job, key: str | None, shared: set) -> list:
    """`reports` unless the suite keeps it; an xdist group for reports whose from-scratch runs are the same, so that
    they run in one worker, one after another: the second reads the from-scratch laws and their audit back
    (effdata/analysis/core/memo.py) instead of fitting them again."""
    marks = [] if str(job.folder) in IN_SUITE else [pytest.mark.reports]
    return marks + ([pytest.mark.xdist_group(f"scratch-{key}")] if key in shared else [])


def _params():
    keys = {job: _scratch_key(job) for job in JOBS}
    shared = {k for k in keys.values() if k is not None and list(keys.values()).count(k) > 1}
    return [pytest.param(job, id=str(job.folder), marks=_marks(job, keys[job], shared)) for job in JOBS]


@pytest.mark.slow
@pytest.mark.parametrize("job", _params())
def test_every_committed_report_regenerates_identically(job, tmp_path):
    """One test per report, so that the workers share them (one test of all took 2 minutes on one worker); each in
    this process, which has the analysis imported already (a subprocess spends 1.6 s importing it); reports that
    share their from-scratch runs in one worker (`_params`)."""
    problems = _load().check_job(job, tmp_path / "out", in_process=True)
    assert not problems, "\n".join(problems)
