"""The analysis layer must never import torch, directly or indirectly."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_analysis_modules_do_not_import_torch():
    code = ("import sys\n"
            "import effdata.analyze, effdata.table, effdata.effective, effdata.fit, effdata.plots, effdata.report\n"
            "leaked = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "assert not leaked, leaked\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
