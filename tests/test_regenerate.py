"""Every committed report regenerates identically from the command it names (issue 24 item 4).

benchmarks/regenerate_reports.py finds each analysis/**/REPORT.md's `python -m effdata.analyze … --out <its
folder>`, runs it into a temporary folder and compares what it writes with the committed files (see its
docstring for how figures are compared). When this fails, either the code changed a number (regenerate the
reports with `python benchmarks/regenerate_reports.py` and say why in the commit) or a report was edited by hand.
About 2 minutes of one core in all, one test per report.
"""

import pytest

from scripts import load_script



def _load():
    return load_script("regenerate_reports")


def test_every_committed_report_names_its_command():
    jobs, problems = _load().find_jobs()
    assert not problems
    folders = {str(job.folder) for job in jobs}
    assert {"analysis/cpu", "analysis/cpu/plan", "analysis/cpu-v2", "analysis/cpu-fixed-budget", "analysis/quick", "analysis/shape", "analysis/lr",
            "analysis/lr/batch", "analysis/lr/warmup", "analysis/cpu-v2/plan", "analysis/cpu-fixed-budget/plan"} <= folders


JOBS = _load().find_jobs()[0]


@pytest.mark.slow
@pytest.mark.parametrize("job", JOBS, ids=[str(job.folder) for job in JOBS])
def test_every_committed_report_regenerates_identically(job, tmp_path):
    """One test per report, so that the workers share them (one test of all took 2 minutes on one worker); each in
    this process, which has the analysis imported already (a subprocess spends 1.6 s importing it)."""
    problems = _load().check_job(job, tmp_path / "out", in_process=True)
    assert not problems, "\n".join(problems)
