"""Effective data: D_E, D_T = D_E - D_F, and the flags that say how far to trust each number.

For each N (and shape: a table may hold several shapes at one N, `table.shape_labels`) the from-scratch
runs give a loss-against-data curve. It is made monotone (loss falls with data: the weighted
non-increasing least-squares fit, i.e. pool-adjacent-violators, in log D) and interpolated with PCHIP in
log D, which stays monotone between the measured points. A fine-tuned run's effective data D_E is the D
at which the curve of the same N and shape reaches the fine-tuned loss (docs/METHOD.md §1). A curve is
named by its `CurveKey`, (N, shape). The numerics live in `curves.py`, batched, so that the bootstrap (bootstrap.py)
re-reads its resampled curves with exactly the code that made the estimate.

Outside the measured range we use a per-N fit L = L_inf + A * D^(-b). Its shape (L_inf, b) comes
from a least-squares fit to all scratch points of that N; its amplitude is re-anchored at the
nearest measured end of the curve, so the curve stays continuous where interpolation hands over
to extrapolation. Every such point is flagged `extrapolated`. Such D_E are biased low when the
true curve is not of this form (measured on a Kaplan-shaped curve: fit.py), so the headline law
leaves them out.

Flags (a run can carry several):
  extrapolated   D_E read off the per-N law outside the measured scratch range
  beyond_reach   the fine-tuned loss is below the law's L_inf (D_E = inf), or no law to extrapolate
  ossified       D_T <= 0: the fine-tuned model is no better than from scratch on the same data
  low_data       D_F <= 10% of D(N), the data a scratch model needs to get within 1% of L_inf
  no_scratch     no from-scratch runs of the same N: D_E cannot be measured
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.interpolate import PchipInterpolator

from effdata.analysis.core.curves import (
    Laws,
    fit_laws,
    invert_curves,
    isotonic_decreasing,
    pooled_nodes,
)
from effdata.analysis.core.table import ResultsTable

INTERVAL_COLUMNS = ("d_e_lo", "d_e_hi", "d_t_lo", "d_t_hi")
FLAG_NAMES = ("extrapolated", "beyond_reach", "ossified", "low_data", "no_scratch")
LOW_DATA_FRACTION = 0.1     # docs/METHOD.md: D_F at most ~10% of D(N)
WITHIN_ONE_PERCENT = 0.01   # D(N): within 1% of the infinite-data loss
MIN_LAW_POINTS = 3          # three parameters in L_inf + A * D^(-b)

CurveKey = tuple[float, str]   # (N, shape label): one from-scratch curve


def curve_key(row) -> CurveKey:
    """The curve a run (a row of a results or effective table) belongs to."""
    return float(row["n_params"]), str(row.get("shape", "") or "")


def describe_curve(key: CurveKey) -> str:
    """'N=2e+05' or 'N=2e+05 (l4d64h4)', for warnings."""
    return f"N={key[0]:.3g}" + (f" ({key[1]})" if key[1] else "")


@dataclass(frozen=True)
class SaturatingLaw:
    """L(D) = l_inf + a * (D / d_ref)^(-b); d_ref keeps `a` of order one."""

    l_inf: float
    a: float
    b: float
    d_ref: float

    def loss(self, d):
        return self.l_inf + self.a * (np.asarray(d, dtype=float) / self.d_ref) ** (-self.b)

    def data_within_one_percent(self) -> float:
        """D(N): the data at which l_inf + a (D/d_ref)^-b = 1.01 l_inf (inf when l_inf is 0)."""
        if self.l_inf <= 0:
            return float("inf")
        # In logs: with b near its lower bound the power overflows a float (D(N) is then "never").
        log_d = np.log(self.d_ref) + np.log(self.a / (WITHIN_ONE_PERCENT * self.l_inf)) / self.b
        return float(np.exp(log_d)) if log_d < 700 else float("inf")


def fit_saturating_law(d: np.ndarray, loss: np.ndarray) -> SaturatingLaw | None:
    """Least-squares fit of L = L_inf + A D^-b with 0 <= L_inf < min(loss); None if impossible."""
    d, loss = np.asarray(d, float), np.asarray(loss, float)
    if len(np.unique(d)) < MIN_LAW_POINTS:
        return None
    laws = fit_laws(d, loss[None])
    params = (laws.l_inf[0], laws.a[0], laws.b[0])
    if not np.all(np.isfinite(params)):
        return None
    return SaturatingLaw(l_inf=float(params[0]), a=float(params[1]), b=float(params[2]), d_ref=laws.d_ref)


def no_laws(count: int) -> Laws:
    """`count` curves without a law: reading them outside the measured range gives nan."""
    return Laws(l_inf=np.full(count, np.nan), a=np.full(count, np.nan), b=np.full(count, np.nan), d_ref=1.0)


@dataclass
class ScratchCurve:
    """The from-scratch loss against data for one N: monotone PCHIP in log D, plus the per-N law."""

    n_params: float
    d: np.ndarray                 # measured scratch data sizes (sorted)
    loss: np.ndarray              # measured scratch losses
    node_log_d: np.ndarray        # monotone nodes (pooled blocks) in log D
    node_loss: np.ndarray         # strictly decreasing
    law: SaturatingLaw | None
    pooled: bool                  # True if the measured losses had to be pooled to be monotone
    weights: np.ndarray           # pooling weights of the measured points (their seed counts)
    shape: str = ""               # the shape label, when the table names shapes

    @property
    def key(self) -> CurveKey:
        return self.n_params, self.shape

    @classmethod
    def from_points(cls, n_params: float, d, loss, weights=None, shape: str = "") -> "ScratchCurve":
        order = np.argsort(d)
        d, loss = np.asarray(d, float)[order], np.asarray(loss, float)[order]
        weights = np.ones_like(d) if weights is None else np.asarray(weights, float)[order]
        fitted = isotonic_decreasing(loss[None], weights)
        _, node_log_d, node_loss = next(pooled_nodes(np.log(d), fitted, weights))
        return cls(n_params=n_params, d=d, loss=loss, node_log_d=node_log_d[0], node_loss=node_loss[0],
                   law=fit_saturating_law(d, loss), pooled=node_loss.shape[1] < len(d), weights=weights,
                   shape=shape)

    def laws(self) -> Laws:
        """The per-N law as the one-row arrays `curves.invert_curves` takes."""
        if self.law is None:
            return no_laws(1)
        return Laws(l_inf=np.array([self.law.l_inf]), a=np.array([self.law.a]), b=np.array([self.law.b]),
                    d_ref=self.law.d_ref)

    @property
    def interpolator(self) -> PchipInterpolator | None:
        """Monotone PCHIP through the pooled nodes (None with fewer than two nodes)."""
        if len(self.node_log_d) < 2:
            return None
        if getattr(self, "_interpolator", None) is None:
            self._interpolator = PchipInterpolator(self.node_log_d, self.node_loss)
        return self._interpolator

    @property
    def d_min(self) -> float:
        return float(np.exp(self.node_log_d[0]))

    @property
    def d_max(self) -> float:
        return float(np.exp(self.node_log_d[-1]))

    def within_measured_range(self, d: float) -> bool:
        """True if d lies inside the measured scratch range (with rounding slack in log D)."""
        log_d = np.log(d)
        return bool(self.node_log_d[0] - 1e-9 <= log_d <= self.node_log_d[-1] + 1e-9)

    @property
    def d_low(self) -> float:
        """D(N) of docs/METHOD.md, or nan without a law."""
        return self.law.data_within_one_percent() if self.law else float("nan")

    def _anchored_extrapolation(self, low_end: bool) -> tuple[float, float, float] | None:
        """(l_inf, d_anchor, loss_anchor) of the law re-anchored at the measured end, if usable."""
        if self.law is None:
            return None
        index = 0 if low_end else -1
        anchor_loss = float(self.node_loss[index])
        if anchor_loss <= self.law.l_inf:
            return None
        return self.law.l_inf, float(np.exp(self.node_log_d[index])), anchor_loss

    def loss_at(self, d) -> np.ndarray:
        """Scratch loss at data d: PCHIP inside the measured range, anchored law outside (nan if none)."""
        log_d = np.log(np.atleast_1d(np.asarray(d, float)))
        out = np.full(log_d.shape, np.nan)
        if len(self.node_log_d) >= 2:
            inside = (log_d >= self.node_log_d[0]) & (log_d <= self.node_log_d[-1])
            out[inside] = self.interpolator(log_d[inside])
        else:
            inside = np.isclose(log_d, self.node_log_d[0])
            out[inside] = self.node_loss[0]
        for low_end, side in ((True, log_d < self.node_log_d[0]), (False, log_d > self.node_log_d[-1])):
            anchor = self._anchored_extrapolation(low_end)
            if anchor is not None and side.any():
                l_inf, d_anchor, anchor_loss = anchor
                out[side] = l_inf + (anchor_loss - l_inf) * np.exp(-self.law.b * (log_d[side] - np.log(d_anchor)))
        return out

    def invert_many(self, target_losses) -> tuple[np.ndarray, np.ndarray]:
        """(D_E, extrapolated) arrays: scratch loss(D_E) = target; D_E = inf or nan if out of reach.

        Inside the measured range: the monotone PCHIP; outside: the per-N law anchored at the nearest
        node. The bootstrap reads its resampled curves with the same function (curves.invert_curves).
        """
        targets = np.atleast_1d(np.asarray(target_losses, float))[None]
        d_e, extrapolated = invert_curves(np.log(self.d), self.loss[None], self.weights, self.laws(), targets)
        return d_e[0], extrapolated[0]

    def invert(self, target_loss: float) -> tuple[float, bool]:
        """(D_E, extrapolated) of one target loss (see invert_many)."""
        d_e, extrapolated = self.invert_many([target_loss])
        return float(d_e[0]), bool(extrapolated[0])


@dataclass
class EffectiveResult:
    """Per fine-tuned run: D_E, D_T, fraction, multiplier and flags; plus the curves used."""

    table: pd.DataFrame
    curves: dict[CurveKey, ScratchCurve]
    units: str
    scratch: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

    def curve_at(self, n_params: float) -> ScratchCurve:
        """The one curve of size N (KeyError if none, ValueError if several shapes share that N)."""
        found = [curve for (n, _), curve in self.curves.items() if n == float(n_params)]
        if len(found) > 1:
            raise ValueError(f"{len(found)} shapes at N={n_params:.3g}: name the curve by (N, shape)")
        if not found:
            raise KeyError(n_params)
        return found[0]

    def subset(self, keys) -> "EffectiveResult":
        """The fine-tuned rows and curves of the given curve keys only (the table keeps its index)."""
        keys = set(keys)
        rows = [curve_key(row) in keys for _, row in self.table.iterrows()]
        scratch = [curve_key(row) in keys for _, row in self.scratch.iterrows()]
        return EffectiveResult(table=self.table[np.array(rows, bool)], units=self.units,
                               curves={k: c for k, c in self.curves.items() if k in keys},
                               scratch=self.scratch[np.array(scratch, bool)], warnings=self.warnings)


def build_curves(scratch: pd.DataFrame, data_column: str, warnings: list[str]) -> dict[CurveKey, ScratchCurve]:
    """One curve per (N, shape) of the from-scratch runs: runs of different shapes are never pooled."""
    curves = {}
    shapes = scratch["shape"] if "shape" in scratch else pd.Series("", index=scratch.index)
    for (n_params, shape), rows in scratch.groupby([scratch["n_params"], shapes.fillna("")]):
        weights = rows["n_seeds"].to_numpy(float) if "n_seeds" in rows else None
        curve = ScratchCurve.from_points(float(n_params), rows[data_column].to_numpy(float),
                                         rows["loss"].to_numpy(float), weights, shape=str(shape))
        where = describe_curve(curve.key)
        if curve.pooled:
            warnings.append(f"{where}: from-scratch loss rises with data somewhere; adjacent "
                            "points pooled to keep the curve monotone")
        if curve.law is None:
            warnings.append(f"{where}: fewer than {MIN_LAW_POINTS} scratch data sizes, so no "
                            "per-N law: no extrapolation and no low-data flag for this N")
        curves[curve.key] = curve
    return curves


def _effective_row(run: pd.Series, curve: ScratchCurve | None, column: str) -> dict:
    """D_E, D_T, fraction, multiplier and flags of one fine-tuned run."""
    n_params, d_f, loss = float(run["n_params"]), float(run[column]), float(run["loss"])
    flags = dict.fromkeys(FLAG_NAMES, False)
    d_e, d_low, d_scratch_max = float("nan"), float("nan"), float("nan")
    if curve is None:
        flags["no_scratch"] = True
    else:
        d_e, flags["extrapolated"] = curve.invert(loss)
        d_low, d_scratch_max = curve.d_low, float(curve.d[-1])
        flags["beyond_reach"] = not np.isfinite(d_e)
        # Without a law above the curve we still know the sign: loss worse than scratch at d_min <= D_F.
        above_curve = loss > curve.node_loss[0] and d_f >= curve.d_min
        flags["ossified"] = bool(d_e <= d_f) if np.isfinite(d_e) else bool(np.isnan(d_e) and above_curve)
        flags["low_data"] = d_low == float("inf") or bool(np.isfinite(d_low) and d_f <= LOW_DATA_FRACTION * d_low)
    d_t = d_e - d_f
    if np.isfinite(d_e) and d_e > 0:
        fraction = d_t / d_e
    else:
        fraction = 1.0 if d_e == float("inf") else float("nan")
    return {"pretrain": run["pretrain"], "size": run.get("size", None), "shape": run.get("shape", ""), "n_params": n_params,
            "d_f": d_f, "loss": loss, "loss_std": run.get("loss_std", 0.0), "n_seeds": run.get("n_seeds", 1),
            "d_e": d_e, "d_t": d_t, "fraction": fraction, "multiplier": d_e / d_f, "d_low": d_low,
            "d_scratch_max": d_scratch_max, "flops": run.get("flops", np.nan), "pretrain_flops": run.get("pretrain_flops", np.nan),
            "pretrain_tokens_per_param": run.get("pretrain_tokens_per_param", np.nan), **flags}


def compute_effective(results: ResultsTable, warnings: list[str] | None = None) -> EffectiveResult:
    """D_E etc. for every fine-tuned run of a validated results table."""
    warnings = results.warnings if warnings is None else warnings
    column = results.data_column
    curves = build_curves(results.scratch, column, warnings)
    table = effective_table(results.finetuned, curves, column)
    _warn_about(table, warnings)
    return EffectiveResult(table=table, curves=curves, units=results.units, scratch=results.scratch,
                           warnings=warnings)


def effective_table(finetuned: pd.DataFrame, curves: dict[CurveKey, ScratchCurve], column: str) -> pd.DataFrame:
    """D_E, D_T and flags of these fine-tuned points (seeds averaged) read off these curves; the interval columns
    empty (the bootstrap fills them: bootstrap.attach_intervals)."""
    rows = [_effective_row(run, curves.get(curve_key(run)), column) for _, run in finetuned.iterrows()]
    table = pd.DataFrame(rows, columns=["pretrain", "size", "shape", "n_params", "d_f", "loss", "loss_std", "n_seeds",
                                        "d_e", "d_t", "fraction", "multiplier", "d_low", "d_scratch_max",
                                        "flops", "pretrain_flops", "pretrain_tokens_per_param", *FLAG_NAMES])
    for position, name in enumerate(INTERVAL_COLUMNS):
        table.insert(table.columns.get_loc("d_t") + 1 + position, name, np.nan)
    table["flags"] = table[list(FLAG_NAMES)].apply(
        lambda r: ",".join(name for name in FLAG_NAMES if r[name]), axis=1) if len(table) else []
    return table


def _warn_about(table: pd.DataFrame, warnings: list[str]) -> None:
    """Summaries of the flags, so nothing is silent."""
    if table.empty:
        return
    for (pretrain, n_params, shape), rows in table[table["no_scratch"]].groupby(["pretrain", "n_params", "shape"]):
        warnings.append(f"pretrain '{pretrain}' at N={n_params:.3g}: no from-scratch runs of the same N"
                        f"{f' and shape ({shape})' if shape else ''}; {len(rows)} run(s) without D_E")
    counts = {flag: int(table[flag].sum()) for flag in ("ossified", "extrapolated", "beyond_reach")}
    if counts["ossified"]:
        warnings.append(f"{counts['ossified']} fine-tuned run(s) ossified (D_T <= 0): kept in the table, "
                        "outside the log-space fit")
    if counts["extrapolated"]:
        warnings.append(f"{counts['extrapolated']} D_E value(s) extrapolated beyond the measured scratch range")
    if counts["beyond_reach"]:
        warnings.append(f"{counts['beyond_reach']} run(s) beyond reach of the scratch curve (loss below its "
                        "fitted L_inf, or no law to extrapolate): D_E not finite, outside the fit")
