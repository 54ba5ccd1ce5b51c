"""The plan's figure: predicted loss and effective-data multiplier against N, extrapolation dashed.

Same conventions as effdata.analysis.transfer.plots (object-oriented matplotlib, seaborn style, PNG + SVG).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator

from effdata.analysis.core.figures import (
    FLAG_COLOR,
    LEGEND_FONT,
    LOSS_LABEL,
    SCRATCH_COLOR,
    SavedFigure,
    _legend_outside,
    _new_figure,
    _pretrain_colors,
    _save,
    _style,
)
from effdata.analysis.plan.allocation import Allocator, own_flags
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
        outside = np.array([bool(extrapolation(plan.laws, option, n, d_f, d_e, plan.request))
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


# --------------------------------------------------------------------------- python -m effdata.plan --compute

def _compute_grid(found: Allocator, computes) -> np.ndarray:
    """From a decade below the smallest of the asked and fitted compute to a decade above the largest."""
    span = [*computes, *found.fitted_compute]
    return np.geomspace(min(span) / 10, max(span) * 10, CURVE_POINTS)


def _allocation_curves(found: Allocator, grid: np.ndarray, n_ax, ratio_ax) -> None:
    """N_opt(C) and D/N per rule: solid inside its own law's fitted range, dashed beyond, paper rules dotted."""
    colors = dict(zip([r.key for r in found.rules], sns.color_palette("deep", len(found.rules))))
    for rule in found.rules:
        n = np.array([rule.n_opt(c) for c in grid])
        ratio = grid / (6 * n) / n
        if rule.is_paper:
            n_ax.plot(grid, n, color=colors[rule.key], lw=1.2, ls=":", label=rule.label)
            ratio_ax.plot(grid, ratio, color=colors[rule.key], lw=1.2, ls=":")
            continue
        outside = np.array([bool(own_flags(found, rule, v, c)) for v, c in zip(n, grid)])
        _curve(n_ax, grid, n, outside, colors[rule.key], rule.label)
        _curve(ratio_ax, grid, ratio, outside, colors[rule.key], None)


def plot_allocation(found: Allocator, computes, out_dir: Path) -> SavedFigure:
    """N_opt against C and tokens per parameter against C, for every rule; the asked compute marked."""
    with matplotlib.rc_context(_style()):
        figure, (n_ax, ratio_ax) = _new_figure(2, width=5.0, height=4.0)
        grid = _compute_grid(found, computes)
        _allocation_curves(found, grid, n_ax, ratio_ax)
        for ax in (n_ax, ratio_ax):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("training compute C (FLOPs)")
            if found.fitted_compute:
                ax.axvspan(min(found.fitted_compute), max(found.fitted_compute), color="0.92", zorder=0)
            for c in computes:
                ax.axvline(c, color=FLAG_COLOR, lw=0.8, ls="-.")
        n_ax.set_ylabel("compute-optimal non-embedding parameters N_opt")
        ratio_ax.set_ylabel("tokens per parameter D/N at N_opt")
        handles, _ = n_ax.get_legend_handles_labels()
        handles += [Line2D([], [], color=FLAG_COLOR, ls="--", label="outside the law's fitted range"),
                    Line2D([], [], color=FLAG_COLOR, ls="-.", lw=0.8, label="compute asked for"),
                    Patch(color="0.92", label="compute the fitted laws span")]
        _legend_outside(figure, handles)
        figure.suptitle(f"Compute allocation: laws fitted on {found.source}", fontsize="small")
        return _save(figure, Path(out_dir), "allocation", "Compute-optimal model size and data against compute",
                     "N_opt(C) and D/N for each law's allocation and the papers' rules (dotted); dashed: outside the "
                     "law's fitted range; shaded: the compute its fitted laws span.")
