"""The study runner end to end on tiny corpora: smoke study, resume after kill -9, corrupt records,
--dry-run, and bad input refused before any training."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from effdata.run import main
from effdata.study.store import Store
from studyfiles import write_study

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def cli(study: Path, out: Path, home: Path, *extra: str) -> list[str]:
    return ["--study", str(study), "--out", str(out), "--home", str(home), *extra]


def preparing(line: str) -> bool:
    """A line of run.py's data preparation (what it builds, shown while it works)."""
    return line.startswith(("preparing data ", "  ", "data ready ("))


def record_times(out: Path) -> dict[str, str]:
    """Each finished run's whole record: a run done again would differ (its time and wall time)."""
    return {r["run_id"]: json.dumps(r, sort_keys=True) for r in Store(out).records() if r["status"] == "ok"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, tiny_corpora):
    """One smoke study run shared by the tests that only read its results."""
    tmp = tmp_path_factory.mktemp("smoke")
    study = write_study(tmp / "smoke.toml", tiny_corpora)
    out, home = tmp / "out", tmp / "home"
    code = main(cli(study, out, home, "--workers", "2"))
    return {"code": code, "study": study, "out": out, "home": home, "tmp": tmp}


def test_smoke_study_runs_end_to_end(smoke):
    assert smoke["code"] == 0
    store = Store(smoke["out"])
    records = list(store.records())
    modes = sorted(r["identity"]["mode"] for r in records)
    assert modes.count("scratch") == 6 and modes.count("pretrain") == 2 and modes.count("finetune") == 4
    assert all(r["status"] == "ok" for r in records)
    table = pd.read_csv(store.results_path)
    for column in ("pretrain", "n_params", "data_chars", "data_tokens", "loss", "flops", "pretrain_flops"):
        assert column in table.columns, column
    finetunes = table[table["mode"] == "finetune"]
    assert (finetunes["pretrain_flops"] > 0).all()
    assert table["tokens_per_param"].to_numpy() == pytest.approx((table["tokens_seen"] / table["n_params"]).to_numpy())
    pretrains = table[table["mode"] == "pretrain"].set_index("size")["tokens_per_param"]
    assert finetunes["pretrain_tokens_per_param"].to_numpy() == pytest.approx(pretrains[finetunes["size"]].to_numpy())
    assert set(table.loc[table["mode"] == "scratch", "pretrain"]) == {"none"}
    for run_id in table.loc[table["mode"] == "pretrain", "run_id"]:
        assert (store.checkpoint_dir(run_id) / "config.json").exists()
    assert (smoke["out"] / "analysis" / "REPORT.md").exists()


def test_second_invocation_skips_every_finished_run(smoke):
    before = record_times(smoke["out"])
    assert main(cli(smoke["study"], smoke["out"], smoke["home"], "--no-analysis")) == 0
    assert record_times(smoke["out"]) == before


def test_corrupt_record_is_detected_and_its_run_done_again(smoke):
    store = Store(smoke["out"])
    records = sorted(r["run_id"] for r in store.records() if r["identity"]["mode"] == "scratch")
    victim = store.run_dir(records[0]) / "record.json"
    victim.write_text(victim.read_text()[: len(victim.read_text()) // 2])  # half-written
    before = {k: v for k, v in record_times(smoke["out"]).items() if k != records[0]}
    assert main(cli(smoke["study"], smoke["out"], smoke["home"], "--no-analysis")) == 0
    after = record_times(smoke["out"])
    assert records[0] in after
    assert {k: after[k] for k in before} == before


def test_probe_reads_every_pretrained_checkpoint_of_the_study(smoke, tmp_path):
    """python -m effdata.probe on the smoke study: a row per pretraining run's checkpoint, with what its record
    says of it, both probes finite, and the figure."""
    from effdata.probe import main as probe_main

    out, figure = tmp_path / "probe.csv", tmp_path / "probe.png"
    assert probe_main([str(smoke["out"]), "--home", str(smoke["home"]), "--windows", "4", "--sequences", "8",
                       "--out", str(out), "--figure", str(figure)]) == 0
    table = pd.read_csv(out)
    pretrains = [r for r in Store(smoke["out"]).records() if r["spec"]["mode"] == "pretrain"]
    assert sorted(table["run_id"]) == sorted(r["run_id"] for r in pretrains) and len(table) == 2
    for r in pretrains:
        row = table.set_index("run_id").loc[r["run_id"]]
        assert row["tokens"] == r["metrics"]["tokens_seen"] and row["checkpoint"] == "checkpoint"
        assert row["valid_loss"] == pytest.approx(r["metrics"]["valid_loss"], rel=1e-5)
    assert table[["induction", "in_context", "held_out_loss"]].notna().all().all()
    assert figure.stat().st_size > 10_000


def test_dry_run_lists_exactly_what_then_runs(smoke, capsys):
    # Adding a pretraining corpus: the dry run lists its runs as 'todo' and the shared ones as 'done'.
    extra = smoke["tmp"] / "extra"
    (extra / "txt").mkdir(parents=True)
    for i, path in enumerate(sorted(Path(smoke["tmp"]).parent.glob("corpora*/txt/*.txt"))[:40]):
        (extra / "txt" / f"e{i}.txt").write_text(path.read_text().upper())
    other = f"files:{extra}/txt/*.txt"
    args = cli(smoke["study"], smoke["out"], smoke["home"], "--pretrain", other)
    assert main([*args, "--dry-run"]) == 0
    listed = [line.split() for line in capsys.readouterr().out.splitlines() if line.split()[1:2] in (["todo"],
                                                                                                      ["done"])]
    todo = {fields[0] for fields in listed if fields[1] == "todo"}
    assert todo and all(("pretrain-" in r or "finetune-" in r) for r in todo)
    before = set(record_times(smoke["out"]))
    assert main([*args, "--no-analysis"]) == 0
    assert set(record_times(smoke["out"])) - before == todo


def test_a_failing_run_is_recorded_and_the_others_finish(tmp_path, tiny_corpora):
    # 50 characters are fewer tokens than one window: the run fails (RunFailed), the study goes on.
    # From scratch alone: a pretraining and its fine-tune would add nothing to what is checked here.
    study = write_study(tmp_path / "s.toml", tiny_corpora, sizes=["n25k"],
                        scratch={"data_chars": [50, 2e4]}, finetune={"sizes": []})
    out = tmp_path / "out"
    assert main(cli(study, out, tmp_path / "home", "--no-analysis")) == 1
    records = {r["identity"].get("data_chars"): r for r in Store(out).records() if r["identity"]["mode"] == "scratch"}
    assert records[50]["status"] == "failed" and "at least 65 needed" in records[50]["error"]
    assert records[20000]["status"] == "ok"
    table = pd.read_csv(out / "results.csv")
    assert set(table["status"]) == {"ok", "failed"}


@pytest.mark.parametrize("change, message", [
    ({"target": "no-such-corpus"}, "no-such-corpus"),
    ({"train": {"batch_sise": 3}}, "unknown key"),
    ({"train": {"batch_size": 0}}, "[train] batch_size must be >= 1, got 0"),
    ({"train": {"precision": "fp16"}}, "[train] precision must be one of 'auto', 'fp32', 'bf16', got 'fp16'"),
    ({"train": {"min_steps": 50, "max_steps": 10}}, "[train] max_steps must be >= min_steps (50), got 10"),
    ({"scratch": {"data_chars": [2e4, 1e9]}}, "[scratch] data_chars 1e9 is more than the"),
    ({"pretrain": {"checkpoint_tokens_per_param": [1]}}, '[pretrain] checkpoint_tokens_per_param needs schedule = "wsd"'),
    ({"sweep": {"lr_scale": [1, 0]}}, "[sweep] lr_scale must be > 0, got 0"),
])
def test_bad_input_stops_before_training(tmp_path, tiny_corpora, capsys, change, message):
    study = write_study(tmp_path / "s.toml", tiny_corpora, **change)
    out = tmp_path / "out"
    assert main(cli(study, out, tmp_path / "home")) == 2
    err = capsys.readouterr().err
    said = [line for line in err.strip().splitlines() if not preparing(line)]
    assert message in err and len(said) == 1, err  # one line of error, after what was prepared if anything
    assert not out.exists()


def test_a_bad_train_value_from_the_command_line_is_one_line_and_exit_2(tmp_path, tiny_corpora):
    """As a new user would meet it: python -m effdata.run on a study with batch_size = 0."""
    study = write_study(tmp_path / "bad.toml", tiny_corpora, train={"batch_size": 0})
    out = tmp_path / "bad-out"
    done = subprocess.run([sys.executable, "-m", "effdata.run", "--pretrain", tiny_corpora["text"],
                           *cli(study, out, tmp_path / "home")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"effdata.run: {study}: [train] batch_size must be >= 1, got 0"]
    assert not out.exists()


def test_records_written_before_the_typed_run_contract_still_count(smoke):
    """A record whose `spec` was the identity (the format before effdata.spec) is a done run, not a rerun."""
    store = Store(smoke["out"])
    record = next(r for r in store.records() if r["status"] == "ok")
    legacy = {k: v for k, v in record.items() if k not in ("identity", "run")}
    legacy["spec"] = record["identity"]
    path = store.run_dir(record["run_id"]) / "record.json"
    saved = path.read_text()
    try:
        path.write_text(json.dumps(legacy))
        assert store.is_done(record["run_id"])
        assert store.read_record(record["run_id"])["identity"] == record["identity"]
    finally:
        path.write_text(saved)


def test_an_out_dir_holding_another_study_is_refused_untouched(smoke, tmp_path, tiny_corpora, capsys):
    other = write_study(tmp_path / "other.toml", tiny_corpora, name="other")
    before = sorted(p.name for p in (smoke["out"] / "runs").iterdir())
    held = (smoke["out"] / "study.json").read_text()
    assert main(cli(other, smoke["out"], smoke["home"])) == 2
    assert "different study" in capsys.readouterr().err
    assert sorted(p.name for p in (smoke["out"] / "runs").iterdir()) == before
    assert (smoke["out"] / "study.json").read_text() == held


def test_kill_9_mid_study_then_the_same_command_completes_it(tmp_path, tiny_corpora):
    # One size, six runs (3 from scratch, a pretraining, its 2 fine-tunes): the fine-tunes wait for the
    # pretraining, so a kill after two records lands mid-study (two sizes cost 31 CPU-s in the suite).
    study = write_study(tmp_path / "s.toml", tiny_corpora, sizes=["n25k"])
    out, home = tmp_path / "out", tmp_path / "home"
    command = [sys.executable, "-m", "effdata.run", *cli(study, out, home, "--workers", "2", "--no-analysis")]
    runner = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(record_times(out)) < 2:
        time.sleep(0.2)
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    finished = record_times(out)
    assert 2 <= len(finished) < 6, "the kill should land mid-study"
    time.sleep(1.0)  # workers die with the runner (PDEATHSIG); nothing may still be writing
    assert record_times(out) == finished
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    after = record_times(out)
    assert len(after) == 6
    assert {k: after[k] for k in finished} == finished, "a finished run was done twice"


def test_a_study_with_mid_run_checkpoints_and_a_sweep_runs_end_to_end(tmp_path, tiny_corpora):
    """Fine-tunes of `text@1tpp` start from that checkpoint, results.csv has its row, the sweep's runs carry
    their value, and the study's analysis is the sweep analysis."""
    study = write_study(tmp_path / "s.toml", tiny_corpora, sizes=["n25k"], scratch={"data_chars": [2e4, 6e4]},
                        finetune={"data_chars": [2e4]}, pretrain={"schedule": "wsd", "checkpoint_tokens_per_param": [1]},
                        sweep={"lr_scale": [1, 2]})
    out = tmp_path / "out"
    assert main(cli(study, out, tmp_path / "home", "--workers", "2")) == 0
    records = {r["run"]["label"]: r for r in Store(out).records()}
    assert len(records) == 4 + 1 + 4 and all(r["status"] == "ok" for r in records.values())
    pre = next(r for r in records.values() if r["identity"]["mode"] == "pretrain")
    (entry,) = pre["metrics"]["checkpoints"]
    ft = next(r for label, r in records.items() if "@1tpp" in label and label.endswith("-lr1-s0"))
    assert ft["spec"]["init_from"].endswith("checkpoint@1tpp") and ft["spec"]["init_from"] == entry["checkpoint"]
    # The fine-tune starts from the checkpoint's weights: its first evaluation is the branch's last one. The
    # pretraining evaluates in fp32 and the fine-tune in its own precision (bf16 on a CPU that has it), which
    # moved losses by up to 6e-4 nats (docs/notes/issue-13.md); the final checkpoint is ~1.7 nats away.
    assert ft["metrics"]["init_loss"] == pytest.approx(entry["valid_loss"], abs=1e-3)
    table = pd.read_csv(out / "results.csv")
    rows = table[table["mode"] == "pretrain"].set_index("pretrain")
    name = pre["pretrain"] + "@1tpp"
    assert rows.loc[name, "tokens_per_param"] == pytest.approx(entry["tokens_per_param"])
    fts = table[(table["pretrain"] == name) & (table["mode"] == "finetune")]
    assert len(fts) == 2 and (fts["pretrain_tokens_per_param"] == entry["tokens_per_param"]).all()
    assert set(table.loc[table["mode"] != "pretrain", "lr_scale"]) == {1.0, 2.0}
    assert (out / "analysis" / "sweep.json").exists() and not (out / "analysis" / "fits.json").exists()


def test_a_study_that_fine_tunes_no_size_trains_and_analyses_its_from_scratch_runs_alone(tmp_path, tiny_corpora,
                                                                                        smoke, capsys):
    study = write_study(tmp_path / "s.toml", tiny_corpora, sizes=["n25k"], scratch={"data_chars": [1e4, 2e4]},
                        finetune={"data_chars": [2e4], "sizes": []})
    out = tmp_path / "out"
    assert main(cli(study, out, smoke["home"])) == 0        # the smoke study's home: its tokenizer and token files
    assert "(pretraining: none, from scratch only;" in capsys.readouterr().err
    table = pd.read_csv(out / "results.csv")
    assert list(table["mode"]) == ["scratch", "scratch"] and set(table["status"]) == {"ok"}
    assert (out / "analysis" / "REPORT.md").exists()
