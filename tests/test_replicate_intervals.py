"""benchmarks/replicate_intervals.py: its table's arithmetic on replicates whose answers are known (the analyses
it runs are the pipeline's own, tested elsewhere)."""
import pandas as pd
import pytest
from scipy import stats

from scripts import load_script


def _laws(values, half_widths, pretrain="text"):
    return {seed: {pretrain: {"fitted": True, "beta": v, "intervals": {"beta": [v - h, v + h]}}}
            for seed, (v, h) in enumerate(zip(values, half_widths))}


def test_the_spread_the_implied_sd_the_intervals_that_hold_and_the_t_test():
    script = load_script("replicate_intervals")
    row = script.summary(_laws([0.4, 0.5, 0.6], [0.1645] * 3), "text", "beta").split(" | ")
    assert row[3:6] == ["0.1", "0.1", "3 of 3"]          # sd 0.1 between them, 0.1 implied, every interval holds
    p = stats.ttest_1samp([0.4, 0.5, 0.6], 0.0).pvalue
    assert row[6].startswith("0.5 [") and f"p = {script.sig(p)}" in row[6]
    narrow = script.summary(_laws([0.4, 0.5, 0.6], [0.01] * 3), "text", "beta").split(" | ")
    assert narrow[4:6] == ["0.00608", "1 of 3"]   # far narrower than the spread: only the middle one, by symmetry
    assert "fewer than two" in script.summary(_laws([0.4], [0.1]), "text", "beta")


def test_a_whole_replicate_has_every_run_mode():
    script = load_script("replicate_intervals")
    rows = pd.DataFrame({"mode": ["pretrain", "finetune", "scratch", "pretrain", "finetune", "scratch", "scratch"],
                         "seed": [0, 0, 0, 1, 1, 2, 1]})
    assert script.whole_seeds(rows) == [0, 1]
    assert script.given_options("--pretraining-noise 0.0055 --checkpoint-noise 0.0083") == pytest.approx(
        {"pretraining_noise": 0.0055, "checkpoint_noise": 0.0083})
