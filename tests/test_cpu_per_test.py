"""benchmarks/cpu_per_test.py: a line per test with its CPU seconds, a busy test's larger than an idle one's."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_each_test_gets_a_line_and_busy_work_counts(tmp_path):
    (tmp_path / "test_tiny.py").write_text(
        "import time\n"
        "def test_busy():\n    sum(i * i for i in range(3_000_000))\n"
        "def test_idle():\n    time.sleep(0.3)\n")
    out = tmp_path / "cpu.tsv"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "benchmarks"), "CPU_PER_TEST": str(out)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "cpu_per_test", "-p", "no:cacheprovider",
                           str(tmp_path / "test_tiny.py")], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    seconds = {line.split("\t")[1].split("::")[1]: float(line.split("\t")[0]) for line in out.read_text().splitlines()}
    assert set(seconds) == {"test_busy", "test_idle"}
    assert seconds["test_busy"] > 0.05 and seconds["test_idle"] < seconds["test_busy"] / 2
