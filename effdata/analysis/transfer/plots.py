"""The transfer analysis's figures (seaborn style on matplotlib; PNG and SVG).

The conventions every figure follows (log axes, units, markers for measured, extrapolated and ossified
points, 90% intervals, legends outside the panels, at most three panels wide) are in core/figures.py.

Figures (docs/METHOD.md §1 "Figures worth reproducing"):
  loss_vs_data        loss against data, from scratch and fine-tuned, D_T drawn, for chosen N (1, 5)
  dt_vs_df            D_T against D_F per N with the fitted law
  fraction_vs_n       D_T / (D_F + D_T) against N per D_F with the fitted law (2)
  loss_vs_n           loss against N at fixed D_F (3)
  loss_vs_compute     loss against training compute (4), only when the table has `flops`
  compare_dt          pretraining distributions overlaid (D_T against D_F, per N)
  compare_parameters  fitted alpha, beta (90% intervals) per pretraining, beside the paper
  pretraining         every pretraining run: own loss, tokens per parameter, target loss at start

These figures draw one shape per N: with several shapes at one N (a shape study) `analyze` gives them
the reference shape of each N, and the shapes' own figures are in `shape/plots.py`.

Why one module of ~450 lines: every figure of the transfer question, one function each, sharing the flag
and interval helpers at the top; the other questions' figures live in their folders. The shared style,
the grid (at most three panels wide) and the legend are in core/figures.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from effdata.analysis.core.effective import EffectiveResult
from effdata.analysis.core.figures import (
    LOSS_LABEL,
    MAX_PANELS,
    FLAG_COLOR,
    SCRATCH_COLOR,
    UNIT_WORDS,
    SavedFigure,
    SkippedFigure,
    _category_handles,
    _data_label,
    _dodge,
    _format_n,
    _interval_errors,
    _legend_outside,
    _n_axis,
    _new_figure,
    _pick,
    _pretrain_colors,
    _save,
    _tidy_log_axis,
    draw_each,
)
from effdata.analysis.core.fit import PAPER_TRANSFER, TransferFit
from effdata.analysis.core.table import DATA_COLUMNS
from effdata.analysis.transfer.pretraining import (
    COMPUTE_OPTIMAL_TOKENS_PER_PARAM,
    PretrainingSummary,
)
from effdata.fmt import compact


def _flag_legend_handles() -> list[Line2D]:
    # Flags are shapes in a neutral grey: a red X once read as the series drawn in the palette's red.
    return [
        Line2D([], [], marker="o", color=FLAG_COLOR, linestyle="", label="measured D_E"),
        Line2D([], [], marker="o", color=FLAG_COLOR, markerfacecolor="none", linestyle="",
               label="extrapolated D_E (hollow)"),
        Line2D([], [], marker="X", color=FLAG_COLOR, markeredgecolor="black", markeredgewidth=0.8, linestyle="",
               markersize=8, label="ossified (D_T ≤ 0)"),
    ]


def _scatter_flagged(ax, x, y, rows: pd.DataFrame, color, label: str | None = None, size: float = 36) -> None:
    """Filled markers for measured points, hollow for extrapolated, X for ossified: the flag is the marker's
    shape, the colour stays the series' (an ossified run keeps its pretraining's or its N's colour)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ossified = rows["ossified"].to_numpy(bool)
    extrapolated = rows["extrapolated"].to_numpy(bool) & ~ossified
    plain = ~ossified & ~extrapolated
    ax.scatter(x[plain], y[plain], s=size, color=color, label=label, zorder=3)
    ax.scatter(x[extrapolated], y[extrapolated], s=size, facecolors="none", edgecolors=color,
               linewidths=1.4, zorder=3)
    ax.scatter(x[ossified], y[ossified], s=size * 1.6, marker="X", color=color, edgecolors="black",
               linewidths=0.8, zorder=4)


def _shown_law(fit: TransferFit | None) -> tuple[TransferFit | None, str, str]:
    """(law to draw, line style, title line): the headline solid; without one, the sensitivity row dashed."""
    if fit is not None and fit.fitted:
        return fit, "-", f"k={fit.k:.3g}, α={fit.alpha:.3f}, β={fit.beta:.3f}"
    other = fit.including_extrapolated if fit is not None else None
    if other is not None and other.fitted:
        return other, "--", "no headline law; dashed: fit including extrapolated D_E"
    return None, "", "law not fitted"


def _draw_seeds(ax, seed_runs: pd.DataFrame | None, mode: str, pretrain: str, n: float, column: str, color) -> bool:
    """Each seed of a grid point as a small faint dot (only where some point has >= 2 seeds); True if drawn."""
    if seed_runs is None or seed_runs.empty:
        return False
    rows = seed_runs[(seed_runs["mode"] == mode) & (seed_runs["pretrain"] == pretrain) & (seed_runs["n_params"] == n)]
    if not len(rows) or rows.groupby(column).size().max() < 2:
        return False
    ax.scatter(rows[column], rows["loss"], s=9, color=color, alpha=0.35, linewidths=0, zorder=2)
    return True


def _d_e_interval(ax, group: pd.DataFrame, color) -> None:
    """Horizontal 90% interval of D_E at the fine-tuned loss (the arrow's head)."""
    rows = group[np.isfinite(group["d_e"])]
    if len(rows) and rows["d_e_lo"].notna().any():
        ax.errorbar(rows["d_e"], rows["loss"], xerr=_interval_errors(rows["d_e"], rows["d_e_lo"], rows["d_e_hi"]),
                    fmt="none", ecolor=color, elinewidth=1.0, capsize=2.5, alpha=0.9, zorder=2)


def plot_loss_vs_data(effective: EffectiveResult, out_dir: Path, n_values=None,
                      seed_runs: pd.DataFrame | None = None) -> SavedFigure | SkippedFigure:
    table, scratch = effective.table, effective.scratch
    column = DATA_COLUMNS[effective.units]
    candidates = sorted(set(table.loc[~table["no_scratch"], "n_params"]))
    if not candidates:
        return SkippedFigure("loss_vs_data", "no fine-tuned runs with from-scratch runs of the same N")
    chosen = list(n_values) if n_values else _pick(candidates, 3)
    colors = _pretrain_colors(table["pretrain"])
    figure, axes = _new_figure(len(chosen), width=4.2)
    seeds_drawn = False
    for ax, n in zip(axes, chosen):
        curve = effective.curve_at(n)
        seeds_drawn |= _draw_seeds(ax, seed_runs, "scratch", "none", n, column, SCRATCH_COLOR)
        ax.scatter(scratch.loc[scratch["n_params"] == n, column], scratch.loc[scratch["n_params"] == n, "loss"],
                   color=SCRATCH_COLOR, s=22, zorder=3, label="from scratch (mean of seeds)")
        inside = np.geomspace(curve.d_min, curve.d_max, 200)
        ax.plot(inside, curve.loss_at(inside), color=SCRATCH_COLOR, lw=1.4, label="from scratch (monotone interp.)")
        rows = table[table["n_params"] == n]
        finite_d_e = rows["d_e"][np.isfinite(rows["d_e"])]
        low = min(curve.d_min, rows["d_f"].min(), finite_d_e.min() if len(finite_d_e) else np.inf) / 1.5
        high = max(curve.d_max, finite_d_e.max() if len(finite_d_e) else 0, rows["d_f"].max()) * 1.5
        for segment in (np.geomspace(low, curve.d_min, 50), np.geomspace(curve.d_max, high, 50)):
            ax.plot(segment, curve.loss_at(segment), color=SCRATCH_COLOR, lw=1.1, ls="--")
        for pretrain, group in rows.groupby("pretrain"):
            color = colors[pretrain]
            seeds_drawn |= _draw_seeds(ax, seed_runs, "finetune", pretrain, n, column, color)
            _scatter_flagged(ax, group["d_f"], group["loss"], group, color, label=f"fine-tuned from {pretrain}")
            for _, run in group[np.isfinite(group["d_e"])].iterrows():
                # D_T is the horizontal gap from D_F to D_E at the fine-tuned loss.
                ax.annotate("", xy=(run["d_e"], run["loss"]), xytext=(run["d_f"], run["loss"]),
                            arrowprops={"arrowstyle": "->", "color": color, "lw": 0.9, "alpha": 0.8})
            _d_e_interval(ax, group, color)
        ax.set_xscale("log")
        _tidy_log_axis(ax.xaxis)
        ax.set_xlabel(_data_label(effective.units))
        ax.set_ylabel(LOSS_LABEL)
        ax.set_title(_format_n(n))
    handles = [h for h in axes[0].get_legend_handles_labels()[0] if h.get_label().startswith("from scratch")]
    handles += _category_handles((f"fine-tuned from {name}", color) for name, color in colors.items())
    handles += [Line2D([], [], color=SCRATCH_COLOR, ls="--", label="per-N law (extrapolation)"),
                Line2D([], [], color="0.4", marker=r"$\rightarrow$", ls="", markersize=12, label="D_T = D_E − D_F"),
                Line2D([], [], color="0.4", marker="|", ls="-", lw=1, markersize=7, label="D_E 90% interval"),
                *_flag_legend_handles()[1:]]
    if seeds_drawn:
        handles.append(Line2D([], [], marker="o", color="0.4", alpha=0.35, ls="", markersize=3, label="one seed"))
    _legend_outside(figure, handles)
    return _save(figure, out_dir, "loss_vs_data", "Loss against data, from scratch and fine-tuned",
                 "Arrows run from D_F to D_E at the fine-tuned loss: their length is D_T; the bar at the arrow's head is "
                 "D_E's 90% interval (bootstrap over runs, both curves re-drawn). Dashed: the per-N law "
                 "L_∞ + A·D^(−b) outside the measured from-scratch range (extrapolation); hollow markers are read off "
                 "it; an X (arrow pointing left) is an ossified run. Small faint dots: single seeds, where there are several.")


def _fit_lines(ax, fit: TransferFit | None, d_f_range, n_values, palette) -> str:
    """The law per N (see _shown_law); returns the title line that says which law it is."""
    law, style, title = _shown_law(fit)
    if law is not None:
        grid = np.geomspace(*d_f_range, 50)
        for n, color in zip(n_values, palette):
            ax.plot(grid, law.predict(grid, n), color=color, lw=1.2, ls=style)
    return title


def _d_t_points(ax, group: pd.DataFrame, x, floor: float, color, label: str) -> None:
    """D_T with its 90% interval; ossified runs (D_T <= 0) at the bottom edge, without a bar."""
    positive = group["d_t"].to_numpy(float) > 0
    y = np.where(positive, group["d_t"], floor)
    _scatter_flagged(ax, x, y, group, color, label=label)
    if positive.any() and group["d_t_lo"].notna().any():
        rows = group[positive]
        ax.errorbar(np.asarray(x)[positive], rows["d_t"], yerr=_interval_errors(rows["d_t"], rows["d_t_lo"], rows["d_t_hi"], floor),
                    fmt="none", ecolor=color, elinewidth=0.9, capsize=2, alpha=0.8, zorder=2)


def _interval_handles(ax, law: bool = True) -> list:
    """Legend entries for the error bars (a real error-bar glyph) and, if drawn, the law's lines."""
    bar = ax.errorbar([np.nan], [np.nan], yerr=[[0.0], [0.0]], fmt="none", ecolor="0.4", elinewidth=0.9, capsize=2,
                      label="90% interval (bootstrap over runs)")
    line = Line2D([], [], color="0.4", lw=1.2, label="headline law (colour of its N / D_F)")
    return [bar, line] if law else [bar]


def plot_dt_vs_df(effective: EffectiveResult, fits: dict[str, TransferFit], out_dir: Path) -> SavedFigure | SkippedFigure:
    table = effective.table[np.isfinite(effective.table["d_t"])]
    if table.empty:
        return SkippedFigure("dt_vs_df", "no fine-tuned run has a finite D_T")
    pretrains = sorted(table["pretrain"].unique())
    n_values = sorted(table["n_params"].unique())
    palette = sns.color_palette("viridis", len(n_values))
    figure, axes = _new_figure(len(pretrains), width=4.4)
    for ax, pretrain in zip(axes, pretrains):
        rows = table[table["pretrain"] == pretrain]
        positive = rows["d_t"] > 0
        # Ossified runs have D_T <= 0, which a log axis cannot show: drawn at the bottom edge.
        floor = rows.loc[positive, ["d_t", "d_t_lo"]].where(lambda v: v > 0).min().min() / 2 if positive.any() else 1.0
        for index, (n, color) in enumerate(zip(n_values, palette)):
            group = rows[rows["n_params"] == n]
            _d_t_points(ax, group, _dodge(group["d_f"], index, len(n_values)), floor, color, _format_n(n))
        law = _fit_lines(ax, fits.get(pretrain), (rows["d_f"].min(), rows["d_f"].max()), n_values, palette)
        ax.set_title(f"pretrained on {pretrain}\n{law}", fontsize="small")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _tidy_log_axis(ax.xaxis)
        _tidy_log_axis(ax.yaxis)
        ax.set_xlabel(_data_label(effective.units, "D_F"))
        ax.set_ylabel(f"effective data transferred D_T ({UNIT_WORDS[effective.units]})")
    handles = _category_handles((_format_n(n), color) for n, color in zip(n_values, palette))
    _legend_outside(figure, handles + _interval_handles(axes[0]) + _flag_legend_handles()[1:])
    return _save(figure, out_dir, "dt_vs_df", "Effective data transferred against fine-tuning data",
                 "Lines: the headline law D_T = k·D_F^α·N^β per N. Bars: each point's 90% interval (bootstrap over "
                 "runs, both curves re-drawn); points at the same D_F are spread sideways so that none hides another. "
                 "Ossified runs (X) are drawn at the bottom edge.")


def plot_fraction_vs_n(effective: EffectiveResult, fits: dict[str, TransferFit], out_dir: Path) -> SavedFigure | SkippedFigure:
    table = effective.table[np.isfinite(effective.table["fraction"])]
    if table.empty or table["n_params"].nunique() < 2:
        return SkippedFigure("fraction_vs_n", "needs fine-tuned runs at ≥ 2 N with a finite D_E")
    pretrains = sorted(table["pretrain"].unique())
    figure, axes = _new_figure(len(pretrains), width=4.4)
    d_f_values = _pick(table["d_f"], 6)
    palette = sns.color_palette("mako_r", len(d_f_values))
    for ax, pretrain in zip(axes, pretrains):
        rows = table[table["pretrain"] == pretrain]
        law, style, title = _shown_law(fits.get(pretrain))
        n_grid = np.geomspace(rows["n_params"].min(), rows["n_params"].max(), 50)
        for index, (d_f, color) in enumerate(zip(d_f_values, palette)):
            group = rows[rows["d_f"] == d_f].sort_values("n_params")
            x = _dodge(group["n_params"], index, len(d_f_values), spread=0.03)
            _scatter_flagged(ax, x, group["fraction"], group, color, label=f"D_F = {compact(d_f)}")
            # fraction = 1 - D_F/D_E rises with D_E: its interval is D_E's, mapped.
            lo, hi = 1 - d_f / group["d_e_lo"], 1 - d_f / group["d_e_hi"]
            ax.errorbar(x, group["fraction"], yerr=_interval_errors(group["fraction"], lo, hi), fmt="none",
                        ecolor=color, elinewidth=0.9, capsize=2, alpha=0.8, zorder=2)
            if law is not None:
                d_t = law.predict(d_f, n_grid)
                ax.plot(n_grid, d_t / (d_f + d_t), color=color, lw=1.2, ls=style)
        _n_axis(ax, rows["n_params"])
        ax.set_xlabel("non-embedding parameters N")
        ax.set_ylabel("fraction from transfer D_T / (D_F + D_T)")
        ax.set_title(f"pretrained on {pretrain}\n{title}", fontsize="small")
    handles = _category_handles((f"D_F = {compact(d_f)}", color) for d_f, color in zip(d_f_values, palette))
    _legend_outside(figure, handles + _interval_handles(axes[0]) + _flag_legend_handles()[1:])
    return _save(figure, out_dir, "fraction_vs_n", "Fraction of effective data from transfer against N",
                 f"D_F in {UNIT_WORDS[effective.units]}. Lines: the headline law. Bars: 90% intervals (bootstrap over "
                 "runs). Negative values are ossified runs.")


def plot_loss_vs_n(effective: EffectiveResult, out_dir: Path) -> SavedFigure | SkippedFigure:
    table = effective.table[~effective.table["no_scratch"]]
    if table["n_params"].nunique() < 2:
        return SkippedFigure("loss_vs_n", "needs fine-tuned runs at ≥ 2 N with from-scratch curves")
    d_f_values = _pick(table["d_f"], MAX_PANELS)
    colors = _pretrain_colors(table["pretrain"])
    figure, axes = _new_figure(len(d_f_values), width=3.4)
    for ax, d_f in zip(axes, d_f_values):
        rows = table[table["d_f"] == d_f]
        n_values = sorted(rows["n_params"].unique())
        # The from-scratch loss at the same data, read off each N's curve (hollow where extrapolated).
        curves = {n: curve for (n, _), curve in effective.curves.items() if n in set(n_values)}
        n_values = [n for n in n_values if n in curves]
        scratch = np.array([float(curves[n].loss_at([d_f])[0]) for n in n_values])
        outside = np.array([not curves[n].within_measured_range(d_f) for n in n_values], dtype=bool)
        ax.plot(n_values, scratch, color=SCRATCH_COLOR, lw=1.2, ls="--", label="from scratch at D = D_F")
        ax.scatter(np.array(n_values)[~outside], scratch[~outside], color=SCRATCH_COLOR, marker="s", s=20, zorder=3)
        ax.scatter(np.array(n_values)[outside], scratch[outside], facecolors="none", edgecolors=SCRATCH_COLOR,
                   marker="s", s=20, zorder=3)
        for pretrain, group in rows.groupby("pretrain"):
            group = group.sort_values("n_params")
            ax.plot(group["n_params"], group["loss"], color=colors[pretrain], lw=1.2)
            _scatter_flagged(ax, group["n_params"], group["loss"], group, colors[pretrain], label=f"fine-tuned from {pretrain}")
            if (group["n_seeds"] > 1).any():
                ax.errorbar(group["n_params"], group["loss"], yerr=group["loss_std"], fmt="none",
                            ecolor=colors[pretrain], elinewidth=0.9, capsize=2, zorder=2)
        _n_axis(ax, n_values)
        ax.tick_params(axis="x", labelrotation=45)
        ax.set_xlabel("non-embedding parameters N")
        ax.set_ylabel(LOSS_LABEL)
        ax.set_title(f"D_F = {compact(d_f)} {UNIT_WORDS[effective.units]}", fontsize="small")
    handles = [h for h in axes[-1].get_legend_handles_labels()[0] if h.get_label().startswith("from scratch")]
    handles += _category_handles((f"fine-tuned from {name}", color) for name, color in colors.items())
    _legend_outside(figure, handles + _flag_legend_handles()[1:])
    return _save(figure, out_dir, "loss_vs_n", "Loss against model size at fixed fine-tuning data",
                 "From scratch (dashed): the same-N curve read at D = D_F; hollow squares where that needs the per-N law "
                 "(outside the measured range). Bars, where there are seeds: ± one seed-to-seed standard deviation.")


def plot_loss_vs_compute(runs: pd.DataFrame, out_dir: Path) -> SavedFigure | SkippedFigure:
    if "flops" not in runs or runs["flops"].isna().all():
        return SkippedFigure("loss_vs_compute", "the results table has no `flops` column")
    runs = runs[np.isfinite(runs["flops"]) & (runs["flops"] > 0)]
    with_pretraining = "pretrain_flops" in runs and runs["pretrain_flops"].notna().any()
    colors = _pretrain_colors(runs.loc[runs["mode"] == "finetune", "pretrain"])
    figure, axes = _new_figure(2 if with_pretraining else 1, width=4.4)
    for panel, ax in enumerate(axes):
        scratch = runs[runs["mode"] == "scratch"]
        ax.scatter(scratch["flops"], scratch["loss"], color=SCRATCH_COLOR, s=16, label="from scratch")
        for pretrain, group in runs[runs["mode"] == "finetune"].groupby("pretrain"):
            compute = group["flops"] + (group["pretrain_flops"].fillna(0) if panel == 1 else 0)
            ax.scatter(compute, group["loss"], color=colors[pretrain], s=16, label=f"fine-tuned from {pretrain}")
        ax.set_xscale("log")
        _tidy_log_axis(ax.xaxis)
        ax.set_xlabel("training compute (FLOPs)" + (", pretraining included" if panel == 1 else ""))
        ax.set_ylabel(LOSS_LABEL)
        ax.set_title("fine-tuning compute only" if panel == 0 else "counting pretraining compute", fontsize="small")
    handles, _ = axes[0].get_legend_handles_labels()
    _legend_outside(figure, handles)
    return _save(figure, out_dir, "loss_vs_compute", "Loss against training compute",
                 "Each point is one run (all N and data sizes, seeds averaged). Left: the fine-tuning run's own FLOPs.")


def plot_compare_dt(effective: EffectiveResult, fits: dict[str, TransferFit], out_dir: Path,
                    names: list[str]) -> SavedFigure | SkippedFigure:
    table = effective.table[effective.table["pretrain"].isin(names) & np.isfinite(effective.table["d_t"])
                            & (effective.table["d_t"] > 0)]
    if table["pretrain"].nunique() < 2:
        return SkippedFigure("compare_dt", "fewer than two of the compared pretraining names have D_T > 0 points")
    n_values = _pick(table["n_params"], MAX_PANELS)
    colors = _pretrain_colors(names)
    figure, axes = _new_figure(len(n_values), width=3.4)
    floor = table[["d_t", "d_t_lo"]].where(lambda v: v > 0).min().min() / 2
    for ax, n in zip(axes, n_values):
        for index, pretrain in enumerate(names):
            group = table[(table["pretrain"] == pretrain) & (table["n_params"] == n)]
            if group.empty:
                continue
            _d_t_points(ax, group, _dodge(group["d_f"], index, len(names), spread=0.04), floor, colors[pretrain], pretrain)
            law, style, _ = _shown_law(fits.get(pretrain))
            if law is not None:
                grid = np.geomspace(table["d_f"].min(), table["d_f"].max(), 50)
                ax.plot(grid, law.predict(grid, n), color=colors[pretrain], lw=1.2, ls=style)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _tidy_log_axis(ax.xaxis)
        _tidy_log_axis(ax.yaxis)
        ax.set_xlabel(_data_label(effective.units, "D_F"))
        ax.set_ylabel(f"D_T ({UNIT_WORDS[effective.units]})")
        ax.set_title(_format_n(n), fontsize="small")
    handles = _category_handles((name, colors[name]) for name in names if name in set(table["pretrain"]))
    law = Line2D([], [], color="0.4", lw=1.2, label="headline law (dashed: including extrapolated, when no headline)")
    _legend_outside(figure, handles + _interval_handles(axes[0], law=False) + [law] + _flag_legend_handles()[1:2])
    return _save(figure, out_dir, "compare_dt", "Pretraining distributions compared: D_T against D_F",
                 "Lines: each distribution's headline law at that N. Bars: 90% intervals (bootstrap over runs).")


def plot_compare_parameters(fits: dict[str, TransferFit], out_dir: Path, names: list[str]) -> SavedFigure | SkippedFigure:
    shown = [fits[name] for name in names if name in fits and (fits[name].fitted or fits[name].including_extrapolated)]
    if not shown:
        return SkippedFigure("compare_parameters", "none of the compared pretraining names was fitted")
    figure, axes = _new_figure(2, width=3.6, height=3.0)
    colors = _pretrain_colors(names)
    for ax, parameter in zip(axes, ("alpha", "beta")):
        for row, fit in enumerate(shown):
            rows = [(fit, "o", "headline law (90% interval)", 0.0),
                    (fit.including_extrapolated, "s", "including extrapolated D_E", -0.22)]
            for variant, marker, label, offset in rows:
                if variant is None or not variant.fitted:
                    continue
                value = getattr(variant, parameter)
                lo, hi = variant.intervals.get(parameter, (value, value))
                ax.errorbar(value, row + offset, xerr=[[value - lo], [hi - value]], fmt=marker, color=colors[fit.pretrain],
                            mfc=colors[fit.pretrain] if marker == "o" else "white", capsize=3, label=label)
            paper = PAPER_TRANSFER.get(fit.pretrain)
            if paper:
                ax.scatter(paper[parameter], row, marker="D", facecolors="none", edgecolors="0.2", s=40,
                           label="Hernandez et al. 2021", zorder=4)
        ax.set_yticks(range(len(shown)), [fit.pretrain for fit in shown])
        ax.set_ylim(-0.7, len(shown) - 0.3)
        ax.set_xlabel({"alpha": "α (exponent of D_F)", "beta": "β (exponent of N)"}[parameter])
    axes[0].set_ylabel("pretraining distribution")
    # The legend's markers in grey: taken from the axes they wore the last distribution's colour.
    neutral = {"headline law (90% interval)": {"marker": "o"},
               "including extrapolated D_E": {"marker": "s", "markerfacecolor": "white"},
               "Hernandez et al. 2021": {"marker": "D", "markerfacecolor": "none", "color": "0.2"}}
    drawn = set(axes[0].get_legend_handles_labels()[1])
    _legend_outside(figure, [Line2D([], [], ls="", **{"color": FLAG_COLOR, **style}, label=label)
                             for label, style in neutral.items() if label in drawn])
    return _save(figure, out_dir, "compare_parameters", "Fitted exponents per pretraining distribution",
                 "Filled: the headline law (interpolated D_E) with its 90% interval; hollow squares, where there are "
                 "extrapolated D_E: the law including them (sensitivity check); diamonds: the paper.")


def plot_pretraining(summary: PretrainingSummary, out_dir: Path) -> SavedFigure | SkippedFigure:
    """Every pretraining run against N: own held-out loss, tokens per parameter, target loss at the start."""
    table = summary.table
    if table.empty:
        return SkippedFigure("pretraining", "the table has no pretraining rows (mode == pretrain)")
    panels = [("own_loss", "own held-out loss (nats/token)", "on its own distribution"),
              ("tokens_per_param", "pretraining tokens per parameter", "how much it was pretrained"),
              ("target_loss", "target loss at the start of fine-tuning", "where fine-tuning starts")]
    panels = [p for p in panels if table[p[0]].notna().any()]
    colors = _pretrain_colors(table["pretrain"])
    figure, axes = _new_figure(len(panels), width=3.6, height=3.3)
    for ax, (column, label, title) in zip(axes, panels):
        for pretrain, group in table.groupby("pretrain"):
            group = group.sort_values("n_params")
            ax.plot(group["n_params"], group[column], marker="o", color=colors[pretrain], lw=1.2, label=pretrain)
        if column == "tokens_per_param":
            ax.set_yscale("log")
            ax.axhline(COMPUTE_OPTIMAL_TOKENS_PER_PARAM, color="0.5", ls=":", lw=1,
                       label=f"~{COMPUTE_OPTIMAL_TOKENS_PER_PARAM:.0f} (compute-optimal)")
            _tidy_log_axis(ax.yaxis)
        _n_axis(ax, table["n_params"])
        ax.tick_params(axis="x", labelrotation=45)
        ax.set_xlabel("non-embedding parameters N")
        ax.set_ylabel(label)
        ax.set_title(title, fontsize="small")
    handles = {h.get_label(): h for ax in axes for h in ax.get_legend_handles_labels()[0]}
    _legend_outside(figure, list(handles.values()))
    return _save(figure, out_dir, "pretraining", "Pretraining runs: were bigger models better pretrained?",
                 "One line per pretraining distribution. Left: loss on its own held-out data (falling with N: bigger "
                 "models were better pretrained); middle: tokens seen per parameter (dotted: ~20, compute-optimal, "
                 "Hoffmann et al. 2022); right: the target loss each fine-tune starts from.")


def make_figures(effective: EffectiveResult, fits: dict[str, TransferFit], runs: pd.DataFrame, out_dir: Path,
                 compare: list[str] | None = None, seed_runs: pd.DataFrame | None = None,
                 pretraining: PretrainingSummary | None = None) -> list[SavedFigure | SkippedFigure]:
    """All figures; a figure that cannot be drawn from this table comes back as SkippedFigure."""
    out_dir = Path(out_dir)
    makers = [
        ("loss_vs_data", lambda: plot_loss_vs_data(effective, out_dir, seed_runs=seed_runs)),
        ("dt_vs_df", lambda: plot_dt_vs_df(effective, fits, out_dir)),
        ("fraction_vs_n", lambda: plot_fraction_vs_n(effective, fits, out_dir)),
        ("loss_vs_n", lambda: plot_loss_vs_n(effective, out_dir)),
        ("loss_vs_compute", lambda: plot_loss_vs_compute(runs, out_dir)),
    ]
    if compare:
        makers += [("compare_dt", lambda: plot_compare_dt(effective, fits, out_dir, compare)),
                   ("compare_parameters", lambda: plot_compare_parameters(fits, out_dir, compare))]
    makers.append(("pretraining", lambda: plot_pretraining(pretraining or PretrainingSummary(), out_dir)))
    if effective.table.empty:
        return [SkippedFigure("all", "no fine-tuned runs to plot")]
    return draw_each(makers)


