"""The audit on synthetic tables with a known truth: what rests on one size is flagged, what does not is not;
capped runs, degenerate fits and a ladder that changes depth are named; ossified runs as censored points."""
from __future__ import annotations

import numpy as np
import pandas as pd

from effdata.analysis.audit.confounds import confound_warnings, ladder_shapes
from effdata.analysis.audit.convergence import check_convergence, convergence_warnings
from effdata.analysis.audit.transfer import audit_transfer, censored_fit
from effdata.analysis.core.fit import fit_transfer
from effdata.analysis.core.table import load_results
from effdata.analysis.laws.scaling import ChinchillaFit, fit_chinchilla, settle_e_at_zero
from effdata.analysis.plan.planner import load_laws, make_plan, PlanRequest, paper_fits
from effdata.analysis.pipeline import analyze
from synthetic import make_cpu_runs, scratch_runs

N = np.array([25e3, 56e3, 100e3, 200e3, 560e3])
D_F = np.array([1e4, 3e4, 1e5, 3e5])


def _effective(beta_small: float, boost_largest: float, noise: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """An effective table whose D_T follows k·D_F^0.4·N^beta_small, the largest N's D_T times `boost_largest`."""
    rng = np.random.default_rng(seed)
    n, d_f = (g.ravel() for g in np.meshgrid(N, D_F))
    d_t = 5.0 * d_f ** 0.4 * n ** beta_small * np.where(n == N.max(), boost_largest, 1.0)
    d_t = d_t * np.exp(noise * rng.standard_normal(n.size))
    flags = {name: False for name in ("beyond_reach", "no_scratch", "extrapolated", "ossified")}
    return pd.DataFrame({"pretrain": "text", "d_f": d_f, "n_params": n, "d_t": d_t, "d_e": d_f + d_t, "loss": 1.0,
                         "d_scratch_max": 3e6, "low_data": True, **flags})


def _transfer_audit(effective: pd.DataFrame):
    fit = fit_transfer(effective, "text", "chars", n_bootstrap=200, seed=0)
    labels = {float(v): f"s{i}" for i, v in enumerate(N)}
    return fit, audit_transfer(effective, fit, labels, {})


def test_a_beta_that_one_size_drives_is_flagged_by_name():
    fit, audit = _transfer_audit(_effective(beta_small=0.0, boost_largest=1.5))
    assert fit.intervals["beta"][0] > 0                    # the headline says β > 0 ...
    assert any("beta" in w and "s4" in w for w in audit.warnings), audit.warnings   # ... because of s4
    without = next(o for o in audit.left_out if o.label == "s4").estimates["beta"]
    assert abs(without) < 0.1                               # without it, the truth of the other sizes


def test_a_clean_law_raises_no_leverage_or_estimator_warning():
    for seed in range(5):
        _, audit = _transfer_audit(_effective(beta_small=0.38, boost_largest=1.0, seed=seed))
        assert audit.warnings == [], audit.warnings


def test_censored_fit_recovers_the_law_that_dropping_the_censored_points_biases():
    rng = np.random.default_rng(3)
    n, d_f = (g.ravel() for g in np.meshgrid(np.geomspace(2e4, 1e6, 8), np.geomspace(1e4, 1e6, 8)))
    d_t = 0.02 * d_f ** 0.5 * n ** 0.6 * np.exp(0.3 * rng.standard_normal(n.size))
    floor = np.quantile(d_t / d_f, 0.3)                  # the weakest 30% of points cannot be resolved
    seen = d_t / d_f > floor
    censored = censored_fit(d_f[seen], n[seen], d_t[seen], d_f[~seen], n[~seen])
    design = np.column_stack([np.ones(seen.sum()), np.log(d_f[seen]), np.log(n[seen])])
    dropped = np.linalg.lstsq(design, np.log(d_t[seen]), rcond=None)[0]
    assert abs(censored["beta"] - 0.6) < 0.1 and abs(censored["alpha"] - 0.5) < 0.1
    assert abs(dropped[2] - 0.6) > abs(censored["beta"] - 0.6)   # selecting on the outcome biases β


def _with_stops(runs: pd.DataFrame, capped_d: float) -> pd.DataFrame:
    runs = runs.copy()
    scratch = runs["mode"] == "scratch"
    runs["stop_reason"] = np.where(scratch & (runs["data_chars"] >= capped_d), "step_cap", "early_stop")
    return runs


def test_capped_runs_are_named_and_an_unlabelled_table_says_it_could_not_check():
    runs = _with_stops(make_cpu_runs(seeds=1, seed=1), capped_d=1e6)
    table = load_results(runs)
    convergence = check_convergence(table.seed_runs, table.scratch, table.data_column)
    capped = (runs["mode"] == "scratch") & (runs["data_chars"] >= 1e6)
    assert len(convergence.not_converged) == capped.sum()
    assert set(convergence.not_converged["why"]) == {"a step cap (`max_steps`)"}
    assert (~convergence.point_converged).sum() == capped.sum()
    assert "did not converge" in convergence_warnings(convergence, 0)[0]
    plain = load_results(make_cpu_runs(seeds=1, seed=1))
    unchecked = check_convergence(plain.seed_runs, plain.scratch, plain.data_column)
    assert not unchecked.checked and convergence_warnings(unchecked, 0) == []


def test_old_tables_stopped_column_is_read_too():
    runs = make_cpu_runs(seeds=1, seed=1)
    runs["stopped"] = np.where(runs["data_chars"] >= 1e6, "budget", "early")
    table = load_results(runs)
    convergence = check_convergence(table.seed_runs, table.scratch, table.data_column)
    assert convergence.column == "stopped" and len(convergence.not_converged) > 0


def test_a_ladder_that_changes_depth_is_flagged_and_one_depth_is_not():
    runs = pd.DataFrame({"n_params": N, "n_layer": [2, 2, 2, 4, 5], "d_model": [32, 48, 64, 64, 96],
                         "n_params_total": N * 2})
    assert "changes depth" in confound_warnings(ladder_shapes(runs))[0]
    runs["n_layer"] = 2
    assert confound_warnings(ladder_shapes(runs)) == []
    assert confound_warnings(ladder_shapes(runs.drop(columns=["n_layer"]))) == []   # not in the table: not checked


def _degenerate_scratch() -> pd.DataFrame:
    """A pure power law with no irreducible loss: the Chinchilla form's E runs to 0."""
    return scratch_runs(law={"E": 0.0, "A": 30.0, "alpha": 0.25, "B": 40.0, "beta": 0.3}, log_noise=0.01, seed=4)


def test_a_planted_degenerate_chinchilla_fit_is_flagged_and_the_planner_avoids_it(tmp_path):
    fit = fit_chinchilla(_degenerate_scratch(), "chars", n_bootstrap=100)
    assert fit.degenerate and "E" in fit.degenerate[0] and fit.unidentified == ["n_opt_exponent", "d_opt_exponent"]
    # Its E's interval ran to 0: the end the resamples stopped at is written as the bound (settle_e_at_zero).
    assert fit.intervals["E"][0] == 0.0 and fit.E > 0 and fit.n_starts_at_best > 0
    result = analyze(_degenerate_scratch(), tmp_path, n_bootstrap=100, figures=False)
    assert any("Chinchilla L(N, D) is degenerate" in w for w in result["warnings"])
    laws = load_laws(result)
    assert laws.scratch.form == "kaplan" and "degenerate" in laws.scratch_choice


def test_an_e_that_ran_to_zero_is_written_as_zero_and_its_intervals_withheld():
    # Where the point estimate's E ran off, where each search stopped depends on the CPU (settle_e_at_zero's
    # docstring): E is written as 0, the intervals and the starts' tie count are withheld; an E above the floor and
    # an interval whose low end is above it are kept as they are.
    intervals = {"E": [1e-30, 0.5], "alpha": [0.1, 1.75]}
    ran_off = ChinchillaFit(units="chars", fitted=True, E=3.8e-10, intervals=dict(intervals), n_starts_at_best=2694)
    settle_e_at_zero(ran_off, min_loss=2.0)
    assert ran_off.E == 0.0 and ran_off.intervals == {} and ran_off.n_starts_at_best is None
    kept = ChinchillaFit(units="chars", fitted=True, E=0.3, intervals=dict(intervals), n_starts_at_best=12)
    settle_e_at_zero(kept, min_loss=2.0)
    assert kept.E == 0.3 and kept.intervals == {"E": [0.0, 0.5], "alpha": [0.1, 1.75]} and kept.n_starts_at_best == 12


def test_a_clean_chinchilla_fit_is_not_degenerate():
    fit = fit_chinchilla(scratch_runs(log_noise=0.005, seed=2), "chars", n_bootstrap=100)
    assert fit.degenerate == [] and fit.unidentified == []
    assert fit.E > 0 and set(fit.intervals) >= {"E", "alpha", "beta"} and fit.n_starts_at_best > 0


def test_the_planner_refuses_losses_above_a_uniform_guess_and_switches_to_the_sane_form():
    request = PlanRequest(d_f=1e6, sizes=(1e6, 1e7, 1e8, 1e9))
    plan = make_plan(load_laws(paper_fits()), request)
    rows = plan.rows
    assert np.nanmax(rows["loss"]) < np.log(50257) and (rows["gain"].dropna() < rows["loss_scratch"].dropna()).all()
    assert plan.laws.scratch.form == "kaplan" and any("switched" in n for n in plan.notes)
    forced = make_plan(load_laws(paper_fits(), law="chinchilla"), request)
    assert forced.rows["refused"].astype(bool).all() and forced.rows["loss"].isna().all()


def test_the_audit_runs_in_the_pipeline_and_names_capped_runs(tmp_path):
    result = analyze(_with_stops(make_cpu_runs(seeds=1, seed=2), 1e6), tmp_path, n_bootstrap=50, figures=False)
    assert result["audit"]["convergence"]["checked"] and result["audit"]["convergence"]["not_converged"]
    assert any("did not converge" in w for w in result["warnings"])
    assert "## Audit: what each answer rests on" in (tmp_path / "REPORT.md").read_text()


def _public_table(seed: int = 5) -> pd.DataFrame:
    """Rows as public scaling studies publish them: 4 checkpoints per run (`progress`), 3 learning rates per
    (N, D) of which the middle one is best, a few duplicated rows, N from 12 M to 200 M, a Chinchilla truth."""
    rng = np.random.default_rng(seed)
    law = {"E": 1.8, "A": 400.0, "alpha": 0.34, "B": 410.0, "beta": 0.28}
    rows = []
    for n in np.geomspace(12e6, 200e6, 6):
        for d in np.geomspace(2e8, 4e9, 5):
            for lr, penalty in ((1e-4, 1.04), (3e-4, 1.0), (1e-3, 1.06)):
                final = (law["E"] + law["A"] * n ** -law["alpha"] + law["B"] * d ** -law["beta"]) * penalty
                run = f"n{n:.3g}-d{d:.3g}-lr{lr:g}"
                for progress in (0.25, 0.5, 0.75, 1.0):
                    loss = final * (1 + 0.3 * (1 - progress)) * np.exp(0.004 * rng.standard_normal())
                    rows.append({"run_id": run, "n_params": n, "data_tokens": d, "learning_rate": lr,
                                 "progress": progress, "loss": loss})
    table = pd.DataFrame(rows)
    return pd.concat([table, table.iloc[:7]], ignore_index=True)


def test_a_public_table_keeps_final_checkpoints_and_the_best_learning_rate():
    table = load_results(_public_table(), units="tokens")
    assert len(table.runs) == 30 and (table.seed_runs["learning_rate"] == 3e-4).all()
    assert (table.seed_runs["progress"] == 1.0).all()
    assert any("intermediate-checkpoint" in n for n in table.notes) and any("learning rates" in n for n in table.notes)


def test_analyze_on_a_public_table_gives_both_laws_and_their_error_on_the_largest_n(tmp_path):
    result = analyze(_public_table(), tmp_path, units="tokens", n_bootstrap=100, figures=False)
    assert result["kaplan"]["fitted"] and result["chinchilla"]["fitted"]
    laws = {law["law"]: law for law in result["audit"]["laws"]}
    for name in ("Kaplan L(N, D)", "Chinchilla L(N, D)"):
        assert laws[name]["extrapolation"]["unit"] == "nats/token" and laws[name]["extrapolation"]["error"] < 0.2
    assert abs(result["chinchilla"]["alpha"] - 0.34) < 0.1


def test_searches_that_kept_their_first_length_are_named_and_their_fine_tunes_refitted_without(tmp_path):
    runs = _with_stops(make_cpu_runs(seeds=1, seed=3), capped_d=1e9)      # every run converged ...
    first = (runs["mode"] == "finetune") & (runs["data_chars"] == runs["data_chars"].min())
    runs["best_is_first"] = first                                           # ... but the smallest D_F at its floor
    result = analyze(runs, tmp_path, n_bootstrap=50, figures=False)
    assert any("kept the shortest length" in w for w in result["warnings"])
    assert len(result["audit"]["convergence"]["at_first_length"]) == first.sum()
    law = next(law for law in result["audit"]["laws"] if law["law"].startswith("transfer"))
    assert any("at their first length" in name for name in law["sensitivity"])
    plain = analyze(_with_stops(make_cpu_runs(seeds=1, seed=3), capped_d=1e9), tmp_path / "b", n_bootstrap=50,
                    figures=False)
    assert not any("kept the shortest length" in w for w in plain["warnings"])
