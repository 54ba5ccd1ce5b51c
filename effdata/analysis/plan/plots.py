"""The plan's figure: predicted loss and effective-data multiplier against N, extrapolation dashed.

Same conventions as effdata.analysis.transfer.plots (object-oriented matplotlib, seaborn style, PNG + SVG).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator

from effdata.analysis.core.figures import (
    LEGEND_FONT,
    LOSS_LABEL,
    SCRATCH_COLOR,
    SavedFigure,
    _new_figure,
    _pretrain_colors,
    _save,
    _style,
)
from effdata.analysis.plan.planner import SCRATCH, Plan, extrapolation, predict
from effdata.fmt import compact

CURVE_POINTS = 200


def _tick(value: float, _position=None) -> str:
    return f"{value:g}" if 1e-2 <= value < 1e3 else compact(value)


def _readable_log_axis(ax, which: str) -> None:
    """Labels 1e5, 2e5, 5e5 over two decades or less (matplotlib's own minor labels, 3×10^4 4×10^4 ..., ran
    into each other), one per decade beyond, and no minor labels."""
    low, high = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())   # get_*lim settles autoscaling
    axis = ax.xaxis if which == "x" else ax.yaxis
    subs = (1.0, 2.0, 5.0) if high / low <= 1e2 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
    axis.set_major_formatter(FuncFormatter(_tick))
    axis.set_minor_formatter(FuncFormatter(lambda value, _: ""))


def _curve(ax, n, values, outside, color, label) -> bool:
    """Solid where every law is inside its fitted range, dashed where any is not."""
    inside = np.ma.masked_where(outside, values)
    beyond = np.ma.masked_where(~outside, values)
    # Dashed segments share their end point with the solid ones so the curve stays continuous.
    edges = np.flatnonzero(np.diff(outside.astype(int)) != 0)
    for edge in edges:
        beyond[edge:edge + 2] = values[edge:edge + 2]
    ax.plot(n, inside, color=color, lw=1.6, label=label)
    ax.plot(n, beyond, color=color, lw=1.3, ls="--")
    return bool(outside.any())


def _grid(plan: Plan) -> np.ndarray:
    low = min(plan.sizes)
    high = max([*plan.sizes, *(best.n_params for best in plan.best)])
    return np.geomspace(low, high if high > low else low * 10, CURVE_POINTS)


def _draw(plan: Plan, loss_ax, multiplier_ax) -> bool:
    """The curves, candidate sizes and best sizes; True if any curve leaves a law's fitted range."""
    grid, d_f = _grid(plan), plan.request.d_f
    colors = {SCRATCH: SCRATCH_COLOR, **_pretrain_colors([o for o in plan.options if o != SCRATCH])}
    dashed = False
    for option in plan.options:
        predicted = predict(plan.laws, option, grid, d_f)
        outside = np.array([bool(extrapolation(plan.laws, option, n, d_f, d_e))
                            for n, d_e in zip(grid, predicted["d_e"])])
        label = "from scratch" if option == SCRATCH else f"fine-tuned from {option}"
        dashed |= _curve(loss_ax, grid, predicted["loss"], outside, colors[option], label)
        rows = plan.rows[plan.rows["pretrain"] == option]
        loss_ax.scatter(rows["n_params"], rows["loss"], color=colors[option], s=22, zorder=3)
        if option != SCRATCH and multiplier_ax is not None:
            _curve(multiplier_ax, grid, predicted["multiplier"], outside, colors[option], label)
            multiplier_ax.scatter(rows["n_params"], rows["multiplier"], color=colors[option], s=22, zorder=3)
    for best in plan.best:
        loss_ax.scatter([best.n_params], [best.loss], marker="*", s=180, color=colors[best.pretrain],
                        edgecolors="black", linewidths=0.6, zorder=4)
    return dashed


def plot_plan(plan: Plan, out_dir: Path) -> SavedFigure:
    with matplotlib.rc_context(_style()):
        with_transfer = len(plan.options) > 1
        figure, axes = _new_figure(2 if with_transfer else 1, width=5.2, height=4.0)
        loss_ax, multiplier_ax = axes[0], axes[1] if with_transfer else None
        dashed = _draw(plan, loss_ax, multiplier_ax)
        for ax in axes:
            ax.set_xscale("log")
            _readable_log_axis(ax, "x")
            ax.set_xlabel("non-embedding parameters N")
        loss_ax.set_ylabel("predicted " + LOSS_LABEL)
        loss_ax.set_title(f"D_F = {compact(plan.request.d_f)} characters of target data", fontsize="small")
        handles, _ = loss_ax.get_legend_handles_labels()
        if dashed:
            handles.append(Line2D([], [], color="0.4", ls="--", label="outside a law's fitted range"))
        if plan.best:
            handles.append(Line2D([], [], marker="*", color="0.4", ls="", markersize=11,
                                  label=f"best within {compact(plan.request.budget)} FLOPs"))
        loss_ax.legend(handles=handles, fontsize=LEGEND_FONT)
        if multiplier_ax is not None:
            multiplier_ax.set_yscale("log")
            _readable_log_axis(multiplier_ax, "y")
            multiplier_ax.set_ylabel("effective data multiplier D_E / D_F")
            multiplier_ax.set_title("what pretraining is worth, in multiples of the target data", fontsize="small")
            multiplier_ax.legend(fontsize=LEGEND_FONT)
        source = "PAPER laws (not measured here)" if plan.laws.is_paper else f"laws fitted on {plan.laws.source}"
        figure.suptitle(f"Planner: {source}", fontsize="small")
        return _save(figure, Path(out_dir), "plan", "Predicted loss and effective data against model size",
                     "Lines: the laws' predictions; dots: the candidate sizes; dashed: outside a law's fitted range; "
                     "stars: the best size within the compute budget.")
