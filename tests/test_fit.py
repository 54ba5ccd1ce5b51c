"""effdata.analysis.fit and .scaling: recovering known k, alpha, beta and Kaplan exponents; intervals; bad input."""
import numpy as np
import pandas as pd
import pytest

from effdata.analysis.effective import compute_effective
from scipy.special import huber

from effdata.analysis.fit import bootstrap_log_linear, fit_log_linear, fit_transfer, huber_irls, _LogLinearDesign
from effdata.analysis.scaling import fit_kaplan, kaplan_loss
from effdata.analysis.table import load_results
from synthetic import TRUE_CODE, TRUE_TEXT, make_runs, transferred

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
    samples, nonpositive = bootstrap_log_linear(d_f, n, draws, theta, 0.1, np.random.default_rng(0))
    assert len(samples) == 200 and nonpositive == pytest.approx(2 / 15)
    np.testing.assert_allclose(np.median(samples, axis=0), theta, atol=1e-6)


def test_bootstrap_leaves_nonpositive_draws_out_of_their_resample():
    d_f = np.repeat(np.geomspace(1e5, 1e7, 4), 4)
    n = np.tile(np.geomspace(1e5, 1e7, 4), 4)
    d_t = transferred(d_f, n, **TRUE_TEXT)
    draws = np.tile(d_t, (200, 1))
    draws[:, 0] = -1.0                       # one point ossified in every resample: as if it were absent
    theta, _ = fit_log_linear(d_f, n, d_t)
    samples, nonpositive = bootstrap_log_linear(d_f, n, draws, theta, 0.1, np.random.default_rng(0))
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
