"""The from-scratch laws' figure: measured from-scratch losses and both fitted forms, per N.

Same conventions as effdata.analysis.transfer.plots (object-oriented matplotlib, seaborn style, PNG + SVG).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm

from effdata.analysis.core.figures import (
    LOSS_LABEL,
    UNIT_WORDS,
    SavedFigure,
    SkippedFigure,
    _new_figure,
    _save,
    _style,
)
from effdata.analysis.core.table import DATA_COLUMNS
from effdata.analysis.laws.scaling import ChinchillaFit, KaplanFit, kaplan_loss

CMAP = sns.color_palette("viridis", as_cmap=True)


def _kaplan_curve(fit: KaplanFit, n: float, d, units: str) -> np.ndarray:
    """Kaplan's law read at data `d` given in `units` (it may be fitted in tokens)."""
    d = np.asarray(d, float)
    if fit.units != units:
        d = d / fit.chars_per_token if fit.units == "tokens" else d * fit.chars_per_token
    return kaplan_loss(np.log(n), np.log(d), fit.alpha_n, fit.alpha_d, np.log(fit.n_c), np.log(fit.d_c))


def _panel(ax, scratch: pd.DataFrame, column: str, curve, title: str, norm: LogNorm) -> None:
    # Colour by N on a log scale with a colour bar, not a legend: published points can have a different N in
    # almost every row (140 N among Chinchilla's 240 points), which no legend can hold.
    for n, rows in scratch.groupby("n_params"):
        color = CMAP(norm(n))
        ax.scatter(rows[column], rows["loss"], color=color, s=18, zorder=3)
        if curve is not None and rows[column].nunique() > 1:
            grid = np.geomspace(rows[column].min(), rows[column].max(), 80)
            ax.plot(grid, curve(n, grid), color=color, lw=1.2)
    ax.set_xscale("log")
    ax.set_title(title, fontsize="small")
    ax.set_ylabel(LOSS_LABEL)


def plot_scratch_laws(scratch: pd.DataFrame, units: str, kaplan: KaplanFit, chinchilla: ChinchillaFit,
                      out_dir: Path) -> SavedFigure:
    """Both forms beside each other over the measured points, D in the Chinchilla fit's unit."""
    column = DATA_COLUMNS[chinchilla.units if chinchilla.fitted else units]
    plot_units = "chars" if column == "data_chars" else "tokens"
    figure, axes = _new_figure(2, width=4.6, height=3.8)
    panels = ((chinchilla, "Chinchilla form E + A/N^α + B/D^β",
               (lambda n, d: chinchilla.loss(n, d)) if chinchilla.fitted else None),
              (kaplan, "Kaplan form [(N_c/N)^(α_N/α_D) + D_c/D]^α_D",
               (lambda n, d: _kaplan_curve(kaplan, n, d, plot_units)) if kaplan.fitted else None))
    n_values = scratch["n_params"]
    norm = LogNorm(n_values.min(), n_values.max() if n_values.max() > n_values.min() else n_values.min() * 10)
    for ax, (fit, name, curve) in zip(axes, panels):
        rmse = f"RMSE of log loss {fit.goodness.rmse_log:.3f}" if fit.fitted and fit.goodness else "not fitted"
        _panel(ax, scratch, column, curve, f"{name}\n{rmse}", norm)
        ax.set_xlabel(f"from-scratch data D ({UNIT_WORDS[plot_units]})")
    low, high = min(ax.get_ylim()[0] for ax in axes), max(ax.get_ylim()[1] for ax in axes)
    for ax in axes:   # one loss scale, so the two forms compare by eye
        ax.set_ylim(low, high)
    figure.colorbar(ScalarMappable(norm=norm, cmap=CMAP), ax=axes, label="non-embedding parameters N", pad=0.02)
    return _save(figure, Path(out_dir), "scratch_laws", "From-scratch laws L(N, D), both forms",
                 "Dots: measured from-scratch losses, coloured by N; lines: each fitted law at that N over the "
                 "measured data range.")


def make_scratch_figures(scratch: pd.DataFrame, units: str, kaplan: KaplanFit, chinchilla: ChinchillaFit,
                         out_dir: Path) -> list[SavedFigure | SkippedFigure]:
    if scratch.empty:
        return [SkippedFigure("scratch_laws", "no from-scratch runs")]
    with matplotlib.rc_context(_style()):
        try:
            return [plot_scratch_laws(scratch, units, kaplan, chinchilla, out_dir)]
        except Exception as exc:  # a figure must never take the report down with it
            return [SkippedFigure("scratch_laws", f"plotting failed: {exc!r}")]
