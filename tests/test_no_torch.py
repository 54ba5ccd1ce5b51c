"""The analysis layer, the planner, and loading a study and listing its runs must never import torch."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _assert_no_torch(statements: str) -> None:
    code = ("import sys\n" + statements + "\n"
            "leaked = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "assert not leaked, leaked\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_analysis_modules_do_not_import_torch():
    # Every module of the analysis layer, found on disk, so that a new question folder is covered too.
    package = REPO / "effdata" / "analysis"
    modules = sorted(".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                     for p in package.rglob("*.py"))
    assert len(modules) > 30 and "effdata.analysis.pipeline" in modules
    _assert_no_torch("import effdata.analyze, " + ", ".join(modules))


def test_the_planner_does_not_import_torch():
    _assert_no_torch("import effdata.plan, effdata.analysis.plan.planner, effdata.analysis.plan.report, "
                     "effdata.analysis.plan.plots, effdata.analysis.plan.check\n"
                     "from effdata.plan import main\n"
                     "assert main(['paper', '--d-f', '1e8', '--no-figure']) == 0")


def test_loading_a_study_and_listing_its_runs_does_not_import_torch():
    _assert_no_torch("from effdata.study.study import load_study, study_runs\n"
                     "from effdata.study.cost import CostModel\n"
                     "from effdata.study.checks import check_plan\n"
                     "from effdata.study.store import Store\n"
                     "runs = study_runs(load_study('jobs/cpu-fixed-budget.toml'), ['text', 'text+code'])\n"
                     "assert len(runs) == 80 and sum(CostModel(3.0, 2048).gpu_seconds(r) for r in runs) > 0\n"
                     "assert len(study_runs(load_study('jobs/cpu-v2.toml'), ['text', 'text+code'])) == 180\n"
                     "assert len(study_runs(load_study('jobs/lr.toml'))) == 41\n"
                     "assert len(study_runs(load_study('jobs/shape.toml'), ['text'])) == 170\n")
