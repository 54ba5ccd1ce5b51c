"""The shape study's figures: each quantity against depth at fixed N, with 90% intervals. No torch.

Same conventions as effdata.analysis.transfer.plots (object-oriented matplotlib, seaborn style, PNG + SVG). One
panel per group of shapes at one N (and pretraining name); depth on a log2 axis labelled with each shape's
layers × width; bars are 90% intervals of the bootstrap over runs (losses: seeds re-drawn; D_T: both
curves re-drawn).

  shape_pretraining   the loss before fine-tuning against depth: the pretraining runs' own held-out loss,
                      and the from-scratch loss at the largest data size (Kaplan et al.'s claim)
  shape_finetuned     the fine-tuned loss against depth, one line per D_F (Tay et al.'s claim)
  shape_dt            D_T against depth per D_F: read off each shape's own curve (solid) and off the
                      reference shape's (dashed)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator

from effdata.analysis.core.figures import (
    LOSS_LABEL,
    UNIT_WORDS,
    SavedFigure,
    SkippedFigure,
    _dodge,
    _interval_errors,
    _legend_outside,
    _new_figure,
    _save,
    _tidy_log_axis,
    draw_each,
)
from effdata.analysis.shape.compare import DepthSeries, GroupResult, ShapeStudy
from effdata.fmt import compact


def _depth_axis(ax, result: GroupResult) -> None:
    """log2 depth, ticked at each shape's depth and labelled layers × width."""
    shapes = [s for s in result.group.shapes if np.isfinite(s.n_layer)]
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator([s.n_layer for s in shapes]))
    labels = {s.n_layer: f"{s.n_layer:.0f}×{s.d_model:.0f}" if np.isfinite(s.d_model) else f"{s.n_layer:.0f}"
              for s in shapes}
    ax.xaxis.set_major_formatter(lambda value, _: labels.get(value, ""))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.tick_params(axis="x", labelrotation=45)
    ax.set_xlabel("layers × width (log₂ depth)")


def _draw(ax, series: DepthSeries, color, label: str, index: int = 0, count: int = 1, style: str = "-",
          floor: float | None = None) -> None:
    """The series against depth with its 90% interval; positions dodged when several share the panel."""
    x = _dodge(series.depth, index, count, spread=0.03)
    lo, hi = series.interval()
    value = series.value if floor is None else np.where(series.value > 0, series.value, floor)
    ax.plot(x, value, color=color, ls=style, lw=1.2, marker="o", ms=4, label=label)
    ax.errorbar(x, value, yerr=_interval_errors(value, lo, hi, floor), fmt="none", ecolor=color, elinewidth=0.9,
                capsize=2, alpha=0.8)


def _panels(study: ShapeStudy, quantity: str) -> list[tuple[GroupResult, str]]:
    """(group, pretraining name) pairs that have series of this quantity."""
    return [(result, pretrain) for result in study.groups for pretrain in result.pretrains
            if pretrain != "none" and result.of(quantity, pretrain)]


def plot_shape_pretraining(study: ShapeStudy, out_dir: Path) -> SavedFigure | SkippedFigure:
    panels = [r for r in study.groups if any(s.quantity in ("pretraining loss", "from-scratch loss") for s in r.series)]
    if not panels:
        return SkippedFigure("shape_pretraining", "no pretraining runs or from-scratch runs shared by the shapes")
    figure, axes = _new_figure(len(panels), width=3.8)
    colors = dict(zip(("pretraining loss", "from-scratch loss"), sns.color_palette("deep", 2)))
    for ax, result in zip(axes, panels):
        shown = [s for s in result.series if s.quantity in colors]
        for index, series in enumerate(shown):
            label = (f"pretraining on {series.pretrain}, own held-out loss" if series.quantity == "pretraining loss"
                     else f"from scratch on the target, D = {compact(series.data)}")
            _draw(ax, series, colors[series.quantity], label, index, len(shown))
        _depth_axis(ax, result)
        ax.set_ylabel(LOSS_LABEL.replace("target ", ""))
        ax.set_title(result.group.title, fontsize="small")
    handles = {h.get_label(): h for ax in axes for h in ax.get_legend_handles_labels()[0]}
    _legend_outside(figure, list(handles.values()))
    return _save(figure, out_dir, "shape_pretraining", "Loss before fine-tuning against depth at fixed N",
                 "Kaplan et al. (2020): hardly any effect of shape at fixed N. Each panel is one N; bars: 90% "
                 "intervals (seeds re-drawn; single-seed points with the measured seed noise).")


def _d_f_palette(panels, quantity: str) -> tuple[list[float], dict]:
    """The fine-tuning set sizes drawn in any panel, and one colour each (shared by every panel)."""
    d_fs = sorted({s.d_f for result, pretrain in panels for s in result.of(quantity, pretrain)})
    return d_fs, dict(zip(d_fs, sns.color_palette("mako_r", len(d_fs))))


def plot_shape_finetuned(study: ShapeStudy, out_dir: Path, units: str) -> SavedFigure | SkippedFigure:
    panels = _panels(study, "fine-tuned loss")
    if not panels:
        return SkippedFigure("shape_finetuned", "no fine-tuned runs of two shapes at one N")
    figure, axes = _new_figure(len(panels), width=3.8)
    d_fs, palette = _d_f_palette(panels, "fine-tuned loss")
    for ax, (result, pretrain) in zip(axes, panels):
        series = result.of("fine-tuned loss", pretrain)
        for index, s in enumerate(series):
            _draw(ax, s, palette[s.d_f], f"D_F = {compact(s.d_f)}", index, len(series))
        _depth_axis(ax, result)
        ax.set_ylabel(LOSS_LABEL)
        ax.set_title(f"{result.group.title}, fine-tuned from {pretrain}", fontsize="small")
    handles = [Line2D([], [], color=palette[d], marker="o", label=f"D_F = {compact(d)} {UNIT_WORDS[units]}")
               for d in d_fs]
    _legend_outside(figure, handles)
    return _save(figure, out_dir, "shape_finetuned", "Fine-tuned loss against depth at fixed N",
                 "Tay et al. (2021): after fine-tuning shape matters, deeper is better. One line per fine-tuning "
                 "set size D_F; bars: 90% intervals (bootstrap over runs).")


def plot_shape_dt(study: ShapeStudy, out_dir: Path, units: str) -> SavedFigure | SkippedFigure:
    panels = _panels(study, "D_T")
    if not panels:
        return SkippedFigure("shape_dt", "no D_T of two shapes at one N")
    figure, axes = _new_figure(len(panels), width=3.8)
    d_fs, palette = _d_f_palette(panels, "D_T")
    for ax, (result, pretrain) in zip(axes, panels):
        views = result.of("D_T", pretrain) + result.of("D_T (reference curve)", pretrain)
        positive = np.concatenate([s.value[s.value > 0] for s in views] + [np.array([])])
        floor = (positive.min() if positive.size else 1.0) / 2   # D_T <= 0 is drawn at the bottom edge
        for index, s in enumerate(views):
            _draw(ax, s, palette[s.d_f], f"D_F = {compact(s.d_f)}", index, len(views),
                  style="-" if s.quantity == "D_T" else "--", floor=floor)
        _depth_axis(ax, result)
        ax.set_yscale("log")
        _tidy_log_axis(ax.yaxis)
        ax.set_ylabel(f"effective data transferred D_T ({UNIT_WORDS[units]})")
        ax.set_title(f"{result.group.title}, fine-tuned from {pretrain}\nreference: {result.group.reference.name}",
                     fontsize="small")
    handles = [Line2D([], [], color=palette[d], marker="o", label=f"D_F = {compact(d)}") for d in d_fs]
    handles += [Line2D([], [], color="0.4", ls="-", label="own shape's curve"),
                Line2D([], [], color="0.4", ls="--", label="reference shape's curve")]
    _legend_outside(figure, handles)
    return _save(figure, out_dir, "shape_dt", "Effective data transferred against depth at fixed N",
                 "Solid: D_T read off each shape's own from-scratch curve (transfer within the shape); dashed: off "
                 "the reference shape's curve (the whole benefit of the shape and its pretraining). Bars: 90% "
                 "intervals (bootstrap over runs, both curves re-drawn); D_T ≤ 0 is drawn at the bottom edge.")


def make_shape_figures(study: ShapeStudy, out_dir: Path) -> list[SavedFigure | SkippedFigure]:
    out_dir = Path(out_dir)
    makers = [("shape_pretraining", lambda: plot_shape_pretraining(study, out_dir)),
              ("shape_finetuned", lambda: plot_shape_finetuned(study, out_dir, study.units)),
              ("shape_dt", lambda: plot_shape_dt(study, out_dir, study.units))]
    return draw_each(makers)
