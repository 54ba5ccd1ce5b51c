"""The sweep's figure: test loss against the swept setting, one line per model size, one panel per data
size (effdata.analysis.sweep.sweep). Same conventions as effdata.analysis.transfer.plots (object-oriented matplotlib,
seaborn style, PNG + SVG, legend outside the panels)."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator

from effdata.analysis.core.figures import (
    LOSS_LABEL,
    UNIT_WORDS,
    SavedFigure,
    SkippedFigure,
    _legend_outside,
    _n_short,
    _new_figure,
    _save,
    _style,
)
from effdata.analysis.sweep.sweep import SweepResult
from effdata.fmt import compact

MODE_STYLE = {"scratch": ("-", "o"), "finetune": ("--", "s")}


def plot_sweep(result: SweepResult, out_dir: Path) -> SavedFigure | SkippedFigure:
    """Loss against the swept value (log axis, ticked at the values run) per size, a panel per data size;
    from scratch solid, fine-tuned dashed; a star at each line's refined best (hollow at the grid's edge)."""
    losses, key, column = result.losses, result.key, result.data_column
    if losses.empty:
        return SkippedFigure("sweep", "no runs")
    data_sizes = sorted(losses[column].unique())
    sizes = sorted(losses["n_params"].unique())
    palette = dict(zip(sizes, sns.color_palette("viridis", len(sizes))))
    with matplotlib.rc_context(_style()):
        figure, axes = _new_figure(len(data_sizes), width=4.2)
        for ax, d in zip(axes, data_sizes):
            _panel(ax, result, d, palette)
            ax.set_title(f"D = {compact(d)} {UNIT_WORDS[result.units]}")
        axes[0].set_ylabel(LOSS_LABEL)
        handles = [Line2D([], [], color=palette[n], label=f"N = {_n_short(n)}") for n in sizes]
        handles += [Line2D([], [], color="0.3", linestyle=MODE_STYLE[m][0], marker=MODE_STYLE[m][1], label=label)
                    for m, label in (("scratch", "from scratch"), ("finetune", "fine-tuned"))
                    if m in set(losses["mode"])]
        handles.append(Line2D([], [], color="0.3", marker="*", markersize=11, linestyle="", label="refined best"))
        _legend_outside(figure, handles)
        caption = (f"Test loss against {key} (log axis) for each model size, one panel per data size; from scratch "
                   "solid, fine-tuned dashed; stars at the best value (parabola in log through the lowest loss and "
                   "its neighbours; hollow where the lowest loss is at the grid's edge).")
        return _save(figure, out_dir, "sweep", f"Loss against {key}", caption)


def _panel(ax, result: SweepResult, d: float, palette: dict) -> None:
    key, column = result.key, result.data_column
    rows = result.losses[result.losses[column] == d]
    best = result.best[result.best[column] == d]
    for (mode, pretrain, n), group in rows.groupby(["mode", "pretrain", "n_params"], sort=True):
        group = group.sort_values(key)
        line, marker = MODE_STYLE.get(mode, (":", "^"))
        ax.errorbar(group[key], group["loss"], yerr=group["loss_std"].where(group["n_seeds"] > 1, 0.0),
                    color=palette[n], linestyle=line, marker=marker, markersize=4, lw=1.3, capsize=2)
        mark = best[(best["mode"] == mode) & (best["pretrain"] == pretrain) & (best["n_params"] == n)]
        for row in mark.itertuples(index=False):
            ax.scatter([row.best], [row.loss_at_best], marker="*", s=120, zorder=4, edgecolors=palette[n],
                       facecolors="none" if row.edge else palette[n], linewidths=1.2)
    values = sorted(result.losses[key].unique())
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(values))
    ax.xaxis.set_major_formatter(lambda value, _: f"{value:g}")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(f"{key}" + (" (× Kaplan's peak LR)" if key == "lr_scale" else ""))
    if np.isfinite(rows["loss"]).any():
        ax.margins(y=0.08)
