"""benchmarks/rates_by_mode.py on records made here: each mode's seconds per FLOP over the pretraining's of its size
(a check that can fail: records at known rates must give those ratios, and a run without a pretraining beside it,
or failed, or without its wall time, must count for nothing)."""
import json

import pytest
from scripts import load_script

from effdata.spec import identity_hash


def _record(runs, label: str, mode: str, n: float, wall: float | None, flops: float, status: str = "ok") -> None:
    identity = {"label": label}
    run_id = f"{label}-{identity_hash(identity)}"
    folder = runs / run_id
    folder.mkdir(parents=True)
    metrics = {"mode": mode, "n_params": n, "wall_time": wall, "flops_6N": flops}
    folder.joinpath("record.json").write_text(json.dumps(
        {"run_id": run_id, "status": status, "identity": identity, "metrics": metrics}))


def test_each_mode_over_the_pretraining_of_its_size(tmp_path, capsys):
    runs = tmp_path / "runs"
    _record(runs, "pre-a", "pretrain", 1e4, 10.0, 1e12)          # 10 s per TFLOP
    _record(runs, "pre-b", "pretrain", 1e5, 2.0, 1e12)           # 2
    for i, wall in enumerate((28.0, 30.0, 26.0)):               # median 28: ×2.8
        _record(runs, f"ft-{i}", "finetune", 1e4, wall, 1e12)
    _record(runs, "ft-big", "finetune", 1e5, 6.0, 1e12)          # ×3
    _record(runs, "sc-a", "scratch", 1e5, 4.0, 1e12)             # ×2
    _record(runs, "sc-alone", "scratch", 1e6, 4.0, 1e12)         # no pretraining of its size
    _record(runs, "ft-failed", "finetune", 1e5, 600.0, 1e12, status="failed")
    _record(runs, "ft-nowall", "finetune", 1e5, None, 1e12)
    script = load_script("rates_by_mode")
    found = script.rates(tmp_path)
    assert sorted(len(v) for v in found.values()) == [1, 1, 1, 1, 1, 3]
    ratios = script.ratios(found)
    assert ratios["finetune"] == pytest.approx([2.8, 3.0]) and ratios["scratch"] == pytest.approx([2.0])
    assert script.main([str(tmp_path)]) == 0
    assert "finetune: ×2.8–3.0 a pretraining's rate over 2 sizes" in capsys.readouterr().out
