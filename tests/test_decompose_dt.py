"""benchmarks/decompose_dt.py: the split of a step in D_E into the fine-tuned loss's part and the curve's, on
tables whose answer is known (the curves and their reading are the analysis's own, tested elsewhere)."""
import re

import numpy as np
import pandas as pd

from effdata.analysis.core.effective import compute_effective
from effdata.analysis.core.table import load_results
from scripts import load_script
from synthetic import cpu_scratch_loss

SIZES = {"a": 2.5e4, "b": 2e5}
D_SCRATCH = (1e4, 3e4, 1e5, 3e5, 1e6, 3e6)


def _table(finetuned: dict[str, float]) -> pd.DataFrame:
    rows = [{"pretrain": "none", "mode": "scratch", "size": size, "n_params": n, "data_chars": d, "seed": 0,
             "loss": float(cpu_scratch_loss(n, d))} for size, n in SIZES.items() for d in D_SCRATCH]
    rows += [{"pretrain": "text", "mode": "finetune", "size": size, "n_params": SIZES[size], "data_chars": 1e4,
              "seed": 0, "loss": loss} for size, loss in finetuned.items()]
    table = pd.DataFrame(rows)
    table["data_tokens"], table["status"] = np.round(table["data_chars"] / 3.5), "ok"
    return table


def _split(finetuned: dict[str, float]) -> dict[str, float]:
    script = load_script("decompose_dt")
    effective = compute_effective(load_results(_table(finetuned)))
    rows = effective.table[effective.table["pretrain"] == "text"]
    row = dict(zip(script.HEADER, script.decompose(effective, rows, "a", "b")[0]))
    return {key: float(re.sub(r"[×*]", "", row[key])) for key in ("D_E b / a", "from the loss", "from the curve")}


def test_equal_fine_tuned_losses_put_the_whole_step_on_the_curve_and_the_parts_multiply_to_it():
    same = _split({"a": 4.9, "b": 4.9})
    assert same["from the loss"] == 1.0 and same["from the curve"] == same["D_E b / a"] != 1.0
    lower = _split({"a": 4.9, "b": 4.6})
    assert lower["from the loss"] > 1.5
    assert np.isclose(lower["from the loss"] * lower["from the curve"], lower["D_E b / a"], rtol=0.01)
