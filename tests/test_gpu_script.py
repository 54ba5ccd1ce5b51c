"""benchmarks/gpu_run.sh on CPU in its tiny configuration (GPU_TINY=1), so that the GPU script cannot rot
between the occasions a GPU is at hand: pack what travels from a home the test builds, take the corpora's
sources away and make `datasets` and `submitit` unimportable (as on the H200), then unpack into a fresh
home, bench, run the study and check what comes back in $OUT; and a script stopped mid-study still returns
the runs that finished."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import write_tiny_corpora
from effdata import gpu
from effdata.data.corpora import PINNED_KEYS, CorpusError, corpus_key
from studyfiles import write_study

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_run.sh"
# What the H200 lacks, made unimportable in every process the script starts (sitecustomize runs at each
# interpreter's start): a module that is None in sys.modules raises ImportError and find_spec says absent.
BLOCKED = "import sys\nfor _name in ('datasets', 'submitit'):\n    sys.modules[_name] = None\n"
SIZES = ["l1d16h2c32", "l2d16h2c32"]


@pytest.fixture(scope="module")
def carried(tmp_path_factory):
    """A tiny study, its carried home (packed from a home built here), and the environment of a run
    without the corpora's sources, datasets or submitit."""
    root = tmp_path_factory.mktemp("gpu")
    corpora = write_tiny_corpora(root / "sources", n_docs=60)
    # 50 characters are fewer tokens than one window of 33: that run fails, and the study goes on.
    study = write_study(root / "tiny.toml", corpora, name="gpu-tiny", sizes=SIZES, device="cuda",
                        scratch={"data_chars": [50, 3000, 10000]}, finetune={"data_chars": [3000]},
                        pretrain={"token_budget": 4000},
                        train={"batch_size": 4, "n_ctx": 32, "min_steps": 10, "max_steps": 20, "evals_per_run": 2,
                               "eval_tokens": 1024, "test_tokens": 1024})
    assert gpu.main(["pack", "--study", str(study), "--home", str(root / "built"), "--carry", str(root / "carry")]) == 0
    shutil.rmtree(root / "sources")  # what was built from them must now come from the carried archive alone
    (root / "block").mkdir()
    (root / "block" / "sitecustomize.py").write_text(BLOCKED)
    env = {**os.environ, "GPU_TINY": "1", "GPU_STUDY": str(study), "GPU_CARRY": str(root / "carry"),
           "GPU_WORKERS": "2", "GPU_BUDGET_S": "400", "GPU_DRAIN_S": "100", "GPU_BENCH_S": "150",
           "GPU_BENCH_SIZES": SIZES[0], "PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join([str(root / "block"), str(REPO)])}
    env.pop("EFFDATA_HOME", None)
    return root, env


def _members(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return tar.getnames()


def test_a_packed_home_answers_corpus_keys_from_its_pins(tmp_path):
    name = f"files:{tmp_path}/nowhere/*.txt"
    with pytest.raises(CorpusError):
        corpus_key(name, tmp_path)  # no sources, no pin
    (tmp_path / PINNED_KEYS).write_text(json.dumps({name: "abc"}))
    assert corpus_key(name, tmp_path) == "abc"
    (tmp_path / PINNED_KEYS).write_text("[1]")
    with pytest.raises(CorpusError, match="must map corpus names to keys"):
        corpus_key(name, tmp_path)


def test_the_gpu_path_imports_without_datasets_or_submitit():
    """What the H200 runs, with the two packages it lacks unimportable: the commands, a worker's run, the
    Trainer baseline (transformers asks whether datasets is there), the quietening of libraries."""
    code = (BLOCKED + "import effdata.gpu, effdata.bench, effdata.run, effdata.study.runner, effdata.training.train\n"
            "from transformers import Trainer\n"
            "from effdata.study.runner import quiet_libraries\n"
            "quiet_libraries()\n"
            "import transformers\n"
            "assert transformers.logging.get_verbosity() == transformers.logging.ERROR\n"
            "assert '--executor' in effdata.run.build_parser().format_help()\n"  # submitit only when SLURM is used
            "assert sys.modules['datasets'] is None and sys.modules['submitit'] is None\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    blocked = subprocess.run([sys.executable, "-c", BLOCKED + "import datasets"], capture_output=True, text=True)
    assert "ModuleNotFoundError" in blocked.stderr  # the block itself works


def test_a_wrong_or_too_large_carry_is_one_line_and_exit_2(carried, tmp_path, capsys):
    root, _ = carried
    bad = tmp_path / "bad"
    shutil.copytree(root / "carry", bad)
    with open(bad / gpu.ARCHIVE, "ab") as f:
        f.write(b"x")
    assert gpu.main(["unpack", "--carry", str(bad), "--home", str(tmp_path / "bad-home")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("effdata.gpu: ") and "not the archive" in err[0], err
    assert not (tmp_path / "bad-home" / "tokens").exists()
    # An unpacked home packs again without the sources (its keys are pinned), and the size limit holds.
    assert gpu.main(["unpack", "--carry", str(root / "carry"), "--home", str(tmp_path / "home")]) == 0
    capsys.readouterr()
    again = ["pack", "--study", str(root / "tiny.toml"), "--home", str(tmp_path / "home"),
             "--carry", str(tmp_path / "c")]
    assert gpu.main(again + ["--max-mib", "0.001"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "MiB, more than the 0.001 MiB" in err[0] and not (tmp_path / "c" / gpu.ARCHIVE).exists()
    assert gpu.main(again) == 0
    assert gpu.read_manifest(tmp_path / "c").pinned == gpu.read_manifest(root / "carry").pinned


@pytest.mark.slow
def test_the_tiny_gpu_run_returns_bench_records_and_table(carried, tmp_path):
    root, env = carried
    out, work = tmp_path / "out", tmp_path / "work"
    done = subprocess.run(["bash", str(SCRIPT)], env={**env, "OUT": str(out), "GPU_WORK": str(work)},
                          capture_output=True, text=True, timeout=300)
    log = (out / "log.txt").read_text()
    assert done.returncode == 1, log  # the 50-character runs failed, so the study's exit is 1; the rest is there
    files = sorted(p.name for p in out.iterdir())
    assert files == ["bench.json", "bench.md", "env.txt", "log.txt", "records.tar.gz", "results.csv"], files
    assert all(0 < (out / f).stat().st_size <= gpu.MAX_FILE_BYTES for f in files)
    assert "unpack: exit 0" in log and "bench: exit 0" in log and "study: exit 1" in log
    bench = json.loads((out / "bench.json").read_text())
    assert [r["size"] for r in bench["rows"]] == [SIZES[0]] and bench["rows"][0]["trainer_tokens_per_s"] > 0
    assert [(r["size"], r["processes"]) for r in bench["concurrent"]] == [(SIZES[0], 1), (SIZES[0], 2)]
    assert all(len(r["per_process_tokens_per_s"]) == r["processes"] and r["tokens_per_s"] > 0 for r in bench["concurrent"])
    assert f"| {SIZES[0]} |" in (out / "bench.md").read_text()
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 10 and set(table["size"]) == set(SIZES)  # 2 sizes x (3 scratch, 1 pretrain, 1 fine-tune)
    failed = table[table["status"] == "failed"]
    assert len(failed) == 2 and (failed["mode"] == "scratch").all() and failed["run_id"].str.contains("-5e1c-").all()
    assert (table.loc[table["status"] == "ok", "loss"] > 0).all() and (table["status"] == "ok").sum() == 8
    assert set(table.loc[table["status"] == "ok", "device"]) == {"cpu"}
    records = [m for m in _members(out / "records.tar.gz") if m.endswith("/record.json")]
    assert len(records) == 10 and "study.json" in _members(out / "records.tar.gz")
    assert not (work / "home" / "corpora").exists()  # nothing was rebuilt from sources


@pytest.mark.slow
def test_a_stopped_run_still_returns_what_finished(carried, tmp_path):
    root, env = carried
    out, work = tmp_path / "out", tmp_path / "work"
    proc = subprocess.Popen(["bash", str(SCRIPT)], env={**env, "OUT": str(out), "GPU_WORK": str(work),
                                                        "GPU_BENCH_SIZES": "none", "GPU_WORKERS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 200
        while not list((work / "study" / "runs").glob("*/record.json")):
            assert proc.poll() is None and time.monotonic() < deadline, "no run finished"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (out / "log.txt").read_text()
    assert "stopped by a signal" in log
    finished = [m for m in _members(out / "records.tar.gz") if m.endswith("/record.json")]
    table = pd.read_csv(out / "results.csv")
    assert 1 <= len(finished) == len(table) < 10, (finished, log)
