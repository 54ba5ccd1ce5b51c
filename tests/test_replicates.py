"""The audit's refits on each pretraining seed's runs alone (effdata/analysis/audit/replicates.py), on synthetic
tables whose laws are known: each replicate of the ladder recovers its own law, a planted odd one stands out, and a
table without replicates gets no rows. The report's rows and fits.json: tests/test_pretraining_noise.py."""
from __future__ import annotations

import pandas as pd
import pytest

from effdata.analysis.audit.replicates import by_replicate, pretraining_seeds
from effdata.analysis.core.effective import compute_effective
from effdata.analysis.core.fit import fit_transfer
from effdata.analysis.core.table import load_results
from synthetic import CPU_INSIDE, make_cpu_runs, nested_runs

FLAT = {**CPU_INSIDE, "beta": 0.2}


def _replicates(rows: pd.DataFrame, name: str = "text"):
    table = load_results(rows)
    effective = compute_effective(table, [])
    fit = fit_transfer(effective.table, name, table.units, n_bootstrap=0)
    return by_replicate(table, effective.curves, fit, {})


def _three_runs(laws_by_seed: list[dict]) -> pd.DataFrame:
    """Three pretraining runs per size, seed s's fine-tunes following laws_by_seed[s] exactly (no noise)."""
    tables = [make_cpu_runs({"text": law}, seeds=3, loss_noise=0.0, pretraining_noise=0.0) for law in laws_by_seed]
    rows = [t[(t["mode"] == "scratch") | (t["seed"] == s)] if s == 0 else t[(t["mode"] == "finetune") & (t["seed"] == s)]
            for s, t in enumerate(tables)]
    return pd.concat(rows, ignore_index=True)


def test_each_replicate_recovers_its_law_and_a_planted_odd_one_stands_out():
    same = _replicates(_three_runs([CPU_INSIDE] * 3))
    assert list(same.exponents) == [f"seed {s}'s pretraining runs alone" for s in (0, 1, 2)]
    for exponents in same.exponents.values():
        assert exponents["beta"] == pytest.approx(CPU_INSIDE["beta"], abs=0.02)
        assert exponents["alpha"] == pytest.approx(CPU_INSIDE["alpha"], abs=0.02)
    assert all(abs(v) < 0.05 for v in same.alpha_per_decade.values())
    odd = _replicates(_three_runs([CPU_INSIDE, CPU_INSIDE, FLAT]))
    betas = [e["beta"] for e in odd.exponents.values()]
    assert betas[:2] == pytest.approx([CPU_INSIDE["beta"]] * 2, abs=0.02)
    assert betas[2] == pytest.approx(FLAT["beta"], abs=0.02)


def test_no_rows_without_two_replicates_of_the_whole_design():
    assert not _replicates(make_cpu_runs(seeds=3, loss_noise=0.01)).exponents    # fine-tune seeds name no run
    rows = _three_runs([CPU_INSIDE] * 3)
    largest = rows["n_params"] == rows["n_params"].max()
    partial = rows[~(largest & (rows["mode"] == "finetune") & (rows["seed"] == 2))]
    assert list(_replicates(partial).exponents) == ["seed 0's pretraining runs alone", "seed 1's pretraining runs alone"]
    two_partial = partial[~(largest[partial.index] & (partial["mode"] == "finetune") & (partial["seed"] == 1))]
    assert not _replicates(two_partial).exponents
    smallest_d_f = rows["data_chars"] == rows.loc[rows["mode"] == "finetune", "data_chars"].min()
    one_d_f = rows[~((rows["mode"] == "finetune") & (rows["seed"] > 0) & ~smallest_d_f)]   # seeds 1, 2 at one D_F
    assert not _replicates(one_d_f).exponents      # every N, not every point (analysis/shape's extra seeds)


def test_a_runs_seed_is_its_pretraining_rows_else_its_lowest_fine_tune_seed():
    shared = load_results(nested_runs(runs=3, replicates=4))     # run 0 fine-tuned with seeds 0, 10, 11, 12
    seeds = pretraining_seeds(shared)
    finetuned = shared.seed_runs["mode"] == "finetune"
    assert set(seeds[finetuned]) == {0.0, 1.0, 2.0} and seeds[~finetuned].isna().all()
    rows = pd.DataFrame([
        {"mode": "pretrain", "pretrain": "text", "n_params": 1e5, "seed": 7, "run_id": "pt-s7", "loss": 4.0,
         "data_chars": 1e8, "status": "ok"},
        {"mode": "pretrain", "pretrain": "text@10tpp", "n_params": 1e5, "seed": 7, "run_id": "pt-s7@10tpp",
         "loss": 4.5, "data_chars": 1e8, "status": "ok"},
        {"mode": "scratch", "pretrain": "none", "n_params": 1e5, "seed": 0, "data_chars": 1e4, "loss": 6.0, "status": "ok"},
        {"mode": "finetune", "pretrain": "text@10tpp", "n_params": 1e5, "seed": 3, "data_chars": 1e4, "loss": 5.0,
         "status": "ok", "init_from": "/runs/pt-s7/checkpoint@10tpp"}])
    table = load_results(rows)
    seeds = pretraining_seeds(table)
    assert seeds[table.seed_runs["mode"] == "finetune"].tolist() == [7.0]
