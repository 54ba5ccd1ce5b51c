"""`effdata.run --reuse DIR` (Store.adopt): a study that changes one setting of another copies in the other's
finished runs of the same ids instead of training them (how jobs/cpu-ft-lr-*.toml and jobs/cpu-large-d.toml
reused v4's runs, by hand before this)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from effdata.run import main
from effdata.study.store import Store
from effdata.study.study import study_from_dict, study_runs

BASE = {"name": "base", "sizes": ["n25k"], "scratch": {"data_chars": [1e4, 3e4]}, "finetune": {"data_chars": [1e4]},
        "pretrain": {"corpora": ["text"], "token_budget": 20000}}
LOW_FT_LR = {**BASE, "name": "low", "finetune": {"data_chars": [1e4], "lr_scale": 0.125}}


def test_adopt_copies_the_finished_runs_of_the_same_ids_and_nothing_else(tmp_path):
    base, low = study_runs(study_from_dict(BASE), ["text"]), study_runs(study_from_dict(LOW_FT_LR), ["text"])
    source = Store(tmp_path / "base")
    for run in base:   # every base run finished, but one from-scratch run failed
        source.write_record(run, "failed" if run.spec.data_chars == 30_000 else "ok", metrics={"loss": 5.0})
    target = Store(tmp_path / "low")
    adopted = target.adopt(source.out_dir, low)
    expected = {r.run_id for r in base if r.mode == "pretrain" or (r.mode == "scratch" and r.spec.data_chars == 10_000)}
    assert set(adopted) == expected            # not the failed run, not the base's fine-tunes (other ids)
    assert all(target.is_done(run_id) for run_id in adopted)
    assert sorted(p.name for p in target.runs_dir.iterdir()) == sorted(expected)   # no staging copy left in runs/
    assert sorted(p.name for p in target.out_dir.iterdir()) == ["runs"]            # nor beside it
    assert target.adopt(source.out_dir, low) == []   # done here already: nothing copied twice


def test_a_missing_reuse_directory_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["--reuse", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"effdata.run: --reuse {tmp_path / 'none'}: not a study directory (no runs/ in it)"]
    assert not (tmp_path / "out").exists()


def test_reuse_takes_several_directories_each_run_from_the_first_that_has_it(tmp_path, stop_before_training):
    # The pretraining finished in one study, the rest in another (jobs/cpu-pretrain-seeds.toml reused cpu-seeds' and
    # cpu-pretrain-seed1's runs: one folder of links before this). A failed copy is never taken; nothing is left.
    runs = study_runs(study_from_dict(BASE), ["text"])
    first, second = Store(tmp_path / "first"), Store(tmp_path / "second")
    for run in runs:
        (first if run.mode == "pretrain" else second).write_record(run, "ok", metrics={"loss": 5.0})
    first.write_record(next(r for r in runs if r.mode == "scratch"), "failed")
    (tmp_path / "base.toml").write_text('name = "base"\nsizes = ["n25k"]\n[scratch]\ndata_chars = [1e4, 3e4]\n'
                                        '[finetune]\ndata_chars = [1e4]\n[pretrain]\ncorpora = ["text"]\n'
                                        'token_budget = 20000\n')
    with pytest.raises(LeftToTrain) as left:
        main(["--study", str(tmp_path / "base.toml"), "--out", str(tmp_path / "out"), "--reuse", str(first.out_dir),
              str(second.out_dir), "--no-analysis", "--device", "cpu"])
    assert left.value.args[0] == []


@pytest.fixture
def stop_before_training(monkeypatch):
    """`effdata.run.main` up to the scheduler, which raises LeftToTrain with the runs still to train: no data is
    prepared and no worker pool starts."""
    monkeypatch.setattr("effdata.run.prepare_data", lambda *a, **k: None)
    monkeypatch.setattr("effdata.run.check_plan", lambda *a, **k: [])
    monkeypatch.setattr("effdata.run.cost_model", lambda *a, **k: SimpleNamespace(flops=None))
    monkeypatch.setattr("effdata.run.schedule", _left_to_train)
    monkeypatch.setattr("effdata.run.make_executor", lambda *a, **k: (None, 1))


class LeftToTrain(Exception):
    """What the runner would have trained after --reuse (the test stops there)."""


def _left_to_train(store, runs, *args, **kwargs):
    raise LeftToTrain([run.run_id for run in runs if not store.is_done(run.run_id)])


def test_a_study_of_other_files_pretrainings_says_when_they_would_be_trained_again(tmp_path, stop_before_training,
                                                                                   capsys):
    # [pretrain] studies: the pretraining runs are base.toml's; without --reuse of base's folder they would be
    # pretrained again here (the same runs), and the command says so once; with it, nothing is said.
    (tmp_path / "base.toml").write_text('name = "base"\nsizes = ["n25k"]\n[scratch]\ndata_chars = []\n'
                                        '[finetune]\ndata_chars = [1e4]\n[pretrain]\ncorpora = ["text"]\n'
                                        'token_budget = 20000\n')
    (tmp_path / "more.toml").write_text('name = "more"\nsizes = ["n25k"]\n[scratch]\ndata_chars = []\n'
                                        '[finetune]\ndata_chars = [1e4, 3e4]\n[pretrain]\nstudies = ["base.toml"]\n')
    base = Store(tmp_path / "base")
    for run in study_runs(study_from_dict({**BASE, "scratch": {"data_chars": []}}), ["text"]):
        base.write_record(run, "ok", metrics={"loss": 5.0})
    command = ["--study", str(tmp_path / "more.toml"), "--no-analysis", "--device", "cpu"]
    with pytest.raises(LeftToTrain) as left:
        main([*command, "--out", str(tmp_path / "alone")])
    assert sum(line.startswith("effdata.run: note: 1 pretraining run(s) of [pretrain] studies are not in this folder")
               and line.endswith("(by default: runs/base)") for line in capsys.readouterr().err.splitlines()) == 1
    assert len(left.value.args[0]) == 3        # the pretraining and both fine-tunes
    with pytest.raises(LeftToTrain) as left:
        main([*command, "--out", str(tmp_path / "reused"), "--reuse", str(base.out_dir)])
    assert "note:" not in capsys.readouterr().err
    assert [run_id.split("-")[3] for run_id in left.value.args[0]] == ["3e4c"]   # base's 1e4 fine-tune is reused


def test_runs_left_in_a_precision_no_finished_run_used_are_warned_about(tmp_path):
    # A study finished in bf16 on one machine and resumed where precision "auto" resolves to fp32 (the twenty-sixth
    # session's machine): said before it trains; the same precision, or nothing left to do, says nothing.
    from effdata.run import finished_dtypes, precision_mix_warning

    runs = study_runs(study_from_dict(BASE), ["text"])
    store = Store(tmp_path / "out")
    for run in runs[:2]:
        store.write_record(run, "ok", metrics={"loss": 5.0, "dtype": "bf16"})
    finished = finished_dtypes(store)
    assert set(finished.values()) == {"bf16"} and len(finished) == 2
    said = precision_mix_warning(finished, store, runs, lambda precision, d_model: "fp32")
    assert said is not None and "2 finished runs computed in bf16" in said and f"its {len(runs) - 2} runs" in said
    assert precision_mix_warning(finished, store, runs, lambda precision, d_model: "bf16") is None
    assert precision_mix_warning({}, store, runs, lambda precision, d_model: "fp32") is None
    for run in runs[2:]:
        store.write_record(run, "ok", metrics={"loss": 5.0, "dtype": "bf16"})
    assert precision_mix_warning(finished_dtypes(store), store, runs, lambda precision, d_model: "fp32") is None
