"""benchmarks/rates_by_mode.py on records written here: each mode's seconds per FLOP over the pretraining's of its
size (a check that can fail: records at known rates must give those ratios, and a run without a pretraining beside
it, or failed, or without its wall time, must count for nothing)."""
import pytest
from scripts import load_script

from effdata.study.store import Store
from effdata.study.study import study_from_dict, study_runs

STUDY = {"name": "t", "sizes": ["n25k", "n50k", "n100k"], "scratch": {"data_chars": [1e4]},
         "finetune": {"data_chars": [1e4, 2e4, 3e4]}, "pretrain": {"corpora": ["text"], "token_budget": 20000}}


def test_each_mode_over_the_pretraining_of_its_size(tmp_path, capsys):
    store = Store(tmp_path)
    runs = {(r.mode, r.spec.size, r.spec.data_chars): r for r in study_runs(study_from_dict(STUDY))}

    def record(mode, size, chars, wall, status="ok"):
        run = runs[mode, size, chars]
        metrics = {"mode": mode, "n_params": run.spec.shape.n_params, "wall_time": wall, "flops_6N": 1e12}
        store.write_record(run, status, metrics=metrics, error="died" if status == "failed" else None)

    record("pretrain", "n25k", None, 10.0)                     # 10 s per TFLOP
    record("pretrain", "n50k", None, 2.0)                      # 2
    for chars, wall in ((10000, 28.0), (20000, 30.0), (30000, 26.0)):
        record("finetune", "n25k", chars, wall)                # median 28: ×2.8
    record("finetune", "n50k", 10000, 6.0)                     # ×3
    record("finetune", "n50k", 20000, 600.0, status="failed")
    record("finetune", "n50k", 30000, None)                    # no wall time
    record("scratch", "n50k", 10000, 4.0)                      # ×2
    record("scratch", "n100k", 10000, 4.0)                     # no pretraining of its size
    script = load_script("rates_by_mode")
    found = script.rates(tmp_path)
    assert sorted(len(v) for v in found.values()) == [1, 1, 1, 1, 1, 3]
    ratios = script.ratios(found)
    assert ratios["finetune"] == pytest.approx([2.8, 3.0]) and ratios["scratch"] == pytest.approx([2.0])
    assert script.main([str(tmp_path)]) == 0
    assert "finetune: ×2.8–3.0 a pretraining's rate over 2 sizes" in capsys.readouterr().out
