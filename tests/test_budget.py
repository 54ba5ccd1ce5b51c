"""effdata.analysis.budget.budget: D_T = k·D_F^α·N^β·P^γ fitted back from synthetic studies, the budgets in words, the
fixed-budget check (β − γ) against a fixed-budget table, and `analyze --budget-compare` end to end."""
import json

import numpy as np
import pandas as pd
import pytest
from synthetic import (
    CPU_D_F,
    CPU_N,
    FIXED_TOKENS,
    TRUE_BUDGET,
    make_budget_runs,
    transferred,
)

from effdata.analysis.budget.budget import (
    budget_points,
    compare_budgets,
    fit_budget,
    reading,
    study_budget,
)
from effdata.analysis.core.bootstrap import estimate_noise, resample_effective
from effdata.analysis.core.effective import compute_effective
from effdata.analysis.core.fit import bootstrap_aligned, fit_log_linear, fit_transfer
from effdata.analysis.core.table import load_results
from effdata.analyze import main

FIXED_BETA = TRUE_BUDGET["beta"] - TRUE_BUDGET["gamma"]    # the slope in N under a fixed budget: 0.08
NOISY = {"seeds": 2, "loss_noise": 0.01, "log_noise": 0.1}


def measure(df, n_bootstrap=200, seed=0, role="this table"):
    """A table's StudyBudget, its transfer fits and its γ fits on the resamples of its runs, as analyze does."""
    results = load_results(df)
    effective = compute_effective(results)
    resamples = resample_effective(results, effective, estimate_noise(results, effective), n_bootstrap, seed=seed)
    transfer = {name: fit_transfer(effective.table, name, "chars", seed=seed, draws=resamples.d_t)
                for name in sorted(effective.table["pretrain"].unique())}
    return study_budget(role, role, effective.table, results.pretraining, transfer, "chars", resamples.d_t,
                        seed=seed)


@pytest.fixture(scope="module")
def grown():
    return measure(make_budget_runs(**NOISY, seed=1))


@pytest.fixture(scope="module")
def fixed():
    return measure(make_budget_runs(fixed_tokens=FIXED_TOKENS, own_column=False, **NOISY, seed=2), seed=1,
                   role="compared table")


def test_noiseless_budgets_give_back_beta_and_gamma():
    fit = measure(make_budget_runs(), n_bootstrap=50).fits["text"]
    # The only error is PCHIP interpolation of a Kaplan-shaped curve between half-decade nodes (fit.py: ~2%).
    assert fit.fitted and fit.points == "interpolated" and fit.n_points == 60 and fit.n_distinct_p == 3
    assert fit.names == ("text", "text@10tpp", "text@3tpp") and fit.p_range == pytest.approx((3.0, 30.0), rel=1e-9)
    for name in ("alpha", "beta", "gamma"):
        assert getattr(fit, name) == pytest.approx(TRUE_BUDGET[name], abs=0.01), name
    assert fit.k == pytest.approx(TRUE_BUDGET["k"], rel=0.15)
    assert fit.predict(1e5, 1e5, 30) == pytest.approx(transferred(1e5, 1e5, 8.0, 0.45, 0.38), rel=0.05)


def test_noisy_budgets_are_fitted_back_within_their_intervals(grown):
    fit = grown.fits["text"]
    assert fit.fitted and fit.n_bootstrap_used == 200
    for name in ("alpha", "beta", "gamma"):
        lo, hi = fit.intervals[name]
        assert lo < getattr(fit, name) < hi and lo <= TRUE_BUDGET[name] <= hi, (name, lo, hi)
    # 60 points, 1% loss noise on 2 seeds and scatter 0.1: γ's sampling sd is ~0.03 here; tolerance ~3 sd.
    assert fit.gamma == pytest.approx(TRUE_BUDGET["gamma"], abs=0.1)
    assert reading(fit.intervals["gamma"]) == "positive"


def test_budgets_are_named_from_the_data(grown, fixed):
    assert [(b.pretrain, b.kind, b.label) for b in grown.budgets.values()] == [
        ("text", "per parameter", "30 tokens/parameter"), ("text@10tpp", "per parameter", "10 tokens/parameter"),
        ("text@3tpp", "per parameter", "3 tokens/parameter")]
    (only,) = fixed.budgets.values()
    assert (only.kind, only.label) == ("fixed", "fixed 4 M tokens (157–7.2 tokens/parameter)")
    assert only.p_max == pytest.approx(FIXED_TOKENS / CPU_N[0]) and only.tokens_min == pytest.approx(FIXED_TOKENS)


def test_p_comes_from_the_pretraining_rows_when_the_fine_tunes_lack_it():
    with_column, without = (make_budget_runs(own_column=own) for own in (True, False))
    assert "pretrain_tokens_per_param" not in without
    points = [budget_points(compute_effective(load_results(df)).table, load_results(df).pretraining)
              for df in (with_column, without)]
    np.testing.assert_allclose(points[1]["p"], points[0]["p"], rtol=1e-12)
    assert set(np.round(points[1]["p"], 6)) == {3.0, 10.0, 30.0}
    no_rows = without[without["mode"] != "pretrain"]
    assert budget_points(compute_effective(load_results(no_rows)).table, load_results(no_rows).pretraining)["p"].isna().all()


def test_a_fixed_budget_cannot_tell_gamma_from_beta(fixed):
    fit = fixed.fits["text"]
    assert not fit.fitted and fit.gamma is None and fit.to_dict()["gamma"] is None
    assert "need ≥ 2 N with ≥ 2 pretraining budgets each" in fit.reason and "tied to N" in fit.reason


def test_one_budget_at_a_single_n_is_not_enough():
    df = make_budget_runs()
    # Only the largest N keeps its shorter budgets: γ rests on one N, which cannot separate it from β.
    df = df[~df["pretrain"].str.contains("@") | (df["n_params"] == CPU_N[-1])]
    fit = fit_budget(budget_points(compute_effective(load_results(df)).table, load_results(df).pretraining),
                     "text", "chars", n_bootstrap=20)
    assert not fit.fitted and "(have 1)" in fit.reason


def test_predicted_fixed_budget_beta_matches_the_fixed_budget_table(grown, fixed):
    assert fixed.transfer["text"].beta == pytest.approx(FIXED_BETA, abs=0.1)   # what the identity is checked against
    check = compare_budgets(grown, fixed).checks["text"]
    assert check.reason is None and check.grown == "this table" and check.fixed == "compared table"
    assert (check.reference, check.reference_label) == ("text", "30 tokens/parameter")
    assert check.predicted == pytest.approx(grown.transfer["text"].beta - grown.fits["text"].gamma)
    # Over 20 seeds the prediction ranged from -0.04 to 0.16 (truth 0.08); its interval's coverage: the slow test.
    assert check.predicted == pytest.approx(FIXED_BETA, abs=0.12)
    assert check.predicted_interval[0] < check.predicted < check.predicted_interval[1]
    lo, hi = check.difference_interval
    assert lo < 0 < hi and check.verdict.startswith("consistent")
    # Given the other way round (the fixed budget first), the prediction still comes from the study with γ.
    reverse = compare_budgets(fixed, grown).checks["text"]
    assert (reverse.grown, reverse.fixed) == (grown.role, fixed.role) and reverse.predicted == pytest.approx(check.predicted)


def test_a_check_that_cannot_be_made_says_why(grown):
    check = compare_budgets(grown, grown).checks["text"]
    assert check.predicted is None and "no `text` pretraining under a fixed token budget" in check.reason


def test_bootstrap_rows_stay_aligned_with_their_resamples():
    d_f = np.repeat(np.array(CPU_D_F), 3)
    n = np.tile(np.array(CPU_N[:3]), 4)
    p = np.tile([3.0, 30.0, 10.0], 4) * np.repeat([1.0, 3.0, 1.0, 3.0], 3)
    truth = np.log(2.0) + 0.4 * np.log(d_f) + 0.3 * np.log(n) + 0.2 * np.log(p)
    scale = np.exp(np.linspace(-1, 1, 30))[:, None]
    draws = scale * np.exp(truth)                         # resample b: log k shifted by log scale[b]
    draws[::3, d_f != CPU_D_F[0]] = -1.0                  # every third resample: one D_F left, alpha unidentifiable
    theta, _ = fit_log_linear(d_f, n, np.exp(truth), extra=(p,))
    samples, nonpositive = bootstrap_aligned(d_f, n, draws, theta, 0.1, np.random.default_rng(0), extra=(p,))
    assert samples.shape == (30, 4) and np.isnan(samples[::3]).all()
    kept = np.isfinite(samples).all(axis=1)
    np.testing.assert_allclose(samples[kept, 0], np.log(2.0) + np.log(scale[kept, 0]), atol=1e-6)
    np.testing.assert_allclose(samples[kept, 1:], np.tile([0.4, 0.3, 0.2], (kept.sum(), 1)), atol=1e-6)
    assert nonpositive == pytest.approx(10 * 9 / (30 * 12))


def test_readings_come_from_the_interval_alone():
    assert [reading(i) for i in ([0.1, 0.4], [-0.4, -0.1], [-0.1, 0.4], None, [np.nan, 1.0])] == [
        "positive", "negative", "consistent with zero", "no interval", "no interval"]


@pytest.mark.slow
def test_gamma_interval_covers_the_truth_at_about_the_nominal_rate():
    # 40 noisy studies, 200 resamples each; nominal 90%. Accepted 0.75-1.0: with 40 draws the rate's sd is ~0.05.
    # `fixed β`: β at 30 tokens/parameter − γ, the two paired resample by resample (fixed_budget_check).
    draws, covered, estimates = 40, {"beta": 0, "gamma": 0, "fixed β": 0}, []
    for draw in range(draws):
        study = measure(make_budget_runs(**NOISY, seed=300 + draw), seed=draw)
        fit = study.fits["text"]
        for name in ("beta", "gamma"):
            covered[name] += fit.intervals[name][0] <= TRUE_BUDGET[name] <= fit.intervals[name][1]
        paired = study.transfer["text"].samples[:, 2] - fit.samples[:, 3]
        lo, hi = np.percentile(paired[np.isfinite(paired)], [5, 95])
        covered["fixed β"] += lo <= FIXED_BETA <= hi
        estimates.append(fit.gamma)
    rates = {name: count / draws for name, count in covered.items()}
    print("coverage of the 90% intervals:", rates, "gamma bias:", np.mean(estimates) - TRUE_BUDGET["gamma"])
    assert all(0.75 <= rate <= 1.0 for rate in rates.values()), rates
    assert abs(np.mean(estimates) - TRUE_BUDGET["gamma"]) < 0.03


# --------------------------------------------------------------------------- the command line

@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("budget")
    make_budget_runs(**NOISY, seed=1, target="python").to_csv(root / "grown.csv", index=False)
    make_budget_runs(fixed_tokens=FIXED_TOKENS, own_column=False, **NOISY, seed=2,
                     target="python").to_csv(root / "fixed.csv", index=False)
    return root


def test_cli_budget_compare_writes_the_section_the_figure_and_the_json(tables, capsys):
    out = tables / "out"
    assert main([str(tables / "grown.csv"), "--budget-compare", str(tables / "fixed.csv"), "--bootstrap", "100",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "budget text (this table): gamma=" in printed and "fixed-budget beta text: predicted" in printed
    report = (out / "REPORT.md").read_text()
    assert report.index("## Transfer law") < report.index("## Pretraining budget") < report.index("## Seeds")
    section = report[report.index("## Pretraining budget"):report.index("## Seeds")]
    for budget in ("30 tokens/parameter", "10 tokens/parameter", "3 tokens/parameter",
                   "fixed 4 M tokens (157–7.2 tokens/parameter)"):
        assert f"| `text` | {budget} |" in section
    assert "- `text`, 30 tokens/parameter (this table): β = " in section and "**positive**" in section
    assert "- `text` (compared table): γ not fitted" in section and "| predicted − measured [90%] |" in section
    assert (out / "dt_vs_tpp.png").stat().st_size > 10_000 and (out / "dt_vs_tpp.svg").exists()
    assert "](dt_vs_tpp.png)" in report
    fits = json.loads((out / "fits.json").read_text())["budget"]
    assert [s["role"] for s in fits["studies"]] == ["this table", "compared table"]
    gamma = fits["studies"][0]["fits"]["text"]
    assert gamma["fitted"] and gamma["intervals"]["gamma"][0] < gamma["gamma"] < gamma["intervals"]["gamma"][1]
    assert fits["studies"][1]["budgets"]["text"]["kind"] == "fixed"
    assert fits["fixed_budget_checks"]["text"]["predicted"] == pytest.approx(FIXED_BETA, abs=0.1)


def test_a_table_without_budgets_gets_no_section(tmp_path):
    from synthetic import make_runs
    assert main([*_csv(tmp_path, make_runs(), "plain.csv"), "--bootstrap", "20", "--no-figures",
                 "--out", str(tmp_path / "out")]) == 0
    fits = json.loads((tmp_path / "out" / "fits.json").read_text())
    assert fits["budget"] is None and "## Pretraining budget" not in (tmp_path / "out" / "REPORT.md").read_text()


def _csv(root, df, name):
    df.to_csv(root / name, index=False)
    return [str(root / name)]


def _bad_other(root, case):
    """The --budget-compare table of each bad case (a path)."""
    base = make_budget_runs(fixed_tokens=FIXED_TOKENS, target="python")
    if case == "missing file":
        return root / "absent.csv"
    if case == "unreadable":
        (root / "garbage.parquet").write_bytes(b"not a parquet file")
        return root / "garbage.parquet"
    if case == "no loss column":
        return root / _csv(root, base.drop(columns="loss"), "noloss.csv")[0]
    if case == "another target":
        return root / _csv(root, base.assign(target="javascript"), "js.csv")[0]
    if case == "no fine-tunes":
        return root / _csv(root, base[base["mode"] != "finetune"], "nofinetune.csv")[0]
    raise ValueError(case)


@pytest.mark.parametrize("case, message", [
    ("missing file", "--budget-compare: results table not found"),
    ("unreadable", "--budget-compare: could not read"),
    ("no loss column", "--budget-compare: results table lacks required column(s) ['loss']"),
    ("another target", "a study of target javascript, this table's is python: D_T of different targets do not compare"),
    ("no fine-tunes", "no fine-tuned runs, nothing to compare"),
])
def test_bad_compare_input_is_one_line_exit_2_and_nothing_written(tables, tmp_path, capsys, case, message):
    out = tmp_path / "out"
    assert main([str(tables / "grown.csv"), "--budget-compare", str(_bad_other(tmp_path, case)), "--out",
                 str(out), "--bootstrap", "20"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("effdata.analyze: ") and message in err
    assert not out.exists()


def test_this_table_without_fine_tunes_cannot_be_compared(tables, tmp_path, capsys):
    scratch = pd.read_csv(tables / "grown.csv").query("mode != 'finetune'")
    out = tmp_path / "out"
    assert main([*_csv(tmp_path, scratch, "scratch.csv"), "--budget-compare", str(tables / "fixed.csv"),
                 "--out", str(out)]) == 2
    assert "this table has no fine-tuned runs" in capsys.readouterr().err and not out.exists()
