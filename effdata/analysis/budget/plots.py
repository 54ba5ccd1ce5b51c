"""The pretraining-budget figure: D_T against pretraining tokens per parameter. No torch.

Same conventions as effdata.analysis.transfer.plots (object-oriented matplotlib, seaborn style, PNG + SVG, legends
outside the panels, bars: 90% intervals of the bootstrap over runs).

  dt_vs_tpp   D_T against P, log-log; a panel per D_F and distribution (a column per distribution when there
              are two or three, else each distribution's D_F in rows of three);
              a colour per N (the sequential palette of the other figures); this table's points filled,
              a line joining one size's budgets (its checkpoints); the compared table's points hollow
              squares in the same colours; the γ law of each N dashed; D_T <= 0 at the bottom edge (X).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator

from effdata.analysis.budget.budget import BudgetStudy, StudyBudget, usable
from effdata.analysis.core.figures import (
    FLAG_COLOR,
    MAX_COLUMNS,
    PAGE_WIDTH,
    UNIT_WORDS,
    SavedFigure,
    SkippedFigure,
    _category_handles,
    _format_n,
    _interval_errors,
    _legend_outside,
    _pick,
    _save,
    draw_each,
)
from effdata.fmt import compact

MAX_D_F_PANELS = 4


def _drawable(study: StudyBudget) -> pd.DataFrame:
    """A table's fine-tunes with a known budget and a finite D_T."""
    points = study.points
    return points[np.isfinite(points["p"]) & (points["p"] > 0) & np.isfinite(points["d_t"])]


def _layout(bases: list[str], d_fs: list[float]) -> list[list[tuple[str, float] | None]]:
    """Panels (distribution, D_F) as rows of at most MAX_COLUMNS: a column per distribution and a row per D_F
    when there are 2-3 distributions (one D_F's panels side by side compare the distributions); else each
    distribution's D_F wrapped to rows of three. None is an empty place."""
    if 1 < len(bases) <= MAX_COLUMNS:
        return [[(base, d_f) for base in bases] for d_f in d_fs]
    rows = []
    for base in bases:
        panels = [(base, d_f) for d_f in d_fs]
        for start in range(0, len(panels), MAX_COLUMNS):
            row = panels[start:start + MAX_COLUMNS]
            rows.append(row + [None] * (min(MAX_COLUMNS, len(panels)) - len(row)))
    return rows


def _grid(layout: list[list]) -> tuple[Figure, np.ndarray]:
    columns = len(layout[0])
    width = min(3.3, PAGE_WIDTH / columns)
    figure = Figure(figsize=(width * columns, 3.0 * len(layout)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(layout), columns, squeeze=False)
    for ax, panel in zip(axes.flat, (p for row in layout for p in row)):
        if panel is None:
            ax.remove()
    return figure, axes


def _draw_points(ax, rows: pd.DataFrame, color, floor: float, filled: bool) -> None:
    """One size's points of one table: filled circles joined by a line (this table), or hollow squares."""
    rows = rows.sort_values("p")
    positive = rows["d_t"].to_numpy(float) > 0
    y = np.where(positive, rows["d_t"], floor)
    if filled:
        ax.plot(rows["p"], y, color=color, lw=1.0, alpha=0.7, zorder=2)
        ax.scatter(rows["p"][positive], y[positive], s=30, color=color, zorder=3)
    else:
        ax.scatter(rows["p"][positive], y[positive], s=34, marker="s", facecolors="none", edgecolors=color,
                   linewidths=1.3, zorder=3)
    ax.scatter(rows["p"][~positive], y[~positive], s=50, marker="X", color=color, zorder=4)
    if positive.any() and rows["d_t_lo"].notna().any():
        kept = rows[positive]
        ax.errorbar(kept["p"], kept["d_t"], yerr=_interval_errors(kept["d_t"], kept["d_t_lo"], kept["d_t_hi"], floor),
                    fmt="none", ecolor=color, elinewidth=0.8, capsize=2, alpha=0.7, zorder=2)


def _law_lines(ax, budget_fit, rows: pd.DataFrame, d_f: float, colors: dict) -> str:
    """The γ law of each N over this table's budgets, dashed; returns the panel's line about it."""
    fit, why = usable(budget_fit)
    if fit is None:
        return "γ not fitted"
    for n, group in rows.groupby("n_params"):
        grid = np.geomspace(group["p"].min(), group["p"].max(), 30)
        ax.plot(grid, fit.predict(d_f, n, grid), color=colors[n], lw=1.1, ls="--", zorder=1)
    interval = fit.intervals.get("gamma")
    text = f"γ = {fit.gamma:.2f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")
    return text + (" (incl. extrapolated)" if why else "")


def _few_log_ticks(axis, formatter) -> None:
    """Two to five ticks at 1-3-10 (else 1-2-5, else finer) steps of a log axis: a panel spanning less than a
    decade otherwise gets matplotlib's linear fallback, a label at every 2×10³."""
    limits = axis.axes.get_xlim() if axis is axis.axes.xaxis else axis.axes.get_ylim()
    low, high = sorted(limits)
    powers = range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
    for subs in ((1.0, 3.0), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)):
        ticks = [m * 10.0 ** k for k in powers for m in subs if low <= m * 10.0 ** k <= high]
        if len(ticks) > 5:
            ticks = [t for t in ticks if np.isclose(t, 10.0 ** np.round(np.log10(t)))]
        if len(ticks) >= 2:
            break
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(formatter)
    axis.set_minor_locator(NullLocator())


def _panel(ax, budget: BudgetStudy, tables: list[pd.DataFrame], base: str, d_f: float, colors: dict,
           first: bool) -> None:
    """One (distribution, D_F) panel; the first of a row names the γ law."""
    shown = [t[(t["base"] == base) & (t["d_f"] == d_f)] for t in tables]
    positive = pd.concat([s.loc[s["d_t"] > 0, ["d_t", "d_t_lo"]] for s in shown])
    floor = positive.where(positive > 0).min().min() / 2 if len(positive) else 1.0
    for index, rows in enumerate(shown):
        for n, group in rows.groupby("n_params"):
            _draw_points(ax, group, colors[n], floor, filled=index == 0)
    law = _law_lines(ax, budget.studies[0].fits.get(base), shown[0], d_f, colors) if len(shown[0]) else ""
    ax.set_xscale("log")
    ax.set_yscale("log")
    _few_log_ticks(ax.xaxis, lambda value, _: f"{value:g}")      # budgets read as 3, 10, 30, not 3×10⁰
    _few_log_ticks(ax.yaxis, lambda value, _: compact(value))
    units = UNIT_WORDS[budget.units]
    ax.set_title(f"{base}, D_F = {compact(d_f)} {units}" + (f"\n{law}" if law and first else ""), fontsize="small")


def plot_dt_vs_tpp(budget: BudgetStudy, out_dir: Path) -> SavedFigure | SkippedFigure:
    tables = [_drawable(study) for study in budget.studies]
    if tables[0].empty:
        return SkippedFigure("dt_vs_tpp", "no fine-tune with a known pretraining budget and a finite D_T")
    bases = sorted(tables[0]["base"].unique())
    d_fs = _pick(tables[0]["d_f"], MAX_D_F_PANELS)
    n_values = sorted(set().union(*(set(t["n_params"]) for t in tables)))
    colors = dict(zip(n_values, sns.color_palette("viridis", len(n_values))))
    layout = _layout(bases, d_fs)
    figure, axes = _grid(layout)
    for row, panels in enumerate(layout):
        for column, panel in enumerate(panels):
            if panel is not None:
                base, d_f = panel
                ax = axes[row, column]
                _panel(ax, budget, tables, base, d_f, colors, first=d_f == d_fs[0])
                ax.set_xlabel("pretraining tokens per parameter P")
                ax.set_ylabel(f"D_T ({UNIT_WORDS[budget.units]})")
    handles = _category_handles((_format_n(n), colors[n]) for n in n_values)
    handles.append(Line2D([], [], color="0.3", marker="o", lw=1.0, label="this table (line: one N's budgets)"))
    if any(usable(fit)[0] is not None for fit in budget.studies[0].fits.values()):
        handles.append(Line2D([], [], color="0.3", ls="--", lw=1.1, label="γ law: k·D_F^α·N^β·P^γ"))
    if len(tables) > 1 and not tables[1].empty:
        handles.append(Line2D([], [], color="0.3", marker="s", markerfacecolor="none", ls="",
                              label="compared table (hollow)"))
    handles.append(Line2D([], [], marker="X", color=FLAG_COLOR, ls="", label="D_T ≤ 0 (bottom edge)"))
    _legend_outside(figure, handles)
    return _save(figure, out_dir, "dt_vs_tpp", "Effective data transferred against pretraining tokens per parameter",
                 "A panel per pretraining distribution and fine-tuning set size D_F; colour: model size N. Filled points joined by a "
                 "line: one size fine-tuned from each of its pretraining budgets (this table); hollow squares: the "
                 "compared table; dashed: the γ law fitted on this table. Bars: 90% intervals (bootstrap over runs).")


def make_budget_figures(budget: BudgetStudy, out_dir: Path) -> list[SavedFigure | SkippedFigure]:
    out_dir = Path(out_dir)
    return draw_each([("dt_vs_tpp", lambda: plot_dt_vs_tpp(budget, out_dir))])
