"""The report's *Shape* section: shapes at equal N compared, with a one-line verdict per claim. No torch.

Per group of shapes at one N (analysis/shape.py, shape_compare.py): the verdicts on Kaplan et al.'s claim (the loss before
fine-tuning hardly depends on shape), Tay et al.'s (after fine-tuning it does, deeper is better) and on
D_T, each with its 90% interval; then the numbers per shape, D_T from both views, each shape's D_T series
as a law in D_F, and the statistic per quantity.
"""
from __future__ import annotations

import math

import numpy as np

from effdata.analysis.shape.compare import (
    DepthEffect,
    DepthSeries,
    GroupResult,
    ShapeStudy,
)
from effdata.fmt import compact, sig

UNIT_WORDS = {"chars": "characters", "tokens": "tokens"}
CLAIMS = {
    "kaplan": "**Kaplan et al. 2020** (the loss before fine-tuning hardly depends on shape at fixed N: "
              "\"a few percent\" over a wide range of shapes)",
    "tay": "**Tay et al. 2021** (after fine-tuning shape matters, and deeper is better: DeepNarrow)",
    "d_t": "**D_T** (not measured before)",
}


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows] + [""]


def _percent(value: float, signed: bool = True) -> str:
    return f"{100 * value:+.2g}%" if signed else f"{100 * value:.2g}%"


def slope_text(effect: DepthEffect) -> str:
    """'−1.2% [−2.0%, −0.4%] of the loss' or '×1.3 [×1.1, ×1.5]' per doubling of depth."""
    lo, hi = effect.slope_interval
    if effect.kind == "relative":
        return f"{_percent(effect.slope)} [{_percent(lo)}, {_percent(hi)}]"
    return f"×{sig(math.exp(effect.slope))} [×{sig(math.exp(lo))}, ×{sig(math.exp(hi))}]"


def spread_text(effect: DepthEffect) -> str:
    lo, hi = effect.spread_interval
    if effect.kind == "relative":
        return f"{_percent(effect.spread, False)} [{_percent(lo, False)}, {_percent(hi, False)}]"
    return f"×{sig(math.exp(effect.spread))} [×{sig(math.exp(lo))}, ×{sig(math.exp(hi))}]"


def _over(effect: DepthEffect, units: str) -> str:
    if not effect.d_f:
        return ""
    return f" (mean over D_F = {', '.join(compact(d) for d in effect.d_f)} {UNIT_WORDS[units]})"


def verdicts(result: GroupResult, pretrain: str, units: str) -> list[str]:
    """One line per claim, each with its statistic's 90% intervals and what they say."""
    lines = []
    upstream = result.effect("pretraining loss", pretrain) or result.effect("from-scratch loss", "none")
    if upstream is not None:
        what = (f"the `{pretrain}` pretraining runs' loss on their own held-out data" if upstream.quantity ==
                "pretraining loss" else "the from-scratch loss at the largest data size")
        lines.append(f"- {CLAIMS['kaplan']}: {what} changes by {slope_text(upstream)} per doubling of depth and "
                     f"spans {spread_text(upstream)} of its mean over {upstream.depths[0]:.0f}–{upstream.depths[1]:.0f} "
                     f"layers: **{upstream.direction}**.")
    tuned = result.effect("fine-tuned loss", pretrain)
    if tuned is not None:
        lines.append(f"- {CLAIMS['tay']}: the loss fine-tuned from `{pretrain}` changes by {slope_text(tuned)} per "
                     f"doubling of depth{_over(tuned, units)} and spans {spread_text(tuned)} of its mean: "
                     f"**{tuned.direction}**.")
    own, reference = result.effect("D_T", pretrain), result.effect("D_T (reference curve)", pretrain)
    if own is not None:
        second = (f"; read off the reference shape's curve (the whole benefit of the shape and its pretraining) "
                  f"{slope_text(reference)}: **{reference.direction}**" if reference is not None else "")
        lines.append(f"- {CLAIMS['d_t']}: per doubling of depth, D_T read off each shape's own from-scratch curve is "
                     f"multiplied by {slope_text(own)}{_over(own, units)}, its range over the shapes a factor "
                     f"{spread_text(own)}: **{own.direction}**{second}.")
    return lines


def _cell(series: DepthSeries | None, shape, digits: int = 4, seeds: bool = True) -> str:
    if series is None or shape not in series.shapes:
        return "—"
    i = series.shapes.index(shape)
    lo, hi = series.interval()
    seeds = f" ({series.seeds[i]:.0f} seeds)" if seeds and series.seeds[i] > 1 else ""
    interval = f" [{sig(lo[i], digits)}, {sig(hi[i], digits)}]" if np.isfinite(lo[i]) else ""
    return f"{sig(series.value[i], digits)}{interval}{seeds}"


def _shape_cell(result: GroupResult, shape) -> str:
    mark = " (reference)" if shape == result.group.reference else ""
    return f"{shape.describe()}{mark}"


def loss_table(result: GroupResult, pretrain: str, units: str) -> list[str]:
    """Per shape: N, pretraining loss, from-scratch loss at the largest common D, fine-tuned loss per D_F."""
    pre = next(iter(result.of("pretraining loss", pretrain)), None)
    scratch = next(iter(result.of("from-scratch loss", "none")), None)
    tuned = result.of("fine-tuned loss", pretrain)
    header = ["shape (layers × width)", "N", f"pretraining loss, own data (`{pretrain}`)"]
    if scratch is not None:
        header.append(f"from scratch, D = {compact(scratch.data)}")
    header += [f"fine-tuned, D_F = {compact(s.d_f)}" for s in tuned]
    rows = []
    for shape in result.group.shapes:
        row = [_shape_cell(result, shape), compact(shape.n_params), _cell(pre, shape)]
        row += [_cell(scratch, shape)] if scratch is not None else []
        rows.append(row + [_cell(s, shape) for s in tuned])
    return [f"Losses in nats/token with 90% intervals (bootstrap over runs); D in {UNIT_WORDS[units]}:", "",
            *_table(header, rows)]


def d_t_table(result: GroupResult, pretrain: str, units: str) -> list[str]:
    """D_T per shape and D_F, off each shape's own curve and off the reference shape's."""
    own = {s.d_f: s for s in result.of("D_T", pretrain)}
    ref = {s.d_f: s for s in result.of("D_T (reference curve)", pretrain)}
    d_fs = sorted(set(own) | set(ref))
    header = ["shape"] + [f"D_T at D_F = {compact(d)}: own curve / reference curve" for d in d_fs]
    rows = [[_shape_cell(result, shape)] + [f"{_cell(own.get(d), shape, 3, False)} / {_cell(ref.get(d), shape, 3, False)}"
                                            for d in d_fs] for shape in result.group.shapes]
    return [f"D_T ({UNIT_WORDS[units]}) with 90% intervals: read off each shape's own from-scratch curve (transfer "
            f"within the shape), and off the reference shape's ({result.group.reference.name}) curve:", "",
            *_table(header, rows)]


def transfer_table(result: GroupResult, pretrain: str, units: str) -> list[str]:
    """Each shape's D_T series as a law in D_F at this N, beside the reference shape's."""
    rows = [[_shape_cell(result, t.shape), "own curve" if t.view == "D_T" else "reference curve",
             f"{sig(t.alpha)} [{sig(t.alpha_interval[0])}, {sig(t.alpha_interval[1])}]",
             f"{sig(t.d_t_mid)} [{sig(t.d_t_mid_interval[0])}, {sig(t.d_t_mid_interval[1])}]",
             f"×{sig(t.ratio)} [×{sig(t.ratio_interval[0])}, ×{sig(t.ratio_interval[1])}]", str(t.points)]
            for t in result.transfer if t.pretrain == pretrain]
    if not rows:
        return ["No shape has D_T > 0 at two D_F: no D_T series to fit.", ""]
    mid = next(t.d_f_mid for t in result.transfer if t.pretrain == pretrain)
    return [f"Each shape's D_T against D_F at this N, log D_T = c + α·(log D_F − mean): α, D_T at the mean D_F "
            f"({compact(mid)} {UNIT_WORDS[units]}) and its ratio to the reference shape's, with 90% intervals:", "",
            *_table(["shape", "D_T read off", "α [90%]", f"D_T at D_F = {compact(mid)} [90%]",
                     "÷ reference shape's [90%]", "D_F"], rows)]


def effect_table(result: GroupResult) -> list[str]:
    rows = [[e.quantity, e.pretrain, slope_text(e), spread_text(e), e.direction,
             ", ".join(compact(d) for d in e.d_f) or "—",
             f"{100 * e.dropped:.0f}%" + (f"; D_F {', '.join(compact(d) for d in e.left_out)} left out (D_T ≤ 0)"
                                          if e.left_out else "")]
            for e in result.effects]
    return ["The statistic behind the verdicts (docs/METHOD.md §3): slope against log₂(depth) of the loss relative "
            "to its mean over the shapes (a share of the loss per doubling of depth) or of log D_T (a factor per "
            "doubling), averaged over D_F; spread: the range over the shapes (share of the mean loss; ratio of the "
            "largest to the smallest D_T); 90% intervals over the bootstrap resamples.", "",
            *_table(["quantity", "pretrain", "per doubling of depth [90%]", "spread over shapes [90%]", "reading",
                     "D_F averaged", "resamples without a value"], rows)]


def _group_lines(result: GroupResult, units: str) -> list[str]:
    g = result.group
    depths = [s.n_layer for s in g.shapes if np.isfinite(s.n_layer)]
    span = f", {min(depths):.0f}–{max(depths):.0f} layers" if depths else ""
    lines = [f"### {g.title}: {len(g.shapes)} shapes{span}", "",
             f"Reference shape: {g.reference.describe()}, {g.reference_why}.", ""]
    for pretrain in result.pretrains:
        if pretrain == "none":
            continue
        lines += [f"**Verdicts, pretrained on `{pretrain}`** (90% intervals):", "", *verdicts(result, pretrain, units), ""]
        lines += loss_table(result, pretrain, units) + d_t_table(result, pretrain, units)
        lines += transfer_table(result, pretrain, units)
    lines += effect_table(result)
    return lines + [f"- {note}" for note in result.notes] + [""]


def shape_section(study: ShapeStudy) -> list[str]:
    lines = ["## Shape: depth and width at equal N", "",
             "The table holds several shapes at one N. They are never averaged together: each shape has its own "
             "from-scratch curve, and each fine-tune's D_E is read off its own shape's curve (transfer within the "
             "shape) and, as a second view, off the reference shape's curve (what choosing this shape and "
             "pretraining it is worth in the reference shape's from-scratch data). The laws across N above use "
             "each N's reference shape only.", ""]
    for result in study.groups:
        lines += _group_lines(result, study.units)
    return lines
