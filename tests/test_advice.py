"""effdata.analysis.transfer.advice: the runs that would tighten a fit, computed from the data."""
import numpy as np
import pytest
from synthetic import CPU_BEYOND, make_cpu_runs

from effdata.analysis.core.bootstrap import (
    attach_intervals,
    d_t_noise,
    estimate_noise,
    resample_effective,
)
from effdata.analysis.core.effective import compute_effective
from effdata.analysis.core.fit import fit_transfer
from effdata.analysis.core.table import load_results
from effdata.analysis.transfer.advice import WIDE_EXPONENT_INTERVAL, study_advice


def advise(df, n_bootstrap=200):
    results = load_results(df)
    effective = compute_effective(results)
    noise = estimate_noise(results, effective)
    draws = resample_effective(results, effective, noise, n_bootstrap, seed=0)
    attach_intervals(effective.table, draws)
    fits = {"text": fit_transfer(effective.table, "text", "chars", draws=draws.d_t)}
    return study_advice(fits, effective.table, d_t_noise(effective.table, draws), noise, results), fits, results


def test_from_scratch_runs_past_the_curve_are_costed_from_the_largest_run():
    advice, fits, results = advise(make_cpu_runs({"text": CPU_BEYOND}, seeds=3, loss_noise=0.005))
    reach = [s for s in advice.suggestions if s.runs.startswith("from scratch, N =")]
    assert len(reach) == 5 == len(fits["text"].scratch_runs_needed)
    assert all("past its largest run (3e6)" in s.why and "extrapolated" in s.why for s in reach)
    largest = results.runs[(results.runs["mode"] == "scratch") & (results.runs["data_chars"] == 3e6)]
    need = fits["text"].scratch_runs_needed[0]
    expected = float(largest.loc[largest["n_params"] == need["n_params"], "flops"].iloc[0]) * need["suggested"] / 3e6
    assert any(s.flops == pytest.approx(expected) for s in reach)
    costs = [s.flops for s in advice.suggestions if s.flops is not None]
    assert costs == sorted(costs)                                     # cheapest first


def test_more_seeds_where_d_t_is_least_certain_when_intervals_are_wide():
    advice, fits, _ = advise(make_cpu_runs(seeds=3, loss_noise=0.02, seed=3))
    fit = fits["text"]
    assert max(np.diff(fit.intervals["alpha"])[0], np.diff(fit.intervals["beta"])[0]) > WIDE_EXPONENT_INTERVAL
    assert fit.lack_of_fit <= fit.noise_scatter     # noise, not lack of fit: more seeds help
    seeds = [s for s in advice.suggestions if "more seeds" in s.runs]
    assert len(seeds) == 1 and "D_T is least certain at D_F =" in seeds[0].why and seeds[0].flops > 0
    assert not any("second seed" in s.runs for s in advice.suggestions)   # noise is measured here


def test_one_seed_asks_for_a_second_and_lack_of_fit_is_a_note_not_a_run():
    advice, fits, _ = advise(make_cpu_runs(seeds=1, loss_noise=0.005, log_noise=0.5, seed=4))
    second = [s for s in advice.suggestions if "second seed" in s.runs]
    assert len(second) == 1 and "estimated" in second[0].why and second[0].flops > 0
    assert fits["text"].lack_of_fit > fits["text"].noise_scatter
    assert not any("more seeds" in s.runs for s in advice.suggestions)
    assert len(advice.notes) == 1 and "lack of fit, not noise" in advice.notes[0] and "predicted worst" in advice.notes[0]


def test_more_fine_tune_seeds_each_pretrain_their_own_model_and_are_costed_with_it():
    # A fine-tune's noise is mostly its pretraining run's (analysis/cpu-finetune-seeds): seeds of one pretraining
    # would narrow little of it, so each suggested seed pretrains its own model, and its cost says so.
    advice, _, results = advise(make_cpu_runs(seeds=3, loss_noise=0.02, seed=3, pretraining=True))
    [seeds] = [s for s in advice.suggestions if "more seeds" in s.runs]
    assert seeds.runs.startswith("fine-tuned from `text`") and "each from its own pretraining run" in seeds.runs
    runs, pre = results.runs, results.pretraining
    tuned = runs[(runs["mode"] == "finetune") & (runs["data_chars"] == 3e5)]
    expected = 2 * sum(row.flops + pre.loc[pre["n_params"] == row.n_params, "flops"].max() for row in tuned.itertuples())
    assert seeds.flops == pytest.approx(expected) and seeds.flops > 2 * tuned["flops"].sum()
