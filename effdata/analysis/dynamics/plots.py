"""The training-dynamics figures: learning curves with L(N, S), forecast error against the fraction of the
run seen, and B_crit against loss beside Kaplan's line. House style of `core/figures.py`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import seaborn as sns
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator

from effdata.analysis.core.figures import (
    LOSS_LABEL,
    SavedFigure,
    SkippedFigure,
    _legend_outside,
    _new_figure,
    _save,
    _tidy_log_axis,
    draw_each,
)
from effdata.analysis.dynamics.dynamics import DynamicsStudy
from effdata.analysis.dynamics.law import law_points
from effdata.analysis.dynamics.noise import PAPER_CRITICAL_BATCH
from effdata.fmt import compact

CMAP = sns.color_palette("viridis", as_cmap=True)
METHOD_LABELS = {"law": "L(N, S) of the other runs, own level", "own": "own early curve, c + b·S^(−a)"}


def make_dynamics_figures(study: DynamicsStudy, out_dir: Path) -> list:
    if not (study.curves.runs["mode"] == "scratch").any():
        return [SkippedFigure("learning_curves", "no from-scratch runs in the curve table")]
    makers = [("learning_curves", lambda: plot_learning_curves(study, out_dir)),
              ("forecast_error", lambda: plot_forecast_error(study, out_dir))]
    if study.noise is not None and study.noise.fitted:
        makers.append(("critical_batch", lambda: plot_critical_batch(study, out_dir)))
    return draw_each(makers)


def plot_learning_curves(study: DynamicsStudy, out_dir: Path) -> SavedFigure:
    figure, (ax,) = _new_figure(1, width=5.6, height=4.0)
    curves, law = study.curves, study.law
    used = law_points(curves)
    sizes = sorted(curves.runs["n_params"].unique())
    norm = LogNorm(min(sizes), max(sizes) * 1.0001)
    scratch = curves.runs.index[curves.runs["mode"] == "scratch"]
    shown = curves.points[(curves.points["step"] > 0) & curves.points["run_id"].isin(scratch)]   # step 0: no log axis
    for run_id, points in shown.groupby("run_id"):
        n = curves.runs.at[run_id, "n_params"]
        in_law = run_id in set(used.run)
        ax.plot(points["step"], points["valid_loss"], color=CMAP(norm(n)) if in_law else "0.75",
                lw=0.8, marker="o", ms=2.5, alpha=0.9 if in_law else 0.6, zorder=3 if in_law else 2)
    if law.fitted:
        for n in sorted(set(used.n)):
            s = used.s[used.n == n]
            grid = np.geomspace(s.min(), s.max(), 60)
            ax.plot(grid, law.loss(n, grid), color="0.1", lw=1.1, ls="--", zorder=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _loss_ticks(ax.yaxis, shown["valid_loss"])
    _tidy_log_axis(ax.xaxis)
    ax.set_xlabel("optimiser steps S")
    ax.set_ylabel(LOSS_LABEL)
    handles = [Line2D([], [], color=CMAP(norm(n)), marker="o", ms=3, label=f"N = {compact(n)}") for n in sizes]
    handles += [Line2D([], [], color="0.75", marker="o", ms=3, label="less data (not in the law)"),
                Line2D([], [], color="0.1", ls="--", lw=1.1, label=f"fitted L(N, {law.steps})")]
    _legend_outside(figure, handles)
    return _save(figure, out_dir, "learning_curves", "Learning curves and L(N, S)",
                 "Held-out loss at each evaluation after step 0 of every from-scratch run (coloured: the runs with the most data "
                 "of each N, which the law is fitted to, after warm-up up to their best evaluation; grey: the "
                 "others); black dashed: the fitted L(N, S) = (N_c/N)^α_N + (S_c/S)^α_S over the fitted steps.")


def plot_forecast_error(study: DynamicsStudy, out_dir: Path) -> SavedFigure:
    figure, (ax,) = _new_figure(1, width=5.2, height=3.8)
    summary = study.forecasts.summary
    colors = dict(zip(METHOD_LABELS, sns.color_palette("deep", 2)))
    for (method, in_law), rows in summary.groupby(["method", "in_law"]):
        rows = rows.dropna(subset=["median_abs_error"])
        if rows.empty:
            continue
        median, p90 = 100 * rows["median_abs_error"].to_numpy(), 100 * rows["p90_abs_error"].to_numpy()
        shift = 1.0 if method == "own" else 0.0   # percentage points, so that the two methods' bars do not overlap
        ax.errorbar(100 * rows["fraction"] + shift, median, yerr=[np.zeros_like(median), p90 - median], capsize=3,
                    color=colors[method], ls="-" if in_law else ":", marker="o" if in_law else "s", ms=4)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(lambda value, _: f"{value:g}")   # 0.5, 1, 2: percentages, not 10^k labels
    ax.yaxis.set_minor_formatter(lambda value, _: f"{value:g}" if str(f"{value:g}")[0] in "25" else "")
    ax.set_xlabel("share of the run's planned steps seen (%)")
    ax.set_ylabel("|forecast − best loss| / best loss (%)")
    handles = [Line2D([], [], color=c, marker="o", label=METHOD_LABELS[m]) for m, c in colors.items()]
    handles += [Line2D([], [], color="0.3", ls="-", label="runs with the most data of their N"),
                Line2D([], [], color="0.3", ls=":", label="runs with less data (not in the law)")]
    _legend_outside(figure, handles)
    return _save(figure, out_dir, "forecast_error", "Forecast error against the share of the run seen",
                 "Median relative error of the forecast best held-out loss of each from-scratch run, from the "
                 "evaluations up to 10, 20 and 50 % of its planned steps; the bar reaches the 90th percentile.")


def _loss_ticks(axis, losses) -> None:
    """A log loss axis spans a fraction of a decade: four plain ticks (5.5, 6.2, ...), not 10^k labels that collide."""
    low, high = float(np.min(losses)), float(np.max(losses))
    axis.set_major_locator(FixedLocator(np.round(np.linspace(low, high, 4), 1)))
    axis.set_major_formatter(lambda value, _: f"{value:.1f}")
    axis.set_minor_locator(NullLocator())


def plot_critical_batch(study: DynamicsStudy, out_dir: Path) -> SavedFigure:
    figure, (ax,) = _new_figure(1, width=5.2, height=3.8)
    fit = study.noise
    points = fit.points
    sizes = sorted(points["n_params"].unique())
    norm = LogNorm(min(sizes), max(sizes) * 1.0001)
    ax.scatter(points["loss"], points["b_crit"], c=[CMAP(norm(n)) for n in points["n_params"]], s=12, zorder=3)
    grid = np.geomspace(points["loss"].min(), points["loss"].max(), 50)
    ax.plot(grid, fit.b_crit(grid), color="0.1", lw=1.8, label=f"fitted: B* = {compact(fit.b_star)}, "
                                                              f"α_B = {fit.alpha_b:.2g}")
    paper = PAPER_CRITICAL_BATCH
    ax.plot(grid, paper["b_star"] / grid ** (1 / paper["alpha_b"]), color="0.5", ls="--",
            label="Kaplan et al. 2020: B* = 2e8, α_B = 0.21")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _loss_ticks(ax.xaxis, points["loss"])
    ax.set_xlabel(LOSS_LABEL)
    ax.set_ylabel("B_crit ≈ B_simple (tokens)")
    handles = [Line2D([], [], color=CMAP(norm(n)), marker="o", ls="", label=f"N = {compact(n)}") for n in sizes]
    _legend_outside(figure, handles + ax.get_legend_handles_labels()[0])
    return _save(figure, out_dir, "critical_batch", "Critical batch size against loss",
                 "The simple noise scale B_simple = tr(Σ)/|G|² measured at each evaluation (in tokens), against the "
                 "held-out loss there, with the fitted B_crit(L) = B*/L^(1/α_B) and Kaplan's.")
