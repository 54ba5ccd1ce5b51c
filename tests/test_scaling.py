"""effdata.analysis.laws.scaling: the Chinchilla form recovered from known laws, its solver, intervals; Kaplan's ranges."""
import numpy as np
import pytest
from scipy.special import huber
from synthetic import CHARS_PER_TOKEN, TRUE_SCRATCH, scratch_runs

from effdata.analysis.laws.scaling import (
    ScratchPoints,
    StartGrid,
    bootstrap_chinchilla,
    fit_chinchilla,
    fit_kaplan,
    natural_parameters,
    polish_lbfgs,
    solve_batched,
)

TRUE_A_OPT = TRUE_SCRATCH["beta"] / (TRUE_SCRATCH["alpha"] + TRUE_SCRATCH["beta"])
# 3 x 3 x 3 x 2 x 2 = 108 starts: enough on these smooth synthetic tables (the full grid finds the same optimum,
# checked in test_coarse_grid_finds_the_full_grids_optimum), 40x cheaper for the many fits of the slow test.
COARSE = StartGrid(a=(0, 5, 10), b=(0, 5, 10), e=(-1, 0, 1), alpha=(0.5, 1), beta=(0.5, 1))


def test_exact_law_is_recovered_to_rounding():
    fit = fit_chinchilla(scratch_runs(), "chars", n_bootstrap=0)
    assert fit.fitted and fit.units == "chars" and fit.n_starts == 4500
    for name in ("E", "A", "B", "alpha", "beta"):
        assert getattr(fit, name) == pytest.approx(TRUE_SCRATCH[name], rel=1e-6), name
    assert fit.n_opt_exponent == pytest.approx(TRUE_A_OPT, rel=1e-6)
    assert fit.n_opt_exponent + fit.d_opt_exponent == pytest.approx(1.0)
    assert fit.goodness.rmse_log < 1e-9 and fit.goodness.heldout_rmse_log < 1e-6 and fit.goodness.heldout_folds == 5
    assert fit.n_range == pytest.approx([1e5, 1e7]) and fit.d_range == pytest.approx([1e5, 3e9])
    assert fit.chars_per_token == pytest.approx(CHARS_PER_TOKEN)


def test_noisy_law_within_stated_tolerance_and_inside_its_interval():
    # 80 points, 1% log-normal noise on the loss. Sampling sd over 100 draws (benchmarks/bench_chinchilla.py):
    # E 0.048, log A 0.12, log B 0.053, alpha 0.013, beta 0.0044. Tolerances: about 4 sd.
    fit = fit_chinchilla(scratch_runs(log_noise=0.01, seed=3), "chars", n_bootstrap=100, seed=3)
    assert fit.E == pytest.approx(TRUE_SCRATCH["E"], abs=0.2)
    assert np.log(fit.A / TRUE_SCRATCH["A"]) == pytest.approx(0, abs=0.5)
    assert np.log(fit.B / TRUE_SCRATCH["B"]) == pytest.approx(0, abs=0.21)
    assert fit.alpha == pytest.approx(TRUE_SCRATCH["alpha"], abs=0.05)
    assert fit.beta == pytest.approx(TRUE_SCRATCH["beta"], abs=0.018)
    assert fit.n_opt_exponent == pytest.approx(TRUE_A_OPT, abs=0.055)
    for name in ("E", "A", "B", "alpha", "beta", "n_opt_exponent", "d_opt_exponent"):
        lo, hi = fit.intervals[name]
        assert lo <= getattr(fit, name) <= hi, name
    assert fit.n_bootstrap_used == 100


def test_tokens_give_the_same_exponents_and_a_rescaled_b():
    chars = fit_chinchilla(scratch_runs(), "chars", n_bootstrap=0, grid=COARSE)
    tokens = fit_chinchilla(scratch_runs(), "tokens", n_bootstrap=0, grid=COARSE)
    assert tokens.units == "tokens" and tokens.d_range == pytest.approx([1e5 / CHARS_PER_TOKEN, 3e9 / CHARS_PER_TOKEN])
    assert tokens.beta == pytest.approx(chars.beta, rel=1e-6) and tokens.alpha == pytest.approx(chars.alpha, rel=1e-6)
    # B / D_chars^beta = B CPT^-beta / D_tokens^beta
    assert tokens.B == pytest.approx(chars.B * CHARS_PER_TOKEN ** -chars.beta, rel=1e-5)


def test_batched_search_is_at_least_as_good_as_scipy_lbfgs_from_random_grid_starts():
    points = ScratchPoints.from_frame(scratch_runs(log_noise=0.02, seed=5), "chars")
    x, y, t = points.log_n, points.log_d, points.log_loss
    grid = StartGrid().points()
    theta, value = solve_batched(x[None], y[None], t[None], grid)
    rng = np.random.default_rng(0)
    scipy_best = min(polish_lbfgs(grid[i], x, y, t)[1] for i in rng.choice(len(grid), 20, replace=False))
    assert value.min() <= scipy_best * (1 + 1e-9)
    # The objective is the *summed* Huber loss (delta 1e-3) of the log-loss residuals.
    a, b, e, alpha, beta = theta[np.argmin(value)]
    residual = np.log(np.exp(a - alpha * x) + np.exp(b - beta * y) + np.exp(e)) - t
    assert value.min() == pytest.approx(huber(1e-3, residual).sum(), rel=1e-9)


def test_solver_never_raises_the_objective_from_any_start():
    points = ScratchPoints.from_frame(scratch_runs(log_noise=0.02, seed=6), "chars")
    grid = StartGrid().points()[::37]
    start_residual = np.log(np.exp(grid[:, [0]] - grid[:, [3]] * points.log_n)
                            + np.exp(grid[:, [1]] - grid[:, [4]] * points.log_d) + np.exp(grid[:, [2]])) - points.log_loss
    _, value = solve_batched(points.log_n[None], points.log_d[None], points.log_loss[None], grid)
    assert np.all(value <= huber(1e-3, start_residual).sum(axis=1) + 1e-15)


def test_coarse_grid_finds_the_full_grids_optimum():
    df = scratch_runs(log_noise=0.01, seed=11)
    full, coarse = fit_chinchilla(df, n_bootstrap=0), fit_chinchilla(df, n_bootstrap=0, grid=COARSE)
    assert coarse.objective == pytest.approx(full.objective, rel=1e-6)


def test_bootstrap_drops_resamples_with_one_n_or_one_d():
    points = ScratchPoints.from_frame(scratch_runs(n_values=(1e5, 1e7), d_values=(1e5, 1e7, 1e9), log_noise=0.01), "chars")
    law = TRUE_SCRATCH
    restarts = np.array([[np.log(law["A"]), np.log(law["B"]), np.log(law["E"]), law["alpha"], law["beta"]]])
    samples = bootstrap_chinchilla(points, restarts, 400, 1e-3, np.random.default_rng(0))
    assert 300 < len(samples) < 400        # with 6 points, 2 N: P(one N only) = 2 (1/2)^6 = 3%, P(one D) < 1%


def test_too_few_points_is_not_fitted_with_a_reason():
    warnings = []
    fit = fit_chinchilla(scratch_runs(n_values=(1e5, 1e6), d_values=(1e5, 1e6, 1e7)), warnings=warnings)
    assert not fit.fitted and fit.E is None
    assert fit.reason == "not fitted: need ≥ 7 from-scratch points over ≥ 2 N and ≥ 2 D (have 6 points, 2 N, 3 D)"
    assert warnings == [f"Chinchilla L(N, D): {fit.reason}"]
    assert fit.to_dict()["alpha"] is None and fit.to_dict()["fitted"] is False


def test_a_law_that_does_not_fall_with_n_is_said():
    df = scratch_runs(law={**TRUE_SCRATCH, "A": 0.0}, log_noise=0.01, seed=2)   # loss flat in N
    df.loc[df["n_params"] == df["n_params"].max(), "loss"] *= 1.05              # and worse at the largest N
    warnings = []
    fit = fit_chinchilla(df, n_bootstrap=0, warnings=warnings, grid=COARSE)
    assert fit.fitted and fit.alpha <= 0
    assert any("non-positive exponent" in w for w in warnings)


def test_natural_parameters_and_allocation():
    row = natural_parameters(np.array([np.log(406.4), np.log(410.7), np.log(1.69), 0.34, 0.28]))
    np.testing.assert_allclose(row, [1.69, 406.4, 410.7, 0.34, 0.28, 0.28 / 0.62, 0.34 / 0.62])


def test_kaplan_records_where_it_was_fitted_and_its_goodness():
    fit = fit_kaplan(scratch_runs(log_noise=0.01), n_bootstrap=20)
    assert fit.units == "tokens" and fit.chars_per_token == pytest.approx(CHARS_PER_TOKEN)
    assert fit.n_range == pytest.approx([1e5, 1e7]) and fit.d_range == pytest.approx([1e5 / 3.5, 3e9 / 3.5])
    assert 0 < fit.goodness.rmse_log < fit.goodness.heldout_rmse_log and fit.goodness.heldout_folds == 5


@pytest.mark.slow
def test_bootstrap_intervals_cover_the_truth_at_about_the_nominal_rate():
    # 40 noisy tables (1% noise), 100 resamples each, nominal 90%. Accepted 0.75-1.0 (the rate's sampling sd
    # is ~0.05 with 40 draws). Measured with the full grid over 100 draws and 200 resamples: E 0.96, A 0.96,
    # B 0.92, alpha 0.96, beta 0.94, a 0.95.
    names = ("E", "alpha", "beta", "n_opt_exponent")
    truth = {**TRUE_SCRATCH, "n_opt_exponent": TRUE_A_OPT}
    covered = dict.fromkeys(names, 0)
    draws = 40
    for draw in range(draws):
        fit = fit_chinchilla(scratch_runs(log_noise=0.01, seed=200 + draw), n_bootstrap=100, seed=draw, grid=COARSE)
        for name in names:
            lo, hi = fit.intervals[name]
            covered[name] += lo <= truth[name] <= hi
    rates = {name: count / draws for name, count in covered.items()}
    print("coverage of the 90% intervals:", rates)
    assert all(0.75 <= rate <= 1.0 for rate in rates.values()), rates
