"""effdata.analysis.core.fit and .scaling: recovering known k, alpha, beta and Kaplan exponents; intervals; bad input."""
import numpy as np
import pandas as pd
import pytest
from scipy.special import huber
from synthetic import (
    CPU_BEYOND,
    CPU_INSIDE,
    TRUE_CODE,
    TRUE_TEXT,
    make_cpu_runs,
    make_runs,
    transferred,
)

from effdata.analysis.core.bootstrap import estimate_noise, resample_effective
from effdata.analysis.core.effective import compute_effective
from effdata.analysis.core.fit import (
    _LogLinearDesign,
    bootstrap_aligned,
    fit_log_linear,
    fit_transfer,
    huber_irls,
    lack_of_fit,
    nice_ceiling,
)
from effdata.analysis.core.table import load_results
from effdata.analysis.laws.scaling import fit_kaplan, kaplan_loss

EIGHT_D_F = tuple(np.geomspace(1e5, 1e7, 8))


def transfer_fit(df, pretrain="text", **kwargs):
    return fit_transfer(compute_effective(load_results(df)).table, pretrain, "chars", **kwargs)


def test_noiseless_recovery_is_tight():
    fits = {name: transfer_fit(make_runs({"text": TRUE_TEXT, "text+code": TRUE_CODE}), name, n_bootstrap=100)
            for name in ("text", "text+code")}
    for name, truth in (("text", TRUE_TEXT), ("text+code", TRUE_CODE)):
        fit = fits[name]
        # Tolerances: the only error is PCHIP interpolation (< 0.1% in D_T).
        assert fit.fitted and fit.regime == "low_data"
        assert fit.alpha == pytest.approx(truth["alpha"], abs=2e-3)
        assert fit.beta == pytest.approx(truth["beta"], abs=2e-3)
        assert fit.k == pytest.approx(truth["k"], rel=0.03)
        assert fit.r2_log > 0.999 and fit.rmse_log < 1e-2
        assert fit.heldout["n_params"].error_factor < 1.01 and fit.heldout["d_f"].error_factor < 1.01


def test_noisy_recovery_within_stated_tolerance():
    # 40 points, log-normal noise sigma = 0.3 on D_T: the sampling sd of alpha and beta is ~0.03-0.04
    # (measured over 200 draws: alpha 0.040, beta 0.030), of log k ~0.7. Tolerances: about 3 sd.
    fit = transfer_fit(make_runs(log_noise=0.3, seed=7, d_f_values=EIGHT_D_F), n_bootstrap=500)
    assert fit.alpha == pytest.approx(TRUE_TEXT["alpha"], abs=0.11)
    assert fit.beta == pytest.approx(TRUE_TEXT["beta"], abs=0.11)
    assert abs(np.log(fit.k / TRUE_TEXT["k"])) < 2.1
    lo, hi = fit.intervals["alpha"]
    assert lo < fit.alpha < hi and fit.n_bootstrap_used == 500


def test_lbfgs_and_irls_reach_the_same_minimum():
    rng = np.random.default_rng(3)
    d_f = np.repeat(np.geomspace(1e5, 1e7, 6), 5)
    n = np.tile(np.geomspace(1e5, 1e7, 5), 6)
    d_t = transferred(d_f, n, **TRUE_TEXT) * np.exp(0.5 * rng.standard_normal(len(d_f)))
    d_t[0] *= 1e3                                    # an outlier: Huber must not chase it
    for delta in (1e-3, 0.1, 1.0):
        theta, value = fit_log_linear(d_f, n, d_t, delta)
        design = _LogLinearDesign(d_f, n)
        irls = design.to_natural(huber_irls(design.matrix[None], np.log(d_t)[None], delta, np.zeros((1, 3)))[0])
        np.testing.assert_allclose(theta, irls, atol=1e-4)
        # Summed (not averaged) loss at the returned optimum.
        residual = np.log(d_t) - (theta[0] + theta[1] * np.log(d_f) + theta[2] * np.log(n))
        assert value == pytest.approx(huber(delta, residual).sum(), rel=1e-9)
    assert theta[1] == pytest.approx(TRUE_TEXT["alpha"], abs=0.15)


def test_bootstrap_drops_unidentifiable_resamples():
    d_f = np.array([1e5, 1e6, 1e5, 1e6, 1e5])
    n = np.array([1e5, 1e5, 1e6, 1e6, 1e7])
    d_t = transferred(d_f, n, **TRUE_TEXT)
    theta, _ = fit_log_linear(d_f, n, d_t)
    draws = np.tile(d_t, (300, 1))
    draws[::3, d_f == 1e6] = -1.0           # every third resample: only D_F = 1e5 left, alpha unidentifiable
    aligned, nonpositive = bootstrap_aligned(d_f, n, draws, theta, 0.1, np.random.default_rng(0))
    assert np.isnan(aligned[::3]).all()                                    # row b stays resample b
    samples = aligned[np.isfinite(aligned).all(axis=1)]
    assert len(samples) == 200 and nonpositive == pytest.approx(2 / 15)
    np.testing.assert_allclose(np.median(samples, axis=0), theta, atol=1e-6)


def test_bootstrap_leaves_nonpositive_draws_out_of_their_resample():
    d_f = np.repeat(np.geomspace(1e5, 1e7, 4), 4)
    n = np.tile(np.geomspace(1e5, 1e7, 4), 4)
    d_t = transferred(d_f, n, **TRUE_TEXT)
    draws = np.tile(d_t, (200, 1))
    draws[:, 0] = -1.0                       # one point ossified in every resample: as if it were absent
    theta, _ = fit_log_linear(d_f, n, d_t)
    samples, nonpositive = bootstrap_aligned(d_f, n, draws, theta, 0.1, np.random.default_rng(0))
    assert nonpositive == pytest.approx(1 / 16)
    np.testing.assert_allclose(samples, np.tile(theta, (len(samples), 1)), atol=1e-6)


def test_too_few_points_is_not_fitted_with_a_reason():
    df = make_runs(n_values=(1e5, 1e6), d_f_values=(1e5, 1e6))
    warnings = []
    fit = fit_transfer(compute_effective(load_results(df)).table, "text", "chars", warnings=warnings)
    assert not fit.fitted and fit.k is None
    assert fit.reason == "not fitted: need ≥ 5 points with D_T > 0 (have 4)"
    assert any("need ≥ 5 points" in w for w in warnings)
    assert fit.to_dict()["k"] is None


def test_single_n_is_not_fitted():
    fit = transfer_fit(make_runs(n_values=(1e6,), d_f_values=EIGHT_D_F))
    assert not fit.fitted and "2 distinct N" in fit.reason


def test_falls_back_to_all_points_outside_low_data_with_a_warning():
    eff = compute_effective(load_results(make_runs())).table.copy()
    eff["low_data"] = False
    warnings = []
    fit = fit_transfer(eff, "text", "chars", n_bootstrap=50, warnings=warnings)
    assert fit.fitted and fit.regime == "all_positive"
    assert any("low-data regime" in w for w in warnings)


def test_ossified_points_are_counted_not_fitted():
    df = make_runs()
    last = df.index[df["mode"] == "finetune"][-1]
    df.loc[last, "loss"] += 0.5
    fit = transfer_fit(df, n_bootstrap=50)
    assert fit.n_ossified == 1 and fit.n_points == 24
    assert fit.alpha == pytest.approx(TRUE_TEXT["alpha"], abs=2e-3)


def test_kaplan_exponents_recovered_from_exact_law():
    alpha_n, alpha_d, log_n_c, log_d_c = 0.076, 0.103, np.log(6.4e13), np.log(1.8e13)
    n, d = np.meshgrid(np.geomspace(1e5, 1e9, 6), np.geomspace(1e6, 1e11, 8))
    scratch = pd.DataFrame({"pretrain": "none", "n_params": n.ravel(), "data_tokens": d.ravel(),
                            "loss": kaplan_loss(np.log(n.ravel()), np.log(d.ravel()), alpha_n, alpha_d,
                                                log_n_c, log_d_c)})
    fit = fit_kaplan(scratch, n_bootstrap=50)
    assert fit.fitted and fit.units == "tokens"
    assert fit.alpha_n == pytest.approx(alpha_n, abs=2e-3)
    assert fit.alpha_d == pytest.approx(alpha_d, abs=2e-3)
    assert fit.ratio == pytest.approx(alpha_n / alpha_d, abs=0.02)
    assert set(fit.intervals) == {"alpha_n", "alpha_d", "ratio"}


def test_kaplan_needs_enough_points():
    scratch = make_runs().query("mode == 'scratch'").head(3)
    fit = fit_kaplan(scratch)
    assert not fit.fitted and "need ≥ 6" in fit.reason


@pytest.mark.slow
def test_bootstrap_intervals_cover_the_truth_at_about_the_nominal_rate():
    # 60 noisy draws, 200 resamples each; nominal 90% (5th-95th percentile). Accepted band 0.75-1.0
    # for alpha and beta: with 60 draws the rate's sampling sd is ~0.04.
    covered = {"alpha": 0, "beta": 0}
    draws = 60
    for draw in range(draws):
        fit = transfer_fit(make_runs(log_noise=0.3, seed=100 + draw, d_f_values=EIGHT_D_F),
                           n_bootstrap=200, seed=draw)
        for name in covered:
            lo, hi = fit.intervals[name]
            covered[name] += lo <= TRUE_TEXT[name] <= hi
    rates = {name: count / draws for name, count in covered.items()}
    print("coverage of the 90% intervals:", rates)
    assert all(0.75 <= rate <= 1.0 for rate in rates.values()), rates


def cpu_fit(law, seeds=1, loss_noise=0.0, seed=0, n_bootstrap=200, log_noise=0.0):
    """The headline fit of a CPU-shaped study, with the bootstrap over runs."""
    results = load_results(make_cpu_runs({"text": law}, seeds=seeds, loss_noise=loss_noise, log_noise=log_noise, seed=seed))
    effective = compute_effective(results)
    draws = resample_effective(results, effective, estimate_noise(results, effective), n_bootstrap, seed=seed)
    return fit_transfer(effective.table, "text", "chars", seed=seed, draws=draws.d_t), effective.table


def test_headline_is_withheld_when_most_d_e_are_extrapolated_and_says_which_runs_fix_it():
    fit, table = cpu_fit(CPU_BEYOND)
    inside = int((~table["extrapolated"]).sum())
    assert inside == 6 and not fit.fitted and fit.k is None
    assert f"only {inside} of 20 points have D_E inside the measured from-scratch range" in fit.reason
    sensitivity = fit.including_extrapolated
    assert sensitivity.fitted and sensitivity.n_extrapolated == 14 and sensitivity.points == "including extrapolated"
    # The bias the headline rule avoids: no noise, yet alpha comes out 0.30 for a true 0.45.
    assert sensitivity.alpha < CPU_BEYOND["alpha"] - 0.1
    assert [need["n_params"] for need in fit.scratch_runs_needed] == sorted(table["n_params"].unique())
    for need in fit.scratch_runs_needed:   # each suggested run reaches the true D_E of the lowest loss
        true_d_e = need["d_f"] + transferred(need["d_f"], need["n_params"], **CPU_BEYOND)
        assert need["d_scratch_max"] == 3e6 and need["suggested"] >= true_d_e > need["d_scratch_max"]
    assert fit.to_dict()["including_extrapolated"]["alpha"] == pytest.approx(sensitivity.alpha)


def test_headline_uses_interpolated_points_and_the_extrapolated_ones_only_beside_it():
    inside, _ = cpu_fit(CPU_INSIDE)
    assert inside.fitted and inside.including_extrapolated is None and inside.scratch_runs_needed == []
    # Noiseless: PCHIP between half-decade nodes of a Kaplan curve reads D_T within ~2%.
    assert inside.alpha == pytest.approx(CPU_INSIDE["alpha"], abs=0.01)
    assert inside.beta == pytest.approx(CPU_INSIDE["beta"], abs=0.01)
    middle, table = cpu_fit({**CPU_INSIDE, "k": 100.0})
    extrapolated = int(table["extrapolated"].sum())
    assert 0 < extrapolated < 10
    assert middle.fitted and middle.n_points == 20 - extrapolated and middle.n_extrapolated == 0
    assert middle.including_extrapolated.n_points == 20 and middle.including_extrapolated.n_extrapolated == extrapolated


def test_lack_of_fit_recovers_the_scatter_beyond_the_noise():
    rng = np.random.default_rng(11)
    d_f = np.tile(np.geomspace(1e4, 1e6, 20), 20)
    n = np.repeat(np.geomspace(1e5, 1e7, 20), 20)
    log_d_t = np.log(transferred(d_f, n, **TRUE_TEXT)) + 0.3 * rng.standard_normal(400)
    measured = log_d_t + 0.1 * rng.standard_normal(400)                  # what the runs' noise adds
    theta, _ = fit_log_linear(d_f, n, np.exp(measured))
    residual = measured - (theta[0] + theta[1] * np.log(d_f) + theta[2] * np.log(n))
    draws = measured + 0.1 * rng.standard_normal((400, 400))               # the resamples' noise
    tau, noise = lack_of_fit(d_f, n, residual, draws)
    # 400 points: tau's sampling sd is ~0.015; tolerance 0.05.
    assert tau == pytest.approx(0.3, abs=0.05) and noise == pytest.approx(0.1, rel=0.1)
    draws[:, 0] = np.where(rng.random(400) < 0.2, np.nan, draws[:, 0])   # a point noise can ossify
    residual[0] += 5.0                                                     # and that lies far off
    assert lack_of_fit(d_f, n, residual, draws)[0] == pytest.approx(tau, abs=0.01)
    assert lack_of_fit(d_f, n, residual, np.tile(measured, (50, 1)))[1] == 0.0   # fixed D_T: no noise


def test_nice_ceiling_rounds_up_to_a_study_size():
    assert [nice_ceiling(x) for x in (7.3e6, 3e6, 2.1e5, 1.0, 4.9)] == [1e7, 3e6, 3e5, 1.0, 5.0]


@pytest.mark.slow
def test_intervals_over_runs_cover_the_truth_on_noisy_cpu_shaped_studies():
    # 3 seeds, 1% loss noise per run on both curves and scatter 0.1 about the law; 40 draws, 200
    # resamples each. Nominal 90%; benchmarks/coverage_analysis.py measures 0.89-0.98 over 200 draws.
    # Accepted from 0.75: with 40 draws the rate's sd is ~0.05. The previous bootstrap (fine-tuned points
    # over a fixed from-scratch curve) measured beta 0.79 over 100 draws without scatter.
    draws, truth = 40, {"alpha": CPU_INSIDE["alpha"], "beta": CPU_INSIDE["beta"], "k": CPU_INSIDE["k"]}
    covered, estimates, widths = dict.fromkeys(truth, 0), [], []
    for draw in range(draws):
        fit, _ = cpu_fit(CPU_INSIDE, seeds=3, loss_noise=0.01, log_noise=0.1, seed=100 + draw)
        for name in truth:
            covered[name] += fit.intervals[name][0] <= truth[name] <= fit.intervals[name][1]
        estimates.append([fit.alpha, fit.beta])
        widths.append(fit.intervals["alpha"][1] - fit.intervals["alpha"][0])
    rates = {name: count / draws for name, count in covered.items()}
    bias = np.mean(estimates, axis=0) - [truth["alpha"], truth["beta"]]
    print("coverage of the 90% intervals:", rates, "bias:", bias, "median alpha width:", np.median(widths))
    assert all(rate >= 0.75 for rate in rates.values()), rates
    # |bias| < 0.02 (issue 11); with 40 draws the mean's sd is ~0.007.
    assert np.all(np.abs(bias) < 0.02), bias
    # Not wider than needed: the sampling sd of alpha is ~0.04 here, so a 90% interval ~0.13 wide.
    assert np.median(widths) < 0.25
