"""Training dynamics: the curve table (written by the store, read by the analysis), L(N, S) fitted back
from curves drawn from a known law, forecasts of a run's best loss from its early curve."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from effdata.analysis.core.table import TableError
from effdata.analysis.dynamics.answers import frontier, law_steps, steps_for
from effdata.analysis.dynamics.forecast import forecast_runs
from effdata.analysis.dynamics.history import load_curves
from effdata.analysis.dynamics.law import (
    LearningCurveFit,
    fit_learning_curve,
    law_loss,
    law_points,
    law_points_min,
)
from effdata.analysis.dynamics.noise import NoiseScaleFit, fit_critical_batch
from effdata.study.store import Store
from effdata.study.study import study_from_dict, study_runs
from effdata.training.curve import curve_point

TRUTH = {"alpha_n": 0.3, "alpha_s": 0.7, "log_a": np.log(40.0), "log_b": np.log(60.0)}
SIZES = (2.5e4, 5e4, 1e5, 2e5, 4e5)


def synthetic_curves(seed: int = 0, noise: float = 0.005, run_noise: float = 0.005, seeds: int = 2,
                     steps: int = 2000, evals: int = 20, warmup: int = 50) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results rows, curve rows) of from-scratch runs whose held-out loss follows TRUTH's L(N, S), times a
    per-run offset (a seed's) and per-evaluation noise, both log-normal."""
    rng = np.random.default_rng(seed)
    results, curves = [], []
    for n in SIZES:
        for s in range(seeds):
            run_id = f"scratch-{int(n)}-s{s}"
            step = np.linspace(0, steps, evals + 1).astype(int)
            loss = law_loss(n, np.maximum(step, 1), **TRUTH) * np.exp(rng.normal(0, run_noise))
            loss = loss * np.exp(rng.normal(0, noise, len(step)))
            curves += [{"run_id": run_id, "step": int(k), "tokens": int(k) * 16 * 128, "lr": 1e-3,
                        "train_loss": float(v), "valid_loss": float(v)} for k, v in zip(step, loss)]
            results.append({"run_id": run_id, "status": "ok", "mode": "scratch", "pretrain": "none",
                            "n_params": n, "seed": s, "data_tokens": 1e7, "loss": float(loss.min()),
                            "batch_size": 16, "warmup_steps": warmup, "total_steps": steps})
    return pd.DataFrame(results), pd.DataFrame(curves)


# --------------------------------------------------------------------------- the curve table

STUDY = {"name": "t", "sizes": ["n25k", "n50k"], "scratch": {"data_chars": [1e4, 2e4]},
         "finetune": {"data_chars": [1e4]}, "pretrain": {"corpora": ["text"]}}


def test_the_store_writes_every_ok_runs_curve_beside_the_results_and_the_analysis_reads_it(tmp_path):
    new, old, failed = [r for r in study_runs(study_from_dict(STUDY)) if r.mode == "scratch"][:3]
    store = Store(tmp_path)
    curve = [curve_point(0, 0, 0.0, float("nan"), 7.5), curve_point(10, 20480, 1e-3, 6.0, None),
             curve_point(20, 40960, 5e-4, 5.5, 5.2, b_simple=123.4)]
    store.write_record(new, "ok", metrics={"n_params": 25_000, "loss": 5.2, "curve": curve})
    # A record from before curves were kept: its `evals`, tokens from its tokens per step.
    store.write_record(old, "ok", metrics={"n_params": 50_000, "loss": 5.0, "evals": [[0, 7.4], [16, 5.0]],
                                           "steps": 16, "tokens_seen": 32768})
    store.write_record(failed, "failed", error="boom")
    store.write_table()
    rows = pd.read_csv(store.curves_path)
    assert list(rows.columns) == ["run_id", "step", "tokens", "lr", "train_loss", "valid_loss", "b_simple"]
    assert rows.groupby("run_id").size().to_dict() == {new.run_id: 3, old.run_id: 2}
    mine = rows[rows["run_id"] == new.run_id]
    assert mine["train_loss"].isna().tolist() == [True, False, False] and mine["b_simple"].iloc[2] == 123.4
    assert rows.loc[rows["run_id"] == old.run_id, "tokens"].tolist() == [0, 32768]
    table = load_curves(store.curves_path, pd.read_csv(store.results_path))
    # The point without a held-out loss (a budget run's middle) is not a curve point; both runs have their N.
    assert len(table.points) == 4 and table.runs["n_params"].to_dict() == {new.run_id: 25_000, old.run_id: 50_000}


def test_no_record_with_a_curve_writes_no_curve_table(tmp_path):
    run = study_runs(study_from_dict(STUDY))[0]
    store = Store(tmp_path)
    store.write_record(run, "ok", metrics={"n_params": 25_000, "loss": 5.2})
    store.write_table()
    assert store.results_path.exists() and not store.curves_path.exists()


def test_curve_table_joins_its_runs_and_sets_aside_what_it_cannot_use():
    results, curves = synthetic_curves()
    curves.loc[3, "valid_loss"] = np.nan                       # not evaluated there
    curves = pd.concat([curves, curves.iloc[[5]]])             # a repeated (run_id, step)
    extra = pd.DataFrame([{"run_id": "elsewhere", "step": 10, "valid_loss": 4.0}])   # no N anywhere
    table = load_curves(pd.concat([curves, extra]), results)
    assert len(table.points) == len(curves) - 2 and set(table.runs.index) == set(results["run_id"])
    assert table.runs.loc["scratch-25000-s0", "n_params"] == 25000
    text = " ".join(table.warnings)
    assert "1 curve row(s) without" in text and "1 curve row(s) repeat" in text and "1 run(s)" in text


def test_a_curve_table_from_another_setup_needs_only_run_step_and_loss_and_its_own_n():
    table = load_curves(pd.DataFrame({"run_id": ["a", "a", "b"], "step": [1, 2, 1], "valid_loss": [5, 4, 6],
                                      "n_params": [1e5, 1e5, 2e5]}))
    assert list(table.runs["n_params"]) == [1e5, 2e5] and not table.warnings


def test_a_curve_table_without_a_required_column_is_one_line():
    with pytest.raises(TableError, match=r"lacks required column\(s\) \['valid_loss'\]"):
        load_curves(pd.DataFrame({"run_id": ["a"], "step": [1]}))


# --------------------------------------------------------------------------- L(N, S)

def test_the_learning_curve_law_is_given_back_within_its_intervals():
    """Over 12 synthetic studies, each parameter's 90 % interval holds the truth in at least 9 (a 90 %
    interval misses 3 or more of 12 with probability 0.11; the percentile intervals held α_N 65 % of the
    time: law.py, `_intervals`)."""
    held = {name: 0 for name in TRUTH}
    for seed in range(12):
        results, curves = synthetic_curves(seed=seed)
        fit = fit_learning_curve(load_curves(curves, results), n_bootstrap=60, seed=seed)
        assert fit.fitted and fit.steps == "S" and fit.n_runs == 10 and fit.sizes == list(SIZES)
        for name, value in TRUTH.items():
            low, high = fit.intervals[name]
            held[name] += low <= value <= high
        assert fit.intervals["alpha_s"][1] - fit.intervals["alpha_s"][0] < 0.05   # informative, not just wide
        # Every N left out is predicted to about the noise (0.5 % per point, 0.5 % per run).
        assert max(fit.held_out.values()) < 0.03 and len(fit.held_out) == len(SIZES)
    assert min(held.values()) >= 9, held


def test_the_law_uses_the_most_data_of_each_n_and_stops_at_the_best_evaluation():
    results, curves = synthetic_curves(noise=0.0, run_noise=0.0, seeds=1)
    small = results.assign(run_id=results["run_id"] + "-small", data_tokens=1e5)
    overfit = curves.assign(run_id=curves["run_id"] + "-small", valid_loss=curves["valid_loss"] + 3.0)
    fit = fit_learning_curve(load_curves(pd.concat([curves, overfit]), pd.concat([results, small])), n_bootstrap=0)
    assert not any(r.endswith("-small") for r in fit.runs)   # the smaller-data runs would move every parameter
    assert fit.alpha_s == pytest.approx(TRUTH["alpha_s"], rel=1e-4)


def test_one_size_is_not_a_law():
    results, curves = synthetic_curves()
    keep = results["n_params"] == SIZES[0]
    fit = fit_learning_curve(load_curves(curves[curves["run_id"].isin(results.loc[keep, "run_id"])], results[keep]))
    assert not fit.fitted and "≥ 2 N" in fit.reason


# --------------------------------------------------------------------------- forecasts

def _median_error(result, method: str, fraction: float) -> float:
    rows = result.summary[(result.summary["method"] == method) & (result.summary["fraction"] == fraction)]
    return float(rows["median_abs_error"].iloc[0])


def test_forecasts_of_curves_on_the_law_are_exact():
    results, curves = synthetic_curves(noise=0.0, run_noise=0.0, seeds=1, evals=100)
    result = forecast_runs(load_curves(curves, results))
    assert len(result.table) == len(SIZES) * 3 * 2 and result.table["error"].notna().all()
    assert result.table["error"].abs().max() < 1e-3


def test_forecast_errors_shrink_with_the_curve_seen_and_the_law_knows_the_shape():
    """With 0.5 % noise per evaluation and per run: the law's forecast (the shape from the other runs, one
    level fitted) is within the noise from 10 % of the curve on; the run's own three-number fit extrapolates
    a power law from a short stretch, so its error at 10 % is larger and shrinks by 50 %."""
    results, curves = synthetic_curves(seed=3, evals=100)
    result = forecast_runs(load_curves(curves, results))
    assert all(_median_error(result, "law", f) < 0.01 for f in (0.1, 0.2, 0.5))
    assert _median_error(result, "own", 0.5) < _median_error(result, "own", 0.1)
    assert _median_error(result, "law", 0.1) < _median_error(result, "own", 0.1)
    assert set(result.summary["forecast"]) == {len(SIZES) * 2}


# --------------------------------------------------------------------------- the critical batch

def with_noise_scale(results, curves, b_star=3e6, alpha_b=0.4, noise=0.1, seed=0):
    """Curves whose B_simple (sequences of 128 tokens) follows B_crit(L) = B*/L^(1/α_B) in tokens, ×10 % noise;
    a tenth of the estimates ≤ 0 (noise-dominated evaluations), which the fit must leave out."""
    rng = np.random.default_rng(seed)
    b = b_star / curves["valid_loss"] ** (1 / alpha_b) / 128 * np.exp(rng.normal(0, noise, len(curves)))
    b[rng.random(len(b)) < 0.1] = -5.0
    return results.assign(n_ctx=128), curves.assign(b_simple=b)


def test_the_critical_batch_law_is_given_back_and_kaplans_is_not():
    results, curves = with_noise_scale(*synthetic_curves(seed=5))
    fit = fit_critical_batch(load_curves(curves, results), n_bootstrap=100)
    assert fit.fitted and fit.left_out > 0 and (fit.points["b_crit"] > 0).all()
    low, high = fit.intervals["alpha_b"]
    assert low <= 0.4 <= high and not low <= 0.21 <= high
    assert fit.intervals["b_star"][0] <= 3e6 <= fit.intervals["b_star"][1]


def test_s_min_divides_each_step_by_one_plus_b_crit_over_b():
    results, curves = synthetic_curves(seed=6)
    table = load_curves(curves, results.assign(n_ctx=128))
    b_crit = lambda loss: 1e4 / loss
    plain, least = law_points(table), law_points_min(table, b_crit)
    assert least.s == pytest.approx(plain.s / (1 + 1e4 / plain.loss / (16 * 128)))
    # Without n_ctx, the batch in tokens is read off the curve's tokens per step (16 × 128 here too).
    assert law_points_min(load_curves(curves, results), b_crit).s == pytest.approx(least.s)
    assert fit_learning_curve(table, n_bootstrap=0, b_crit=b_crit).steps == "S_min"


# --------------------------------------------------------------------------- planner answers

def known_law(steps: str = "S_min") -> LearningCurveFit:
    return LearningCurveFit(True, steps=steps, sizes=[2.5e4, 4e5], step_range=(50, 2000), loss_range=(1.5, 4.0),
                            batch_tokens=2048, **TRUTH)


def test_steps_for_a_target_solve_the_law_and_say_what_is_out_of_reach():
    law, noise = known_law(), NoiseScaleFit(True, b_star=3e6, alpha_b=0.4)
    answer = steps_for(law, noise, 1e5, 2.0)
    assert float(law.loss(1e5, answer.s_min)) == pytest.approx(2.0)         # the law at S_min is the target
    b_crit = 3e6 / 2.0 ** (1 / 0.4)
    assert answer.batch_tokens == pytest.approx(b_crit) and answer.steps == pytest.approx(2 * answer.s_min)
    assert answer.tokens == pytest.approx(2 * answer.e_min) and answer.compute == pytest.approx(6e5 * answer.tokens)
    assert answer.flags == ()
    floor = 40 * 1e5 ** -0.3    # the N term: no number of steps gets below it
    low = steps_for(law, noise, 1e5, 0.9 * floor)
    assert np.isnan(low.steps) and any("unreachable" in f for f in low.flags)
    assert any("N outside" in f for f in steps_for(law, noise, 1e7, 2.0).flags)
    plain = steps_for(known_law("S"), None, 1e5, 2.0)
    assert plain.batch_tokens == 2048 and plain.steps == pytest.approx(answer.s_min)


def test_the_frontier_is_the_cheapest_size_and_grows_as_the_loss_falls():
    law, noise = known_law(), NoiseScaleFit(True, b_star=3e6, alpha_b=0.4)
    points = frontier(law, noise, [3.0, 2.5, 2.0])
    assert [p.loss for p in points] == [3.0, 2.5, 2.0]
    assert points[0].n_opt < points[1].n_opt < points[2].n_opt and points[0].c_min < points[2].c_min
    for p in points:   # no size on a fine grid is cheaper than N_opt by more than the grid's step
        grid = np.geomspace(1e3, 1e7, 2000)
        compute = 6 * grid * law_steps(law, grid, p.loss) * 3e6 / p.loss ** 2.5
        assert np.nanmin(compute) == pytest.approx(p.c_min, rel=1e-3)


# --------------------------------------------------------------------------- the pipeline

def test_analyze_finds_the_curve_table_beside_the_results_and_reports_it(tmp_path, capsys):
    from effdata.analysis.pipeline import analyze
    results, curves = synthetic_curves(seed=4, evals=40)
    results.to_csv(tmp_path / "results.csv", index=False)
    results.to_csv(tmp_path / "alone.csv", index=False)
    out = analyze(tmp_path / "results.csv", tmp_path / "without", units="tokens", n_bootstrap=20, figures=False)
    assert "dynamics" not in out and "Training dynamics" not in (tmp_path / "without" / "REPORT.md").read_text()
    curves.to_csv(tmp_path / "curves.csv", index=False)
    out = analyze(tmp_path / "results.csv", tmp_path / "with", units="tokens", n_bootstrap=20, figures=False)
    report = (tmp_path / "with" / "REPORT.md").read_text()
    assert "## Training dynamics" in report and "| α_S |" in report and "plain optimiser steps S" in report
    assert out["dynamics"]["law"]["fitted"] and out["dynamics"]["runs"] == 10
    assert len(pd.read_csv(tmp_path / "with" / "forecasts.csv")) == 10 * 3 * 2
    # The planner answers from that fits.json: the law at the steps it gives is the target.
    from effdata.plan import main as plan
    assert plan([str(tmp_path / "with" / "fits.json"), "--target-loss", "2.0", "--sizes", "1e5"]) == 0
    answer = capsys.readouterr().out
    steps = float(answer.split("| 2 | 1e+05 | ")[1].split(" |")[0])
    fitted = out["dynamics"]["law"]
    assert law_loss(1e5, steps, fitted["alpha_n"], fitted["alpha_s"], np.log(fitted["A"]), np.log(fitted["B"])) == \
        pytest.approx(2.0, rel=5e-3)   # the table shows 3 significant digits of the steps
    assert plan([str(tmp_path / "without" / "fits.json"), "--target-loss", "2.0"]) == 2
    assert "no `dynamics` block" in capsys.readouterr().err
    with pytest.raises(TableError, match="curve table lacks"):
        analyze(tmp_path / "alone.csv", tmp_path / "bad", curves=curves.drop(columns="step"), figures=False,
                n_bootstrap=0)


# --------------------------------------------------------------------------- the critical batch at fixed loss

def test_steps_and_tokens_at_fixed_loss_give_back_the_critical_batch():
    """Runs at 5 batch sizes whose curves follow one loss in S_min = S/(1 + B_crit/B), B_crit = 1,024 tokens:
    the steps to a common loss obey S = S_min + E_min/B, and E_min/S_min is B_crit again (to the
    interpolation between evaluations)."""
    from effdata.analysis.dynamics.tradeoff import batch_tradeoffs

    b_crit, rows, curves = 1024.0, [], []
    for batch in (2, 4, 8, 16, 32):
        run_id, step = f"b{batch}", np.arange(0, 3001, 25)
        s_min = np.maximum(step, 1) / (1 + b_crit / (batch * 128))
        loss = 1.5 + (60 / s_min) ** 0.7
        curves += [{"run_id": run_id, "step": int(k), "tokens": int(k) * batch * 128, "valid_loss": float(v)}
                   for k, v in zip(step, loss)]
        rows.append({"run_id": run_id, "status": "ok", "mode": "scratch", "n_params": 1e5, "batch_size": batch,
                     "n_ctx": 128, "loss": float(loss.min())})
    (fit,) = batch_tradeoffs(load_curves(pd.DataFrame(curves), pd.DataFrame(rows)))
    assert fit.fitted and fit.runs["steps"].notna().all()
    assert fit.b_crit == pytest.approx(b_crit, rel=0.03)
    assert fit.target == pytest.approx(max(r["loss"] for r in rows))


# --------------------------------------------------------------------------- stopping by forecast

def test_stopping_by_forecast_stops_the_clear_losers_and_never_the_winner():
    """A sweep of 4 settings at each N whose losses differ by 0, 3, 6 and 9 % (a constant factor on the law):
    at half of each run the forecasts tell them apart, the rule stops the three losers of each N and keeps the
    best; with a margin wider than the gaps it stops none."""
    from effdata.analysis.dynamics.stopping import simulate_stopping

    results, curves = synthetic_curves(seed=7, seeds=1, noise=0.002, run_noise=0.0, evals=40)
    rows, points = [], []
    for k, factor in enumerate((1.0, 1.03, 1.06, 1.09)):
        rows.append(results.assign(run_id=results["run_id"] + f"-x{k}", loss=results["loss"] * factor))
        points.append(curves.assign(run_id=curves["run_id"] + f"-x{k}", valid_loss=curves["valid_loss"] * factor))
    table = load_curves(pd.concat(points), pd.concat(rows))
    result = forecast_runs(table)
    check = simulate_stopping(table, result, 0.5)
    assert (check.groups, check.runs, check.stopped, check.wrong) == (len(SIZES), 4 * len(SIZES), 3 * len(SIZES), 0)
    assert check.saved == pytest.approx(0.5 * 3 / 4)
    assert simulate_stopping(table, result, 0.5, margin=0.2).stopped == 0
