"""Figures for the transfer analysis (seaborn style on matplotlib; PNG and SVG).

Built with the object-oriented matplotlib API (Figure + Agg canvas, no pyplot), so making plots
never changes the caller's backend or global state. Every figure follows the same conventions:
log axes for data, N and compute; units on every axis; filled markers for measured D_E, hollow
markers for extrapolated ones, an X for ossified runs (D_T <= 0); legends say so.

Figures (docs/METHOD.md §1 "Figures worth reproducing"):
  loss_vs_data        loss against data, from scratch and fine-tuned, D_T drawn, for chosen N (1, 5)
  dt_vs_df            D_T against D_F per N with the fitted law
  fraction_vs_n       D_T / (D_F + D_T) against N per D_F with the fitted law (2)
  loss_vs_n           loss against N at fixed D_F (3)
  loss_vs_compute     loss against training compute (4), only when the table has `flops`
  compare_dt          pretraining distributions overlaid (D_T against D_F, per N)
  compare_parameters  fitted alpha, beta (90% intervals) per pretraining, beside the paper
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from effdata.analysis.effective import EffectiveResult
from effdata.analysis.fit import PAPER_TRANSFER, TransferFit
from effdata.analysis.table import DATA_COLUMNS
from effdata.fmt import compact

UNIT_WORDS = {"chars": "characters", "tokens": "tokens"}
LOSS_LABEL = "held-out target loss (nats/token)"
SCRATCH_COLOR = "0.15"
MAX_PANELS = 4


@dataclass
class SavedFigure:
    name: str
    title: str
    caption: str
    png: Path
    svg: Path


@dataclass
class SkippedFigure:
    name: str
    reason: str


def _style() -> dict:
    # svg.fonttype none: SVG text stays text (editable, smaller, faster to write than glyph paths).
    return {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.85), "svg.fonttype": "none"}


def _new_figure(n_panels: int, width: float = 4.6, height: float = 3.8) -> tuple[Figure, list]:
    figure = Figure(figsize=(width * n_panels, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, n_panels, squeeze=False)[0]
    return figure, list(axes)


def _save(figure: Figure, out_dir: Path, name: str, title: str, caption: str) -> SavedFigure:
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    figure.savefig(png, dpi=130)
    figure.savefig(svg)
    return SavedFigure(name=name, title=title, caption=caption, png=png, svg=svg)


def _pick(values, count: int) -> list:
    """Up to `count` values spread over the sorted unique values (smallest, ..., largest)."""
    unique = sorted(set(values))
    if len(unique) <= count:
        return unique
    return [unique[i] for i in np.linspace(0, len(unique) - 1, count).round().astype(int)]


def _format_n(n: float) -> str:
    return f"N = {compact(n)}"


def _pretrain_colors(names) -> dict[str, tuple]:
    names = sorted(set(names))
    return dict(zip(names, sns.color_palette("deep", max(len(names), 1))))


def _flag_legend_handles() -> list[Line2D]:
    return [
        Line2D([], [], marker="o", color="0.3", linestyle="", label="measured D_E"),
        Line2D([], [], marker="o", color="0.3", markerfacecolor="none", linestyle="",
               label="extrapolated D_E (hollow)"),
        Line2D([], [], marker="X", color="crimson", linestyle="", markersize=8, label="ossified (D_T ≤ 0)"),
    ]


def _scatter_flagged(ax, x, y, rows: pd.DataFrame, color, label: str | None = None, size: float = 36) -> None:
    """Filled markers for measured points, hollow for extrapolated, X for ossified."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ossified = rows["ossified"].to_numpy(bool)
    extrapolated = rows["extrapolated"].to_numpy(bool) & ~ossified
    plain = ~ossified & ~extrapolated
    ax.scatter(x[plain], y[plain], s=size, color=color, label=label, zorder=3)
    ax.scatter(x[extrapolated], y[extrapolated], s=size, facecolors="none", edgecolors=color,
               linewidths=1.4, zorder=3, label=label if not plain.any() else None)
    ax.scatter(x[ossified], y[ossified], s=size * 1.6, marker="X", color="crimson", edgecolors=color,
               linewidths=0.8, zorder=4)


def _data_label(units: str, symbol: str = "D") -> str:
    return f"target data {symbol} ({UNIT_WORDS[units]})"


# --------------------------------------------------------------------------- figures

def plot_loss_vs_data(effective: EffectiveResult, out_dir: Path, n_values=None) -> SavedFigure | SkippedFigure:
    table, scratch = effective.table, effective.scratch
    column = DATA_COLUMNS[effective.units]
    candidates = sorted(set(table.loc[~table["no_scratch"], "n_params"]))
    if not candidates:
        return SkippedFigure("loss_vs_data", "no fine-tuned runs with from-scratch runs of the same N")
    chosen = list(n_values) if n_values else _pick(candidates, 3)
    colors = _pretrain_colors(table["pretrain"])
    figure, axes = _new_figure(len(chosen))
    for ax, n in zip(axes, chosen):
        curve = effective.curves[n]
        ax.scatter(scratch.loc[scratch["n_params"] == n, column], scratch.loc[scratch["n_params"] == n, "loss"],
                   color=SCRATCH_COLOR, s=22, zorder=3, label="from scratch (measured)")
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
            _scatter_flagged(ax, group["d_f"], group["loss"], group, color, label=f"fine-tuned from {pretrain}")
            for _, run in group[np.isfinite(group["d_e"])].iterrows():
                # D_T is the horizontal gap from D_F to D_E at the fine-tuned loss.
                ax.annotate("", xy=(run["d_e"], run["loss"]), xytext=(run["d_f"], run["loss"]),
                            arrowprops={"arrowstyle": "->", "color": "crimson" if run["ossified"] else color,
                                        "lw": 0.9, "alpha": 0.8})
        ax.set_xscale("log")
        ax.set_xlabel(_data_label(effective.units))
        ax.set_ylabel(LOSS_LABEL)
        ax.set_title(_format_n(n))
    handles, labels = axes[0].get_legend_handles_labels()
    handles += [Line2D([], [], color=SCRATCH_COLOR, ls="--", label="per-N law (extrapolation)"),
                Line2D([], [], color="0.4", marker=r"$\rightarrow$", ls="", markersize=12, label="D_T = D_E − D_F"),
                *_flag_legend_handles()[1:]]
    axes[-1].legend(handles=handles, fontsize="x-small", loc="upper right")
    return _save(figure, out_dir, "loss_vs_data", "Loss against data, from scratch and fine-tuned",
                 "Arrows run from D_F to D_E at the fine-tuned loss: their length is D_T. Dashed: the per-N "
                 "law L_∞ + A·D^(−b) outside the measured from-scratch range (extrapolation); hollow markers "
                 "are read off it; an X (arrow pointing left) is an ossified run.")


def _fit_lines(ax, fit: TransferFit | None, d_f_range, n_values, palette) -> None:
    if fit is None or not fit.fitted:
        return
    grid = np.geomspace(*d_f_range, 50)
    for n, color in zip(n_values, palette):
        ax.plot(grid, fit.predict(grid, n), color=color, lw=1.2)


def plot_dt_vs_df(effective: EffectiveResult, fits: dict[str, TransferFit], out_dir: Path) -> SavedFigure | SkippedFigure:
    table = effective.table[np.isfinite(effective.table["d_t"])]
    if table.empty:
        return SkippedFigure("dt_vs_df", "no fine-tuned run has a finite D_T")
    pretrains = sorted(table["pretrain"].unique())
    n_values = sorted(table["n_params"].unique())
    palette = sns.color_palette("viridis", len(n_values))
    figure, axes = _new_figure(len(pretrains))
    for ax, pretrain in zip(axes, pretrains):
        rows = table[table["pretrain"] == pretrain]
        positive = rows["d_t"] > 0
        floor = rows.loc[positive, "d_t"].min() / 3 if positive.any() else 1.0
        for n, color in zip(n_values, palette):
            group = rows[rows["n_params"] == n]
            # Ossified runs have D_T <= 0, which a log axis cannot show: drawn at the bottom edge.
            y = np.where(group["d_t"] > 0, group["d_t"], floor)
            _scatter_flagged(ax, group["d_f"], y, group, color, label=_format_n(n))
        _fit_lines(ax, fits.get(pretrain), (rows["d_f"].min(), rows["d_f"].max()), n_values, palette)
        fit = fits.get(pretrain)
        title = f"pretrained on {pretrain}"
        if fit is not None and fit.fitted:
            title += f"\nk={fit.k:.3g}, α={fit.alpha:.3f}, β={fit.beta:.3f}"
        ax.set_title(title, fontsize="small")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(_data_label(effective.units, "D_F"))
        ax.set_ylabel(f"effective data transferred D_T ({UNIT_WORDS[effective.units]})")
    handles, _ = axes[0].get_legend_handles_labels()
    axes[-1].legend(handles=handles + _flag_legend_handles()[1:], fontsize="x-small")
    return _save(figure, out_dir, "dt_vs_df", "Effective data transferred against fine-tuning data",
                 "Lines: the fitted law D_T = k·D_F^α·N^β per N. Ossified runs (X) are drawn at the bottom edge.")


def plot_fraction_vs_n(effective: EffectiveResult, fits: dict[str, TransferFit], out_dir: Path) -> SavedFigure | SkippedFigure:
    table = effective.table[np.isfinite(effective.table["fraction"])]
    if table.empty or table["n_params"].nunique() < 2:
        return SkippedFigure("fraction_vs_n", "needs fine-tuned runs at ≥ 2 N with a finite D_E")
    pretrains = sorted(table["pretrain"].unique())
    figure, axes = _new_figure(len(pretrains))
    for ax, pretrain in zip(axes, pretrains):
        rows = table[table["pretrain"] == pretrain]
        d_f_values = _pick(rows["d_f"], 6)
        palette = sns.color_palette("mako_r", len(d_f_values))
        fit = fits.get(pretrain)
        n_grid = np.geomspace(rows["n_params"].min(), rows["n_params"].max(), 50)
        for d_f, color in zip(d_f_values, palette):
            group = rows[rows["d_f"] == d_f].sort_values("n_params")
            _scatter_flagged(ax, group["n_params"], group["fraction"], group, color, label=f"D_F = {compact(d_f)}")
            if fit is not None and fit.fitted:
                d_t = fit.predict(d_f, n_grid)
                ax.plot(n_grid, d_t / (d_f + d_t), color=color, lw=1.2)
        ax.set_xscale("log")
        ax.set_xlabel("non-embedding parameters N")
        ax.set_ylabel("fraction from transfer D_T / (D_F + D_T)")
        ax.set_title(f"pretrained on {pretrain}", fontsize="small")
        handles, _ = ax.get_legend_handles_labels()
        ax.legend(handles=handles + _flag_legend_handles()[1:], fontsize="x-small")
    return _save(figure, out_dir, "fraction_vs_n", "Fraction of effective data from transfer against N",
                 f"D_F in {UNIT_WORDS[effective.units]}. Lines: the fitted law. Negative values are ossified runs.")


def plot_loss_vs_n(effective: EffectiveResult, out_dir: Path) -> SavedFigure | SkippedFigure:
    table = effective.table[~effective.table["no_scratch"]]
    if table["n_params"].nunique() < 2:
        return SkippedFigure("loss_vs_n", "needs fine-tuned runs at ≥ 2 N with from-scratch curves")
    d_f_values = _pick(table["d_f"], MAX_PANELS)
    colors = _pretrain_colors(table["pretrain"])
    figure, axes = _new_figure(len(d_f_values), width=3.6)
    for ax, d_f in zip(axes, d_f_values):
        rows = table[table["d_f"] == d_f]
        n_values = sorted(rows["n_params"].unique())
        # The from-scratch loss at the same data, read off each N's curve (hollow where extrapolated).
        n_values = [n for n in n_values if n in effective.curves]
        scratch = np.array([float(effective.curves[n].loss_at([d_f])[0]) for n in n_values])
        outside = np.array([not effective.curves[n].within_measured_range(d_f) for n in n_values], dtype=bool)
        ax.plot(n_values, scratch, color=SCRATCH_COLOR, lw=1.2, ls="--", label="from scratch at D = D_F")
        ax.scatter(np.array(n_values)[~outside], scratch[~outside], color=SCRATCH_COLOR, marker="s", s=20, zorder=3)
        ax.scatter(np.array(n_values)[outside], scratch[outside], facecolors="none", edgecolors=SCRATCH_COLOR,
                   marker="s", s=20, zorder=3)
        for pretrain, group in rows.groupby("pretrain"):
            group = group.sort_values("n_params")
            ax.plot(group["n_params"], group["loss"], color=colors[pretrain], lw=1.2)
            _scatter_flagged(ax, group["n_params"], group["loss"], group, colors[pretrain], label=f"fine-tuned from {pretrain}")
        ax.set_xscale("log")
        ax.set_xlabel("non-embedding parameters N")
        ax.set_ylabel(LOSS_LABEL)
        ax.set_title(f"D_F = {d_f:.3g} {UNIT_WORDS[effective.units]}", fontsize="small")
    handles, _ = axes[-1].get_legend_handles_labels()
    axes[-1].legend(handles=handles + _flag_legend_handles()[1:], fontsize="x-small")
    return _save(figure, out_dir, "loss_vs_n", "Loss against model size at fixed fine-tuning data",
                 "From scratch (dashed): the same-N curve read at D = D_F; hollow squares where that needs the per-N law "
                 "(outside the measured range).")


def plot_loss_vs_compute(runs: pd.DataFrame, out_dir: Path) -> SavedFigure | SkippedFigure:
    if "flops" not in runs or runs["flops"].isna().all():
        return SkippedFigure("loss_vs_compute", "the results table has no `flops` column")
    runs = runs[np.isfinite(runs["flops"]) & (runs["flops"] > 0)]
    with_pretraining = "pretrain_flops" in runs and runs["pretrain_flops"].notna().any()
    colors = _pretrain_colors(runs.loc[runs["mode"] == "finetune", "pretrain"])
    figure, axes = _new_figure(2 if with_pretraining else 1)
    for panel, ax in enumerate(axes):
        scratch = runs[runs["mode"] == "scratch"]
        ax.scatter(scratch["flops"], scratch["loss"], color=SCRATCH_COLOR, s=16, label="from scratch")
        for pretrain, group in runs[runs["mode"] == "finetune"].groupby("pretrain"):
            compute = group["flops"] + (group["pretrain_flops"].fillna(0) if panel == 1 else 0)
            ax.scatter(compute, group["loss"], color=colors[pretrain], s=16, label=f"fine-tuned from {pretrain}")
        ax.set_xscale("log")
        ax.set_xlabel("training compute (FLOPs)" + (", pretraining included" if panel == 1 else ""))
        ax.set_ylabel(LOSS_LABEL)
        ax.set_title("fine-tuning compute only" if panel == 0 else "counting pretraining compute", fontsize="small")
        ax.legend(fontsize="x-small")
    return _save(figure, out_dir, "loss_vs_compute", "Loss against training compute",
                 "Each point is one run (all N and data sizes). Left: the fine-tuning run's own FLOPs.")


def plot_compare_dt(effective: EffectiveResult, fits: dict[str, TransferFit], out_dir: Path,
                    names: list[str]) -> SavedFigure | SkippedFigure:
    table = effective.table[effective.table["pretrain"].isin(names) & np.isfinite(effective.table["d_t"])
                            & (effective.table["d_t"] > 0)]
    if table["pretrain"].nunique() < 2:
        return SkippedFigure("compare_dt", "fewer than two of the compared pretraining names have D_T > 0 points")
    n_values = _pick(table["n_params"], MAX_PANELS)
    colors = _pretrain_colors(names)
    figure, axes = _new_figure(len(n_values), width=3.6)
    for ax, n in zip(axes, n_values):
        for pretrain in names:
            group = table[(table["pretrain"] == pretrain) & (table["n_params"] == n)]
            if group.empty:
                continue
            _scatter_flagged(ax, group["d_f"], group["d_t"], group, colors[pretrain], label=pretrain)
            fit = fits.get(pretrain)
            if fit is not None and fit.fitted:
                grid = np.geomspace(table["d_f"].min(), table["d_f"].max(), 50)
                ax.plot(grid, fit.predict(grid, n), color=colors[pretrain], lw=1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(_data_label(effective.units, "D_F"))
        ax.set_ylabel(f"D_T ({UNIT_WORDS[effective.units]})")
        ax.set_title(_format_n(n), fontsize="small")
    handles, _ = axes[-1].get_legend_handles_labels()
    axes[-1].legend(handles=handles + _flag_legend_handles()[1:2], fontsize="x-small")
    return _save(figure, out_dir, "compare_dt", "Pretraining distributions compared: D_T against D_F",
                 "Lines: each distribution's fitted law at that N.")


def plot_compare_parameters(fits: dict[str, TransferFit], out_dir: Path, names: list[str]) -> SavedFigure | SkippedFigure:
    fitted = [fits[name] for name in names if name in fits and fits[name].fitted]
    if not fitted:
        return SkippedFigure("compare_parameters", "none of the compared pretraining names was fitted")
    figure, axes = _new_figure(2, width=3.4, height=3.0)
    colors = _pretrain_colors(names)
    for ax, parameter in zip(axes, ("alpha", "beta")):
        for row, fit in enumerate(fitted):
            value = getattr(fit, parameter)
            lo, hi = fit.intervals.get(parameter, (value, value))
            ax.errorbar(value, row, xerr=[[value - lo], [hi - value]], fmt="o", color=colors[fit.pretrain],
                        capsize=3, label="fitted (90% bootstrap interval)" if row == 0 else None)
            paper = PAPER_TRANSFER.get(fit.pretrain)
            if paper:
                ax.scatter(paper[parameter], row, marker="D", facecolors="none", edgecolors="0.2", s=40,
                           label="Hernandez et al. 2021" if row == 0 else None, zorder=4)
        ax.set_yticks(range(len(fitted)), [fit.pretrain for fit in fitted])
        ax.set_ylim(-0.7, len(fitted) - 0.3)
        ax.set_xlabel({"alpha": "α (exponent of D_F, dimensionless)", "beta": "β (exponent of N, dimensionless)"}[parameter])
        ax.set_ylabel("pretraining distribution")
    axes[-1].legend(fontsize="x-small")
    return _save(figure, out_dir, "compare_parameters", "Fitted exponents per pretraining distribution",
                 "Points: fitted α and β with their 5th–95th percentile bootstrap intervals; diamonds: the paper.")


def make_figures(effective: EffectiveResult, fits: dict[str, TransferFit], runs: pd.DataFrame, out_dir: Path,
                 compare: list[str] | None = None) -> list[SavedFigure | SkippedFigure]:
    """All figures; a figure that cannot be drawn from this table comes back as SkippedFigure."""
    out_dir = Path(out_dir)
    makers = [
        ("loss_vs_data", lambda: plot_loss_vs_data(effective, out_dir)),
        ("dt_vs_df", lambda: plot_dt_vs_df(effective, fits, out_dir)),
        ("fraction_vs_n", lambda: plot_fraction_vs_n(effective, fits, out_dir)),
        ("loss_vs_n", lambda: plot_loss_vs_n(effective, out_dir)),
        ("loss_vs_compute", lambda: plot_loss_vs_compute(runs, out_dir)),
    ]
    if compare:
        makers += [("compare_dt", lambda: plot_compare_dt(effective, fits, out_dir, compare)),
                   ("compare_parameters", lambda: plot_compare_parameters(fits, out_dir, compare))]
    if effective.table.empty:
        return [SkippedFigure("all", "no fine-tuned runs to plot")]
    figures = []
    with matplotlib.rc_context(_style()):
        for name, make in makers:
            try:
                figures.append(make())
            except Exception as exc:  # a figure must never take the report down with it
                figures.append(SkippedFigure(name, f"plotting failed: {exc!r}"))
    return figures
