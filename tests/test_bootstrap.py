"""effdata.analysis.core.bootstrap: re-drawn losses, the noise model, re-read D_E and their intervals."""
import numpy as np
import pandas as pd
import pytest
from synthetic import (
    CPU_INSIDE,
    CPU_N,
    CPU_SCRATCH,
    cpu_scratch_loss,
    make_cpu_runs,
    transferred,
)

from effdata.analysis.core.bootstrap import (
    attach_intervals,
    d_t_noise,
    draw_losses,
    estimate_noise,
    grid_residual_sd,
    resample_effective,
    seed_spread,
)
from effdata.analysis.core.effective import compute_effective
from effdata.analysis.core.table import load_results


def analysed(df, loss_noise=None):
    results = load_results(df)
    effective = compute_effective(results)
    return results, effective, estimate_noise(results, effective, loss_noise)


def test_seed_redraws_have_the_variance_of_a_mean_of_n():
    # Three seeds per point: the plain bootstrap of a mean has variance (n-1)/n * s^2/n; scaled, s^2/n.
    results, effective, noise = analysed(make_cpu_runs(seeds=3, loss_noise=0.01, seed=4))
    draws = draw_losses(results, noise, 20_000, np.random.default_rng(0))
    sd_of_mean = results.runs["loss_std"].to_numpy() / np.sqrt(3)
    np.testing.assert_allclose(draws.mean(axis=0), results.runs["loss"], rtol=2e-4)
    # 20,000 draws: the sd of a draw's sd is ~0.5%; 3% tolerance.
    np.testing.assert_allclose(draws.std(axis=0), sd_of_mean, rtol=0.03)


def test_single_seed_points_are_redrawn_with_the_noise_floor():
    results, effective, noise = analysed(make_cpu_runs(seeds=1, loss_noise=0.0), loss_noise=0.02)
    assert noise.sigma == {"scratch": 0.02, "finetune": 0.02} and "given" in noise.source["scratch"]
    draws = draw_losses(results, noise, 20_000, np.random.default_rng(1))
    np.testing.assert_allclose(draws.std(axis=0), 0.02 * results.runs["loss"], rtol=0.03)


def test_noise_is_measured_from_seeds_and_estimated_from_the_grid_without_them():
    _, _, with_seeds = analysed(make_cpu_runs(seeds=4, loss_noise=0.01, seed=5))
    # 50 grid points x 3 degrees of freedom per mode: the pooled estimate is within ~6% (1 sd); 20% tolerance.
    assert with_seeds.sigma["scratch"] == pytest.approx(0.01, rel=0.2)
    assert with_seeds.sigma["finetune"] == pytest.approx(0.01, rel=0.2)
    assert with_seeds.seeded_points == {"scratch": 30, "finetune": 20}
    _, _, one_seed = analysed(make_cpu_runs(seeds=1, loss_noise=0.01, seed=6))
    assert "from-scratch grid" in one_seed.source["scratch"] and one_seed.seeded_points == {"scratch": 0, "finetune": 0}
    # 12 degrees of freedom: the estimate's sd is ~20%; 50% tolerance.
    assert one_seed.sigma["scratch"] == pytest.approx(0.01, rel=0.5)


def test_grid_residuals_recover_known_noise_and_need_a_complete_grid():
    rng = np.random.default_rng(7)
    estimates = []
    for _ in range(100):
        losses = [cpu_scratch_loss(n, d) * (1 + 0.01 * rng.standard_normal()) for n in CPU_N for d in CPU_SCRATCH]
        grid = pd.DataFrame({"n_params": np.repeat(CPU_N, len(CPU_SCRATCH)), "data_chars": np.tile(CPU_SCRATCH, len(CPU_N)),
                             "loss": losses})
        estimates.append(grid_residual_sd(grid, "data_chars")[0])
    # Measured: 0.99% for 1% (the Kaplan surface's own curvature adds 0.08%); tolerance 5% on the rms.
    assert np.sqrt(np.mean(np.square(estimates))) == pytest.approx(0.01, rel=0.05)
    assert grid_residual_sd(grid.iloc[1:], "data_chars") == (pytest.approx(np.nan, nan_ok=True), 0)


def test_without_noise_every_resample_reads_the_estimate_exactly():
    # The estimate and its resamples share one code path (curves.py): with sigma 0 they must agree.
    df = make_cpu_runs(seeds=1, loss_noise=0.0)
    results, effective, _ = analysed(df, loss_noise=0.0)
    draws = resample_effective(results, effective, estimate_noise(results, effective, 0.0), 5, seed=0)
    table = effective.table
    np.testing.assert_allclose(draws.d_e, np.tile(table["d_e"], (5, 1)), rtol=1e-9)
    np.testing.assert_allclose(draws.d_t_scratch_only, draws.d_t, rtol=1e-9)


def test_per_point_intervals_hold_the_truth_and_bracket_the_estimate():
    df = make_cpu_runs(seeds=3, loss_noise=0.01, seed=8)
    results, effective, noise = analysed(df)
    draws = resample_effective(results, effective, noise, 500, seed=1)
    attach_intervals(effective.table, draws)
    table = effective.table
    assert (table["d_e_lo"] <= table["d_e"]).all() and (table["d_e"] <= table["d_e_hi"]).all()
    np.testing.assert_allclose(table["d_t_hi"] - table["d_t_lo"], table["d_e_hi"] - table["d_e_lo"])
    truth = transferred(table["d_f"], table["n_params"], **CPU_INSIDE)
    held = ((table["d_t_lo"] <= truth) & (truth <= table["d_t_hi"])).mean()
    # Nominal 90%; measured 0.80-0.85 over 200 draws (the spread of 3 seeds is itself uncertain, see
    # docs/notes/issue-11.md). One draw of 20 points: sd ~0.08; accepted from 0.6.
    assert held >= 0.6


def test_seed_spread_is_the_pooled_sd_per_mode_and_n():
    df = make_cpu_runs(seeds=2, loss_noise=0.0)
    df.loc[df["seed"] == 1, "loss"] += 0.02          # every pair differs by 0.02: sd = 0.02 / sqrt(2)
    spread = seed_spread(load_results(df))
    assert len(spread) == 2 * len(CPU_N) and (spread["seeds"] == 2).all()
    np.testing.assert_allclose(spread["sd"], 0.02 / np.sqrt(2))
    single = seed_spread(load_results(make_cpu_runs(seeds=1)))
    assert (single["seeded_points"] == 0).all() and single["sd"].isna().all()


def test_d_t_noise_splits_the_variance_between_the_curves():
    # Noise only on the from-scratch runs: the from-scratch curve carries all of D_T's variance.
    df = make_cpu_runs(seeds=3, loss_noise=0.01, seed=9)
    df.loc[df["mode"] == "finetune", "loss"] = df.loc[df["mode"] == "finetune"].groupby(
        ["n_params", "data_chars"])["loss"].transform("mean")
    results, effective, noise = analysed(df)
    assert noise.sigma["finetune"] == 0
    draws = resample_effective(results, effective, noise, 300, seed=2)
    attach_intervals(effective.table, draws)
    summary = d_t_noise(effective.table, draws)
    np.testing.assert_allclose(summary["scratch_share"], 1.0)
    assert (summary["half_width"] > 0).all() and list(summary["points"]) == [5, 5, 5, 5]
