"""effdata.analysis.transfer.pretraining: the pretraining runs as an input, and whether bigger models were better pretrained."""
import numpy as np
import pandas as pd
from synthetic import CPU_N, make_cpu_runs, pretraining_rows

from effdata.analysis.core.table import load_results
from effdata.analysis.transfer.pretraining import summarize_pretraining


def test_every_run_with_tokens_per_parameter_and_both_losses():
    summary = summarize_pretraining(load_results(make_cpu_runs(seeds=1, pretraining=True)).pretraining)
    table = summary.table
    assert list(table["n_params"]) == sorted(CPU_N)
    np.testing.assert_allclose(table["tokens_per_param"], 4e6 / table["n_params"])
    np.testing.assert_allclose(table["own_loss"], 3.5 + 20 * table["n_params"] ** -0.25)
    np.testing.assert_allclose(table["target_loss"], 6.0 + 10 * table["n_params"] ** -0.25)
    reading = summary.readings["text"]
    assert "falls with N at 4 of 4 steps" in reading and "bigger models were better pretrained" in reading
    assert "below the compute-optimal ~20" in reading and "from N = 2e5" in reading   # 4e6 / 200064 = 19.99


def test_a_bigger_model_that_is_worse_pretrained_is_named():
    rows = pretraining_rows(["text"], CPU_N).drop(columns="tokens_seen").assign(tokens_per_param=50.0)
    rows.loc[rows["n_params"] == CPU_N[3], "pretrain_valid_loss"] = 9.0      # N = 200 K worse than 100 K
    summary = summarize_pretraining(rows)
    assert "3 of 4 steps" in summary.readings["text"] and "does not fall from N = 1e5 → 2e5" in summary.readings["text"]
    assert (summary.table["tokens_per_param"] == 50.0).all()          # a given column wins over tokens_seen
    assert "below the compute-optimal" not in summary.readings["text"]


def test_no_own_loss_says_so_and_no_rows_is_empty():
    rows = pretraining_rows(["text"], CPU_N[:2]).drop(columns="pretrain_valid_loss")
    assert "cannot be judged" in summarize_pretraining(rows).readings["text"]
    assert summarize_pretraining(pd.DataFrame()).table.empty
