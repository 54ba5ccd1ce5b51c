"""effdata.analysis.core.bootstrap: re-drawn losses, the noise model, re-read D_E and their intervals."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from synthetic import (
    CPU_INSIDE,
    CPU_N,
    CPU_SCRATCH,
    cpu_scratch_loss,
    falling_noise,
    make_cpu_runs,
    transferred,
)

from effdata.analysis.core.bootstrap import (
    attach_intervals,
    d_t_noise,
    draw_losses,
    estimate_noise,
    NOISE_BY_N_LEVEL,
    NoiseModel,
    equal_variances,
    grid_residual_sd,
    noise_by_data,
    noise_by_n,
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


def test_noise_that_falls_with_n_is_measured_per_n_and_lent_to_single_seed_points():
    # Seeds on the from-scratch runs only, as in analysis/cpu-seeds; the noise falls 4x over the ladder.
    truth = falling_noise(0.02, 0.005)
    df = make_cpu_runs(seeds=3, loss_noise=truth, seed=11)
    df = df[(df["mode"] == "scratch") | (df["seed"] == 0)]
    results, effective, noise = analysed(df)
    assert sorted(noise.by_n) == ["finetune", "scratch"] and sorted(noise.by_n["scratch"]) == list(CPU_N)
    # 6 points x 2 degrees of freedom per N: each sigma is uncertain by ~20%; 50% tolerance.
    for n, sd in noise.by_n["scratch"].items():
        assert sd == pytest.approx(truth(n), rel=0.5)
    assert noise.by_n["scratch"][CPU_N[0]] > 2 * noise.by_n["scratch"][CPU_N[-1]]
    # A single-seed fine-tune is re-drawn with its own N's sigma, not the pooled one.
    draws = draw_losses(results, noise, 20_000, np.random.default_rng(3))
    finetune = (results.runs["mode"] == "finetune").to_numpy()
    expected = noise.at("finetune", results.runs["n_params"][finetune]) * results.runs["loss"][finetune]
    np.testing.assert_allclose(draws[:, finetune].std(axis=0), expected, rtol=0.03)
    assert "σ per N" in noise.describe() and "per N" not in estimate_noise(results, effective, per_n=False).describe()


def test_noise_per_n_needs_two_measured_n():
    # Seeds at one N only say nothing about how the noise varies with N: one pooled sigma.
    df = make_cpu_runs(seeds=3, loss_noise=0.01, seed=12)
    df = df[(df["n_params"] == CPU_N[0]) | (df["seed"] == 0)]
    _, _, noise = analysed(df)
    assert noise.by_n == {} and noise.seeded_points["scratch"] == len(CPU_SCRATCH)
    # Given noise replaces the measured noise, per N too.
    _, _, given = analysed(make_cpu_runs(seeds=3, loss_noise=falling_noise(), seed=13), loss_noise=0.01)
    assert given.by_n == {} and given.sigma["scratch"] == 0.01


def test_equal_variances_is_bartletts_test():
    rng = np.random.default_rng(14)
    for spread in (0.0, 0.3, 1.0):
        groups = [rng.normal(0, 1 + spread * i, size=7) for i in range(5)]
        expected = stats.bartlett(*groups).pvalue >= NOISE_BY_N_LEVEL
        assert equal_variances(np.full(5, 6.0), np.array([g.var(ddof=1) for g in groups])) == expected
    assert equal_variances(np.full(3, 2.0), np.zeros(3)) and not equal_variances(np.full(3, 2.0), np.array([0, 1, 1.0]))


@pytest.mark.parametrize("noise, low, high", [(0.01, 0.02, 0.09), (falling_noise(0.02, 0.005), 0.65, 0.87),
                                               (falling_noise(0.02, 0.0025), 0.95, 1.0)])
def test_noise_per_n_false_alarm_rate_and_power(noise, low, high):
    # Seeds as in analysis/cpu-seeds (3 seeds at 3 D per N: 6 degrees of freedom per N). With the same sigma at
    # every N, sigma per N should be chosen at the test's level (5%; 300 tables: sd 1.3%). Measured power: 23%
    # for a 2x fall over the five N, 76% for 4x, 99% for 8x (sd 2.5%; tolerance about 4 sd). cpu-seeds's 4.5x
    # over six N gives p = 0.0004.
    key = ["n_params", "data_chars"]
    chosen = []
    for draw in range(300):
        df = make_cpu_runs(seeds=3, loss_noise=noise, seed=100 + draw)
        scratch = df[(df["mode"] == "scratch") & (df["data_chars"] <= 1e5)]
        chosen.append(bool(noise_by_n(scratch, key)))
    assert low <= np.mean(chosen) <= high


def test_shapes_of_one_size_share_their_noise():
    # The shape study's shapes of one size differ by <= 5% in N: one sigma per size, from both shapes'
    # seeds (2 + 2 degrees of freedom reach MIN_NOISE_DOF only together).
    rows = [{"n_params": n, "data_chars": 1e4, "seed": s, "loss": 5 * (1 + 0.01 * (s - 1) * scale)}
            for n, scale in ((50112, 1), (49860, 1), (200064, 5), (205712, 5)) for s in range(3)]
    by_n = noise_by_n(pd.DataFrame(rows), ["n_params", "data_chars"])
    assert len(by_n) == 2
    (small, small_sd), (large, large_sd) = sorted(by_n.items())
    assert small == pytest.approx(np.sqrt(50112 * 49860)) and large == pytest.approx(np.sqrt(200064 * 205712))
    assert small_sd == pytest.approx(0.01, rel=0.01) and large_sd == pytest.approx(0.05, rel=0.01)
    assert noise_by_n(pd.DataFrame(rows[:6] + rows[6:9]), ["n_params", "data_chars"]) == {}


def test_noise_at_interpolates_in_log_n_and_holds_beyond():
    noise = NoiseModel(sigma={"scratch": 0.5, "finetune": 0.5}, source={"scratch": "", "finetune": ""},
                       by_n={"scratch": {1e4: 0.02, 1e6: 0.01}})
    np.testing.assert_allclose(noise.at("scratch", [1e3, 1e4, 1e5, 1e6, 1e7]), [0.02, 0.02, 0.015, 0.01, 0.01])
    np.testing.assert_allclose(noise.at("finetune", [1e3, 1e6]), [0.5, 0.5])


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


def _seeded_by_data(sigma_of_d, seeded_up_to=np.inf, seed=0):
    """A CPU-shaped table, three seeds of every from-scratch point at D <= seeded_up_to (one seed above and of every
    fine-tune), the from-scratch loss times (1 + sigma_of_d(D) * eps): noise that depends on D alone."""
    df = make_cpu_runs(seeds=3, loss_noise=0.0, seed=seed)
    rng = np.random.default_rng(seed)
    scratch = df["mode"] == "scratch"
    sigma = df.loc[scratch, "data_chars"].map(sigma_of_d).to_numpy(float)
    df.loc[scratch, "loss"] *= 1 + sigma * rng.standard_normal(scratch.sum())
    return load_results(df[(scratch & (df["data_chars"] <= seeded_up_to)) | (df["seed"] == 0)])


def test_noise_by_data_recovers_a_rise_with_d_and_names_the_sizes_without_seeds():
    # 0.25 % at 1e4 rising 4x to 1 % at 1e5 (cpu-replicates: 0.29 % to 0.76 %), seeds at D <= 1e5 only, as cpu-seeds.
    rise = lambda d: 0.0025 * (d / 1e4) ** np.log10(4)  # noqa: E731
    by = noise_by_data(_seeded_by_data(rise, seeded_up_to=1e5), "scratch")
    assert sorted(by.sigma) == [1e4, 3e4, 1e5] and all(dof == 10 for dof in by.dof.values())   # 5 N x 2
    assert by.sigma[1e5] / by.sigma[1e4] > 2 and by.p_value < 0.05
    assert by.unseeded == (3e5, 1e6, 3e6)
    whole = noise_by_data(_seeded_by_data(rise), "scratch")
    assert whole.unseeded == () and len(whole.sigma) == len(CPU_SCRATCH)
    assert noise_by_data(_seeded_by_data(rise), "finetune").sigma == {}   # fine-tunes have one seed here


def test_noise_by_data_false_alarm_rate():
    # One sigma at every D (0.5 %), seeds at 1e4-1e5 (10 degrees of freedom a size): the report's p value falls
    # below 5 % in 5 % of tables (300 tables: sd 1.3 %; measured 5.0 % over 1,000). One noiseless table, its seeds'
    # losses drawn afresh each time (re-drawn on top of a noisy one, the fixed part made the test reject 2.7 %).
    table = _seeded_by_data(lambda d: 0.0, 1e5)
    rng, seed_runs = np.random.default_rng(5), table.seed_runs
    scratch = (seed_runs["mode"] == "scratch").to_numpy()
    alarms = []
    for _ in range(300):
        loss = seed_runs["loss"].to_numpy().copy()
        loss[scratch] *= 1 + 0.005 * rng.standard_normal(scratch.sum())
        redrawn = dataclasses.replace(table, seed_runs=seed_runs.assign(loss=loss))
        alarms.append(noise_by_data(redrawn, "scratch").p_value < 0.05)
    assert 0.01 <= np.mean(alarms) <= 0.10, np.mean(alarms)


def test_the_report_line_names_the_sizes_the_seeds_did_not_measure():
    from effdata.analysis.report import _by_data_lines

    rise = lambda d: 0.0025 * (d / 1e4) ** np.log10(4)  # noqa: E731
    partial = _seeded_by_data(rise, seeded_up_to=1e5)
    [line, blank] = _by_data_lines([noise_by_data(partial, m) for m in ("scratch", "finetune")], "chars")
    assert line.startswith("By data size (chars;") and "no seeds at 3e5, 1e6, 3e6)" in line and blank == ""
    assert _by_data_lines([noise_by_data(load_results(make_cpu_runs(seeds=1)), "scratch")], "chars") == []


def test_noise_given_per_data_size_draws_each_point_with_its_own_sigma():
    # --loss-noise 1e4:0.002,1e6:0.02: a single-seed point at 1e5 is drawn with 0.011 (sigma interpolated in log D, as
    # per N), one beyond the sizes with the nearest's; N plays no part. A point's draws have that relative sd
    # (4,000 draws: ±2 %).
    results = load_results(make_cpu_runs(seeds=1, loss_noise=0.0))
    effective = compute_effective(results)
    noise = estimate_noise(results, effective, {1e4: 0.002, 1e6: 0.02})
    assert noise.by_data == {"scratch": {1e4: 0.002, 1e6: 0.02}, "finetune": {1e4: 0.002, 1e6: 0.02}}
    assert noise.at("scratch", np.array([2e4, 5e5]), np.array([1e5, 3e6])) == pytest.approx([0.011, 0.02])
    assert "σ per data size, 0.2% at D = 1e4, 2% at D = 1e6" in noise.describe()
    draws = draw_losses(results, noise, 4000, np.random.default_rng(0))
    runs = results.runs
    relative_sd = (draws / runs["loss"].to_numpy()).std(axis=0)
    scratch = (runs["mode"] == "scratch").to_numpy()
    expected = noise.at("scratch", runs["n_params"][scratch], runs["data_chars"][scratch])
    assert relative_sd[scratch] == pytest.approx(expected, rel=0.06)
    with pytest.raises(ValueError, match="positive data sizes"):
        analyze_options_check({0.0: 0.01})


def analyze_options_check(loss_noise):
    from effdata.analysis.pipeline import analyze
    analyze(make_cpu_runs(seeds=1), "/nonexistent/never-written", loss_noise=loss_noise)


def test_the_command_line_reads_noise_per_data_size_and_refuses_bad_values(tmp_path, capsys, monkeypatch):
    import effdata.analyze as cli
    from effdata.analysis.report import _sigma_by_n

    with pytest.raises(SystemExit) as stop:
        cli.main([str(tmp_path / "runs.csv"), "--loss-noise", "1e4:0.3,3e5:x"])
    assert stop.value.code == 2 and "SIZE:SIGMA" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([str(tmp_path / "runs.csv"), "--loss-noise", "-1e4:0.01"])
    given = {}
    stub = {"warnings": [], "summary": [], "paths": {"report": "REPORT.md"}}     # what reaches analyze() is the point
    monkeypatch.setattr(cli, "analyze", lambda *args, **kwargs: given.update(kwargs) or stub)
    assert cli.main([str(tmp_path / "runs.csv"), "--loss-noise", "1e4:0.003,3e5:0.011"]) == 0
    assert given["loss_noise"] == {1e4: 0.003, 3e5: 0.011}
    results = load_results(make_cpu_runs(seeds=1, loss_noise=0.0))
    noise = estimate_noise(results, compute_effective(results), given["loss_noise"])
    assert _sigma_by_n(noise, "scratch") == {"sigma_by_data": [{"data": 1e4, "sigma": 0.003},
                                                               {"data": 3e5, "sigma": 0.011}]}
