"""`effdata.run --reuse DIR` (Store.adopt): a study that changes one setting of another copies in the other's
finished runs of the same ids instead of training them (how jobs/cpu-ft-lr-*.toml and jobs/cpu-large-d.toml
reused v4's runs, by hand before this)."""
from __future__ import annotations

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
