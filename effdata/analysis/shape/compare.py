"""The shapes of one N compared: each quantity against depth, the verdict statistic, each shape's D_T series.

Per group of shapes at one N (`shape.find_groups`) and pretraining name (docs/METHOD.md §3):

* `DepthSeries`: one quantity per shape, with its value re-drawn in every resample of the bootstrap over
  runs: the pretraining runs' loss on their own distribution (Kaplan et al.'s claim), the from-scratch loss
  at the largest common D, the fine-tuned loss per D_F (Tay et al.'s claim), D_T per D_F read off each
  shape's own from-scratch curve (transfer within a shape) and off the reference shape's curve (the whole
  benefit of choosing that shape and pretraining it);
* `DepthEffect`, the verdict statistic: the slope of the quantity against log2(depth) (a loss relative to
  its mean over the shapes; log D_T), averaged over D_F, and its spread over the shapes, each with the 90%
  interval of its re-drawn values;
* `ShapeTransfer`: each shape's D_T series as a law in D_F at fixed N, log D_T = c + α (log D_F − mean),
  and its D_T relative to the reference shape's, with intervals;
* `shape_blocks`: what fits.json's `shape` key holds for the planner (docs/planning.md, "The `shape` block").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from effdata.analysis.core.bootstrap import (
    NoiseModel,
    Resamples,
    percentile_interval,
    pooled_relative_sd,
    read_off_curve,
    redraw_points,
)
from effdata.analysis.core.effective import EffectiveResult
from effdata.analysis.core.fit import jsonable
from effdata.analysis.core.table import ResultsTable
from effdata.analysis.shape.groups import Shape, ShapeGroup, row_keys

# Which way is better, and how the statistic reads the quantity: a loss relative to its mean over the
# shapes (the slope is a fraction of the loss per doubling of depth), D_T in log (a factor per doubling).
QUANTITIES = {
    "pretraining loss": ("relative", "lower"),
    "from-scratch loss": ("relative", "lower"),
    "fine-tuned loss": ("relative", "lower"),
    "D_T": ("log", "higher"),
    "D_T (reference curve)": ("log", "higher"),
}


# --------------------------------------------------------------------------- quantities against depth

@dataclass
class DepthSeries:
    """One quantity for each shape of a group (one pretraining name, one D_F or none), re-drawn B times."""

    quantity: str                # a key of QUANTITIES
    pretrain: str
    d_f: float | None
    shapes: tuple[Shape, ...]    # shallow to deep, those with a value
    value: np.ndarray            # (S,)
    draws: np.ndarray            # (B, S)
    seeds: np.ndarray            # (S,) seeds per point
    data: float | None = None    # the data size of a from-scratch series (D_F of a fine-tuned one is `d_f`)

    @property
    def depth(self) -> np.ndarray:
        return np.array([s.n_layer for s in self.shapes], float)

    def interval(self) -> tuple[np.ndarray, np.ndarray]:
        return percentile_interval(self.draws)

    def to_dict(self) -> dict:
        lo, hi = self.interval()
        return {"quantity": self.quantity, "pretrain": self.pretrain, "d_f": self.d_f, "data": self.data,
                "shapes": [{"name": s.name, "shape": s.label, "n_params": s.n_params, "n_layer": s.n_layer,
                            "d_model": s.d_model, "value": v, "interval": [a, b], "seeds": int(n)}
                           for s, v, a, b, n in zip(self.shapes, self.value, lo, hi, self.seeds)]}


def interval_of(draws: np.ndarray) -> tuple[float, float]:
    """The 90% interval of one statistic's draws (B,), over its finite values; (nan, nan) without any."""
    finite = draws[np.isfinite(draws)]
    if not len(finite):
        return math.nan, math.nan
    lo, hi = percentile_interval(finite[:, None])
    return float(lo[0]), float(hi[0])


def _transform(values: np.ndarray, kind: str) -> np.ndarray:
    """(..., S) -> the quantity the statistic reads: relative to the mean over shapes, or log (nan if <= 0)."""
    if kind == "relative":
        return values / values.mean(axis=-1, keepdims=True) - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log(np.where(values > 0, values, np.nan))


def slope_and_spread(values: np.ndarray, depth: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(..., S) values at depths (S,) -> (slope against log2 depth, spread max − min), each (...,)."""
    y = _transform(np.asarray(values, float), kind)
    x = np.log2(depth) - np.log2(depth).mean()
    slope = (y * x).sum(axis=-1) / (x * x).sum()
    return slope, y.max(axis=-1) - y.min(axis=-1)


@dataclass
class DepthEffect:
    """The verdict statistic of one quantity (docs/METHOD.md §3): slope per doubling of depth and spread."""

    quantity: str
    pretrain: str
    kind: str                    # "relative" (fraction of the loss) or "log" (log D_T)
    better: str                  # "lower" or "higher"
    slope: float
    slope_interval: tuple[float, float]
    spread: float
    spread_interval: tuple[float, float]
    d_f: tuple[float, ...]       # the series averaged over (empty: one series without D_F)
    depths: tuple[float, float]
    dropped: float = 0.0         # share of resamples without a value (a re-drawn D_T <= 0)
    left_out: tuple[float, ...] = ()   # D_F whose series has a D_T <= 0 (no log)

    @property
    def direction(self) -> str:
        """Deeper is better / worse when the slope's interval excludes 0; else no clear effect."""
        low, high = self.slope_interval
        up_is_better = self.better == "higher"
        if low > 0:
            return "deeper is better" if up_is_better else "deeper is worse"
        if high < 0:
            return "deeper is worse" if up_is_better else "deeper is better"
        return "no clear effect of depth (the interval holds 0)"

    def to_dict(self) -> dict:
        return jsonable({**self.__dict__, "direction": self.direction})


def depth_effect(series: list[DepthSeries]) -> DepthEffect | None:
    """The statistic over the series of one quantity (mean over D_F); None without >= 2 depths."""
    kind, better = QUANTITIES[series[0].quantity]
    usable = [s for s in series if len(s.shapes) >= 2 and np.isfinite(s.depth).all() and len(set(s.depth)) >= 2]
    if kind == "log":
        left_out = tuple(s.d_f for s in usable if not (s.value > 0).all())
        usable = [s for s in usable if (s.value > 0).all()]
    else:
        left_out = ()
    if not usable:
        return None
    point = [slope_and_spread(s.value, s.depth, kind) for s in usable]
    draws = [slope_and_spread(s.draws, s.depth, kind) for s in usable]
    slope_draws, spread_draws = (np.mean([d[i] for d in draws], axis=0) for i in (0, 1))
    finite = np.isfinite(slope_draws)
    depths = np.concatenate([s.depth for s in usable])
    return DepthEffect(quantity=series[0].quantity, pretrain=series[0].pretrain, kind=kind, better=better,
                       slope=float(np.mean([p[0] for p in point])), slope_interval=interval_of(slope_draws),
                       spread=float(np.mean([p[1] for p in point])), spread_interval=interval_of(spread_draws),
                       d_f=tuple(s.d_f for s in usable if s.d_f is not None), depths=(depths.min(), depths.max()),
                       dropped=float(1 - finite.mean()), left_out=left_out)


# --------------------------------------------------------------------------- each shape's D_T series

@dataclass
class ShapeTransfer:
    """One shape's D_T against D_F at fixed N: log D_T = c + α (log D_F − mean log D_F), and D_T relative
    to the reference shape's at the mean D_F, e^(c − c_ref), from one view (own or reference curve)."""

    shape: Shape
    pretrain: str
    view: str                    # "D_T" (own curve) or "D_T (reference curve)"
    d_f_mid: float               # exp(mean log D_F): where c and the ratio are read
    alpha: float
    alpha_interval: tuple[float, float]
    d_t_mid: float
    d_t_mid_interval: tuple[float, float]
    ratio: float                 # D_T / the reference shape's D_T at d_f_mid
    ratio_interval: tuple[float, float]
    points: int

    def to_dict(self) -> dict:
        return jsonable({**{k: v for k, v in self.__dict__.items() if k != "shape"}, "name": self.shape.name,
                         "shape": self.shape.label, "n_layer": self.shape.n_layer, "d_model": self.shape.d_model})


def _log_law(d_f: np.ndarray, d_t: np.ndarray, centre: float) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of log D_T on log D_F − centre over the last axis: (c, alpha), nan where a D_T <= 0."""
    x = np.log(d_f) - centre
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.log(np.where(d_t > 0, d_t, np.nan))
    xc = x - x.mean()
    alpha = ((y - y.mean(axis=-1, keepdims=True)) * xc).sum(axis=-1) / (xc * xc).sum()
    return y.mean(axis=-1) - alpha * x.mean(), alpha


def shape_transfer(series: list[DepthSeries], reference: Shape) -> list[ShapeTransfer]:
    """Each shape's law in D_F from the D_T series of one view (one per D_F), beside the reference's."""
    by_shape: dict[Shape, list[tuple[float, float, np.ndarray]]] = {}
    for s in series:
        for i, shape in enumerate(s.shapes):
            by_shape.setdefault(shape, []).append((s.d_f, s.value[i], s.draws[:, i]))
    centre = float(np.mean(np.log([s.d_f for s in series])))
    fitted = {}
    for shape, points in by_shape.items():
        if len({p[0] for p in points}) < 2 or not all(p[1] > 0 for p in points):
            continue
        d_f = np.array([p[0] for p in points])
        point = _log_law(d_f, np.array([p[1] for p in points]), centre)
        draws = _log_law(d_f, np.stack([p[2] for p in points], axis=1), centre)
        fitted[shape] = (point, draws, len(points))
    # Without a reference law (its D_T <= 0 somewhere) the ratios are nan; each shape's own law still shows.
    (c_ref, _), (c_ref_draws, _), _ = fitted.get(reference, ((math.nan, 0.0), (math.nan, 0.0), 0))
    out = []
    for shape, ((c, alpha), (c_draws, alpha_draws), count) in fitted.items():
        out.append(ShapeTransfer(
            shape=shape, pretrain=series[0].pretrain, view=series[0].quantity, d_f_mid=math.exp(centre),
            alpha=float(alpha), alpha_interval=interval_of(alpha_draws), d_t_mid=float(np.exp(c)),
            d_t_mid_interval=interval_of(np.exp(c_draws)), ratio=float(np.exp(c - c_ref)),
            ratio_interval=interval_of(np.exp(c_draws - c_ref_draws)), points=count))
    return sorted(out, key=lambda t: (t.shape.n_layer, t.shape.name))


# --------------------------------------------------------------------------- building the series

def _positions(frame: pd.DataFrame, group: ShapeGroup, mask: np.ndarray) -> list[tuple[Shape, int]]:
    """(shape, positional row) of the rows in `mask` that belong to the group, in the group's depth order."""
    where = {key: i for i, key in enumerate(row_keys(frame)) if mask[i]}
    return [(shape, where[shape.key]) for shape in group.shapes if shape.key in where]


def _run_series(quantity: str, group: ShapeGroup, results: ResultsTable, losses: np.ndarray, mode: str,
                pretrain: str, d: float) -> DepthSeries | None:
    """A loss series of grid points (seeds averaged) of one mode and data size, re-drawn as the bootstrap did."""
    runs = results.runs
    mask = ((runs["mode"] == mode) & (runs["pretrain"] == pretrain) & np.isclose(runs[results.data_column], d)).to_numpy()
    found = _positions(runs, group, mask)
    if len(found) < 2:
        return None
    rows = [i for _, i in found]
    return DepthSeries(quantity=quantity, pretrain=pretrain, d_f=None if mode == "scratch" else float(d),
                       shapes=tuple(s for s, _ in found), value=runs["loss"].to_numpy(float)[rows],
                       draws=losses[:, rows], seeds=runs["n_seeds"].to_numpy(float)[rows], data=float(d))


def _d_t_series(group: ShapeGroup, effective: EffectiveResult, d_t_draws: np.ndarray, pretrain: str,
                d_f: float) -> DepthSeries | None:
    """D_T read off each shape's own from-scratch curve, with the bootstrap's re-read values."""
    table = effective.table
    mask = ((table["pretrain"] == pretrain) & np.isclose(table["d_f"], d_f) & ~table["no_scratch"]).to_numpy()
    found = _positions(table, group, mask)
    if len(found) < 2:
        return None
    rows = [i for _, i in found]
    return DepthSeries(quantity="D_T", pretrain=pretrain, d_f=float(d_f), shapes=tuple(s for s, _ in found),
                       value=table["d_t"].to_numpy(float)[rows], draws=d_t_draws[:, rows],
                       seeds=table["n_seeds"].to_numpy(float)[rows])


def _reference_series(fine_tuned: DepthSeries, group: ShapeGroup, results: ResultsTable,
                      effective: EffectiveResult, losses: np.ndarray) -> DepthSeries | None:
    """D_T of each shape's fine-tunes read off the reference shape's from-scratch curve, re-read per resample."""
    curve = effective.curves.get(group.reference.key)
    if curve is None:
        return None
    d_e, _ = curve.invert_many(fine_tuned.value)
    d_e_draws = read_off_curve(results, losses, group.reference.key, curve.weights, fine_tuned.draws)
    return DepthSeries(quantity="D_T (reference curve)", pretrain=fine_tuned.pretrain, d_f=fine_tuned.d_f,
                       shapes=fine_tuned.shapes, value=d_e - fine_tuned.d_f, draws=d_e_draws - fine_tuned.d_f,
                       seeds=fine_tuned.seeds)


def _pretraining_series(group: ShapeGroup, results: ResultsTable, pretrain: str, noise: NoiseModel,
                        n_resamples: int, rng: np.random.Generator) -> tuple[DepthSeries | None, str]:
    """The pretraining runs' loss on their own held-out distribution, seeds re-drawn; (series, noise source)."""
    rows = results.pretraining
    if rows.empty or "pretrain_valid_loss" not in rows:
        return None, ""
    rows = rows[(rows["pretrain"] == pretrain) & np.isfinite(rows["pretrain_valid_loss"].astype(float))]
    sigma, seeded = pooled_relative_sd(rows.assign(loss=rows["pretrain_valid_loss"]), ["n_params", "shape"])
    source = (f"the seed-to-seed spread of {seeded} pretraining run(s)" if seeded else
              f"σ of the from-scratch runs ({noise.sigma['scratch']:.2g})")
    sigma = sigma if seeded else noise.sigma["scratch"]
    per_shape = {k: g["pretrain_valid_loss"].to_numpy(float) for k, g in rows.groupby(["n_params", "shape"])}
    shapes = tuple(s for s in group.shapes if s.key in per_shape)
    if len(shapes) < 2:
        return None, ""
    values = [per_shape[s.key] for s in shapes]
    draws = redraw_points(values, np.full(len(values), sigma), n_resamples, rng)
    return DepthSeries(quantity="pretraining loss", pretrain=pretrain, d_f=None, shapes=shapes,
                       value=np.array([v.mean() for v in values]), draws=draws,
                       seeds=np.array([len(v) for v in values], float)), source


# --------------------------------------------------------------------------- one group, the whole study

@dataclass
class GroupResult:
    """Everything the report shows of one group of shapes."""

    group: ShapeGroup
    series: list[DepthSeries] = field(default_factory=list)
    effects: list[DepthEffect] = field(default_factory=list)
    transfer: list[ShapeTransfer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def effect(self, quantity: str, pretrain: str) -> DepthEffect | None:
        return next((e for e in self.effects if e.quantity == quantity and e.pretrain == pretrain), None)

    def of(self, quantity: str, pretrain: str) -> list[DepthSeries]:
        return [s for s in self.series if s.quantity == quantity and s.pretrain == pretrain]

    @property
    def pretrains(self) -> list[str]:
        return sorted({s.pretrain for s in self.series})

    def to_dict(self) -> dict:
        g = self.group
        return jsonable({"n_params": g.n_params, "reference": g.reference.name, "reference_why": g.reference_why,
                         "shapes": [{"name": s.name, "shape": s.label, "n_params": s.n_params, "n_layer": s.n_layer,
                                     "d_model": s.d_model} for s in g.shapes],
                         "effects": [e.to_dict() for e in self.effects],
                         "series": [s.to_dict() for s in self.series],
                         "transfer": [t.to_dict() for t in self.transfer], "notes": self.notes})


def _scratch_series(group: ShapeGroup, results: ResultsTable, losses: np.ndarray) -> DepthSeries | None:
    """The from-scratch loss at the largest data size that most of the group's shapes share."""
    runs, column = results.runs, results.data_column
    scratch = runs[(runs["mode"] == "scratch") & np.array([k in group.keys for k in row_keys(runs)], bool)]
    common = scratch.groupby(column)["shape"].nunique()
    if not len(common) or common.max() < 2:
        return None
    d_max = float(common[common == common.max()].index.max())
    return _run_series("from-scratch loss", group, results, losses, "scratch", "none", d_max)


def _series_for(result: GroupResult, pretrain: str, results: ResultsTable, effective: EffectiveResult,
                resamples: Resamples) -> None:
    """The fine-tuned and D_T series of one pretraining name (appended to `result.series`)."""
    group, runs, column = result.group, results.runs, results.data_column
    fine = runs[(runs["mode"] == "finetune") & (runs["pretrain"] == pretrain)]
    for d_f in sorted(fine[column].unique()):
        tuned = _run_series("fine-tuned loss", group, results, resamples.losses, "finetune", pretrain, d_f)
        if tuned is None:
            continue
        result.series.append(tuned)
        result.series += [s for s in (_d_t_series(group, effective, resamples.d_t, pretrain, d_f),
                                      _reference_series(tuned, group, results, effective, resamples.losses))
                          if s is not None]


def analyse_group(group: ShapeGroup, results: ResultsTable, effective: EffectiveResult, resamples: Resamples,
                  seed: int = 0) -> GroupResult:
    """The series, the verdict statistics and each shape's D_T law of one group, per pretraining name."""
    result = GroupResult(group=group)
    rng = np.random.default_rng(seed + 1)     # the pretraining runs' draws: apart from the runs' stream
    names = sorted(set(effective.table.loc[[k in group.keys for k in row_keys(effective.table)], "pretrain"]))
    scratch = _scratch_series(group, results, resamples.losses)
    result.series += [scratch] if scratch is not None else []
    for pretrain in names:
        pre, source = _pretraining_series(group, results, pretrain, resamples.noise, resamples.n_resamples, rng)
        if pre is not None:
            result.series.append(pre)
            result.notes.append(f"`{pretrain}`: single-seed pretraining runs are re-drawn with {source}")
        _series_for(result, pretrain, results, effective, resamples)
    for quantity in QUANTITIES:
        for pretrain in sorted({s.pretrain for s in result.series if s.quantity == quantity}):
            effect = depth_effect(result.of(quantity, pretrain))
            result.effects += [effect] if effect is not None else []
    for view in ("D_T", "D_T (reference curve)"):
        for pretrain in names:
            if result.of(view, pretrain):
                result.transfer += shape_transfer(result.of(view, pretrain), group.reference)
    return result


@dataclass
class ShapeStudy:
    """The shape analysis of a results table: one GroupResult per N that holds several shapes."""

    groups: list[GroupResult]
    units: str

    def to_dict(self) -> dict:
        return {"units": self.units, "groups": [g.to_dict() for g in self.groups]}


def analyse_shapes(groups: list[ShapeGroup], results: ResultsTable, effective: EffectiveResult,
                   resamples: Resamples, seed: int = 0) -> ShapeStudy:
    return ShapeStudy(groups=[analyse_group(g, results, effective, resamples, seed) for g in groups],
                      units=results.units)


def _whole(value: float) -> int | None:
    return int(value) if np.isfinite(value) else None


def shape_blocks(study: ShapeStudy) -> list[dict]:
    """fits.json's `shape`: one comparison per group, pretraining name, D_F and quantity (fine-tuned loss,
    D_T off each shape's own curve), in the format the planner reads (docs/planning.md, "The `shape` block")."""
    blocks = []
    quantities = {"fine-tuned loss": "loss", "D_T": "d_t"}
    for result in study.groups:
        for series in result.series:
            if series.quantity not in quantities or series.d_f is None:
                continue
            lo, hi = series.interval()
            blocks.append(jsonable({
                "quantity": quantities[series.quantity], "n_params": result.group.n_params,
                "pretrain": series.pretrain, "d_f": series.d_f, "units": study.units,
                "reference": result.group.reference.name,
                "shapes": [{"name": s.name, "n_layer": _whole(s.n_layer), "d_model": _whole(s.d_model), "value": v,
                            "interval": [a, b]} for s, v, a, b in zip(series.shapes, series.value, lo, hi)]}))
    return blocks
