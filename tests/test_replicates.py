"""The audit's refits on each pretraining seed's runs alone (effdata/analysis/audit/replicates.py), on synthetic
tables whose laws are known: each replicate of the ladder recovers its own law, a planted odd one stands out, and a
table without replicates gets no rows. The report's rows and fits.json: tests/test_pretraining_noise.py."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from effdata.analysis.audit.replicates import by_replicate, own_scratch, pretraining_seeds
from effdata.analysis.core.effective import compute_effective
from effdata.analysis.audit.form import alpha_by_n, left_out_label
from effdata.analysis.audit.transfer import refit_exponents
from effdata.analysis.core.fit import fit_transfer, law_points
from effdata.analysis.core.table import load_results
from effdata.fmt import sig
from synthetic import CPU_INSIDE, make_cpu_runs, nested_runs

FLAT = {**CPU_INSIDE, "beta": 0.2}


def _replicates(rows: pd.DataFrame, name: str = "text"):
    table = load_results(rows)
    effective = compute_effective(table, [])
    fit = fit_transfer(effective.table, name, table.units, n_bootstrap=0)
    return by_replicate(table, effective.curves, fit, {})


def _three_runs(laws_by_seed: list[dict], scratch_seeds=(0,), loss_noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Three pretraining runs per size, seed s's fine-tunes following laws_by_seed[s] (exactly, without
    `loss_noise`), beside the from-scratch runs of `scratch_seeds`."""
    tables = [make_cpu_runs({"text": law}, seeds=3, loss_noise=loss_noise, pretraining_noise=0.0, seed=seed)
              for law in laws_by_seed]
    scratch = tables[0][(tables[0]["mode"] == "scratch") & tables[0]["seed"].isin(scratch_seeds)]
    return pd.concat([scratch] + [t[(t["mode"] == "finetune") & (t["seed"] == s)] for s, t in enumerate(tables)],
                     ignore_index=True)


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


def test_with_each_seeds_own_from_scratch_runs_a_replicate_is_what_that_seed_alone_gives():
    """Independent replicates: seed s's fine-tunes on seed s's from-scratch curves are the table a study run with
    seed s alone makes, and its law is that table's headline law (on the same points, the same estimator)."""
    rows = _three_runs([CPU_INSIDE] * 3, scratch_seeds=(0, 1, 2), loss_noise=0.01, seed=3)
    table = load_results(rows)
    found = _replicates(rows)
    assert found.independent and list(found.exponents) == [f"seed {s}'s runs alone" for s in (0, 1, 2)]
    for s in (0, 1, 2):
        alone = load_results(rows[rows["seed"] == s])
        effective = compute_effective(alone, [])
        points, _ = law_points(effective.table, fit_transfer(effective.table, "text", alone.units, n_bootstrap=0))
        headline = fit_transfer(points, "text", alone.units, n_bootstrap=0)
        mine = found.exponents[f"seed {s}'s runs alone"]
        assert (mine["alpha"], mine["beta"]) == pytest.approx((headline.alpha, headline.beta), abs=1e-6)
    betas = [e["beta"] for e in found.exponents.values()]
    assert found.spread()["beta"] == pytest.approx(pd.Series(betas).std())
    assert len(set(betas)) == 3          # the from-scratch noise of each seed moves its own replicate
    # One seed short of a single from-scratch point: every replicate goes back to the shared curves.
    short = rows.drop(rows.index[(rows["mode"] == "scratch") & (rows["seed"] == 2)][:1])
    assert own_scratch(load_results(short), 2) is None and own_scratch(load_results(short), 1) is not None
    shared = _replicates(short)
    assert not shared.independent and not shared.spread()
    assert list(shared.exponents) == [f"seed {s}'s pretraining runs alone" for s in (0, 1, 2)]
    assert own_scratch(table, 5) is None


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


def test_independent_replicates_report_their_spread_and_fits_json_keeps_it():
    from effdata.analysis.audit.audit import Audit, audit_json
    from effdata.analysis.audit.leverage import LawAudit
    from effdata.analysis.audit.report import _replicate_lines

    found = _replicates(_three_runs([CPU_INSIDE] * 3, scratch_seeds=(0, 1, 2), loss_noise=0.01, seed=3))
    law = LawAudit("transfer law 'text'", {"alpha": 0.4, "beta": 0.4}, {}, sensitivity=found.exponents,
                   form_by_replicate=found.alpha_per_decade, replicate_spread=found.spread())
    line = " ".join(_replicate_lines(law))
    sd = found.spread()["beta"]
    assert "(seed 0)" in line and "seed 0's" not in line      # the labels' suffix dropped
    assert f"beta {sig(sd)}: ±{sig(1.645 * sd)} for one replicate, ±{sig(1.645 * sd / 3 ** 0.5)} for the mean of 3" in line
    assert audit_json(Audit(laws=[law]))["laws"][0]["sd_over_replicates"] == found.spread()
    law.form_over_replicates = found.change_over_replicates()
    change = law.form_over_replicates
    assert (f"averaged over the 3 replicates: {sig(change['mean'])} [{sig(change['interval'][0])}, "
            f"{sig(change['interval'][1])}] (90 % t interval), p = {sig(change['p_value'])}") in " ".join(_replicate_lines(law))
    assert audit_json(Audit(laws=[law]))["laws"][0]["alpha_per_decade_over_replicates"] == change
    change["without"] = {"n": "w7k", "pooled": 0.18, "mean": 0.19, "interval": [0.11, 0.27], "p_value": 0.005,
                         "replicates": 3}
    assert ("Without w7k (the N that moves the pooled change most: 0.18), the replicates' changes average 0.19 "
            "[0.11, 0.27], p = 0.005 over 3.") in " ".join(_replicate_lines(law))
    law.beta_over_replicates = {"mean": 0.49, "interval": [0.39, 0.58], "p_value": 0.0002, "replicates": 3,
                                "without": {"n": "w500k", "pooled": 0.19, "mean": 0.25, "interval": [0.1, 0.4]}}
    assert ("β averaged over the 3 replicates: 0.49 [0.39, 0.58]; without w500k (the N that moves the pooled β most: "
            "0.19) 0.25 [0.1, 0.4] (90 % t intervals).") in " ".join(_replicate_lines(law))
    assert audit_json(Audit(laws=[law]))["laws"][0]["beta_over_replicates"] == law.beta_over_replicates
    shared = dataclasses.replace(law, replicate_spread={})
    assert "on the same from-scratch curves" in " ".join(_replicate_lines(shared))
    assert "sd_over_replicates" not in audit_json(Audit(laws=[shared]))["laws"][0]


def test_the_change_per_decade_averaged_over_independent_replicates_is_a_t_test_of_its_sign():
    from scipy import stats

    found = _replicates(_three_runs([CPU_INSIDE] * 3, scratch_seeds=(0, 1, 2), loss_noise=0.01, seed=3))
    values = list(found.alpha_per_decade.values())
    change = found.change_over_replicates()
    assert change["replicates"] == 3 and change["mean"] == pytest.approx(sum(values) / 3)
    assert change["p_value"] == pytest.approx(stats.ttest_1samp(values, 0.0).pvalue)
    assert change["interval"][0] < change["mean"] < change["interval"][1]
    assert dataclasses.replace(found, independent=False).change_over_replicates() is None
    two = dataclasses.replace(found, alpha_per_decade=dict(list(found.alpha_per_decade.items())[:2]))
    assert two.change_over_replicates() is None
    # Without the smallest N, each replicate refitted on its other points: the form check's own fit and the audit's.
    smallest = {label: p.n_params != p.n_params.min() for label, p in found.points.items()}
    label = left_out_label(next(iter(found.points.values())).n_params.min(), {})
    changes = [alpha_by_n(*(a[smallest[k]] for a in p.arrays), None, p.delta, 0, {}).per_decade
               for k, p in found.points.items()]
    assert found.change_over_replicates(without=label)["mean"] == pytest.approx(sum(changes) / 3)
    assert found.change_over_replicates(without=label)["mean"] != pytest.approx(change["mean"])
    beta = found.exponent_over_replicates("beta", label)
    assert beta["mean"] == pytest.approx(sum(e["beta"] for e in found.exponents.values()) / 3)
    betas = [refit_exponents(*(a[smallest[k]] for a in p.arrays), p.delta)["beta"] for k, p in found.points.items()]
    assert beta["without"]["mean"] == pytest.approx(sum(betas) / 3)
    assert beta["without"]["mean"] != pytest.approx(beta["mean"]) and beta["without"]["n"] == label
    assert dataclasses.replace(found, independent=False).exponent_over_replicates("beta", label) is None
