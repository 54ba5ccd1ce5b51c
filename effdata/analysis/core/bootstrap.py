"""The bootstrap over runs: every grid point's loss re-drawn, every curve re-built, every D_E and D_T re-read.

D_T = D_E - D_F is a small difference when D_E/D_F is 1.3-3x, and D_E is read off a from-scratch curve
that is itself measured with noise; an interval that holds the fine-tuned points over a fixed curve is
too narrow (docs/METHOD.md §1 and §4). So each resample:

1. re-draws the loss of every grid point, from scratch and fine-tuned:
   * with n >= 2 seeds, n seeds drawn with replacement, their deviations from the grid point's mean
     scaled by sqrt(n / (n - 1)): the plain bootstrap of a mean of n has variance (n - 1)/n * s^2/n,
     which with 3 seeds makes intervals 18% too narrow; scaled, it is s^2/n;
   * with one seed, loss * (1 + sigma * eps), eps ~ N(0, 1): a noise floor `sigma` given
     (`--loss-noise`), else taken from the seeds of the other grid points when there are any (per N
     when seeds measure it at two or more N: `noise_by_n`), else from the residuals of the from-scratch
     grid (`grid_residual_sd`); `NoiseModel` says which;
   * fine-tuned points of one size and pretraining whose seeds come from two or more pretraining runs
     (`pretraining_run_of`: a size pretrained several times, each seed fine-tuned from its own run) are
     re-drawn together (`PretrainingGroup`): a pretraining's seed moves all its fine-tunes together (8 %
     of its own loss between two w100k seeds, up to 6 % of a fine-tune's: analysis/cpu-pretrain-lr/seed1),
     so points re-drawn one at a time let those shifts cancel across D_F and leave them out of the law's
     intervals. How (`PRETRAINING_REDRAWS`, `redraw_pooled`): each point's loss times
     (1 + shared/sqrt(m) z + checkpoint/sqrt(m) c + per_point/sqrt(m) e), one z per size and resample, one c per
     checkpoint a run was fine-tuned from (its final model, `@10tpp`, ...: different models, whose shifts differ
     by 0.86 % beyond the run's shared 0.70 %: analysis/cpu-finetune-seeds), the sds pooled over every such size by
     a nested analysis of variance (`runnoise.pretraining_noise`). Measured on synthetic CPU-shaped studies
     with two pretraining runs per size and a 2 % shared shift (benchmarks/coverage_analysis.py, 200 draws,
     `--scenario inside-2seeds-pretraining2% inside-2seeds-pretraining0`): β's 90 % interval held the truth
     in 65 % of draws with points re-drawn one at a time, 81.5 % with each size's two runs resampled (two
     values make a poor bootstrap), 91 % pooled; with no shift, 90.5 / 90 / 93 %;
   * with `--pretraining-noise tau` (a pretraining's seed noise measured elsewhere), the fine-tuned points
     of each pretraining run that is the only one of its size (`shared_families`) are multiplied together
     by (1 + tau * z), one z per run and resample; with `--checkpoint-noise kappa` too, those of each of its
     checkpoints by (1 + kappa * c), one c per checkpoint and resample;
2. re-builds each from-scratch curve (one per N and shape: monotone fit, PCHIP, per-N law) from the
   re-drawn losses;
3. reads every fine-tuned loss off it again: D_E, D_T.

Per-point 90% intervals of D_E and D_T come from step 3 with both curves re-drawn. The fit's own
bootstrap (fit.py) refits the law on these re-read D_T; `Resamples` keeps them.
"""
from __future__ import annotations

import warnings as python_warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from effdata.analysis.core.curves import fit_laws, invert_curves
from effdata.analysis.core.effective import (
    MIN_LAW_POINTS,
    CurveKey,
    EffectiveResult,
    no_laws,
)
from effdata.analysis.core.fit import INTERVAL_PERCENTILES
from effdata.analysis.core.runnoise import PretrainingGroup, point_key, pretraining_groups, pretraining_noise
from effdata.analysis.core.table import ResultsTable, pretraining_run_of, root_of
from effdata.fmt import compact

MODES = ("scratch", "finetune")
# Seed degrees of freedom an N needs before its own sigma is used: with d of them a pooled sd is uncertain by
# about 1/sqrt(2d), 35% at 4 (2 points of 3 seeds give 4). Below it the N borrows by interpolation.
MIN_NOISE_DOF = 4
NOISE_BY_N_LEVEL = 0.05  # sigma per N only where Bartlett's test rejects one sigma for every N at this level
SAME_SIZE_DECADES = 0.1   # N closer than this (a factor 1.26) share one noise: `_one_size`


@dataclass
class NoiseModel:
    """How a resample re-draws the loss of a grid point that has a single seed."""

    sigma: dict[str, float]            # mode -> relative sd of one run's loss
    source: dict[str, str]             # mode -> where sigma comes from, in words
    seeded_points: dict[str, int] = field(default_factory=dict)   # mode -> grid points with >= 2 seeds
    by_n: dict[str, dict[float, float]] = field(default_factory=dict)  # mode -> {N: sigma}, when measured per N
    by_data: dict[str, dict[float, float]] = field(default_factory=dict)  # mode -> {D: sigma}, when given per data size
    pretraining: list["PretrainingGroup"] = field(default_factory=list)   # fine-tunes re-drawn together
    pooled: tuple[float, float, float] | None = None   # (shared, checkpoint, per point) sds re-drawing the groups;
    # None: resample runs
    shared: float = 0.0        # relative sd of a lone pretraining run's shift of all its fine-tunes (given)
    shared_families: list[np.ndarray] = field(default_factory=list)   # their columns in results.runs, per run
    checkpoint_shared: float = 0.0   # relative sd of a lone run's checkpoint's shift of its own fine-tunes (given)
    given_from: str = ""             # the analysis whose measured noise was given (--noise-from), "" for flags alone

    def at(self, mode: str, n_params: np.ndarray, data: np.ndarray | None = None) -> np.ndarray:
        """sigma of one run of `mode` at each N (and data size): per data size where given, else per N where
        measured, interpolated in log D or log N between the sizes named and held at the nearest beyond them; else
        the mode's one sigma."""
        n_params = np.asarray(n_params, float)
        table, where = (self.by_data.get(mode), data) if self.by_data.get(mode) and data is not None else \
            (self.by_n.get(mode), n_params)
        if not table:
            return np.full(n_params.shape, self.sigma[mode])
        x, sd = np.array(sorted(table.items())).T
        return np.interp(np.log(np.asarray(where, float)), np.log(x), sd)

    def describe(self) -> str:
        """The noise of one run's loss in words (one clause when both modes share it)."""
        tables = {m: tuple(sorted({**self.by_n.get(m, {}), **self.by_data.get(m, {})}.items())) for m in MODES}
        if len({(self.sigma[m], self.source[m], tables[m]) for m in MODES}) == 1:
            return self._clause(MODES[0], "of the loss for every run")
        return "; ".join(f"{mode} runs {self._clause(mode)}" for mode in MODES)

    def describe_pretraining(self) -> str:
        """Which fine-tuned points are re-drawn together, and how, in words ("" for none)."""
        parts = []
        if self.pretraining:
            runs = "–".join(map(str, sorted({len(g.runs) for g in self.pretraining})))
            names = " and ".join(sorted({g.pretrain for g in self.pretraining}))
            sizes = ", ".join(compact(n) for n in sorted({g.n_params for g in self.pretraining}))
            where = (f"the fine-tunes of {len(self.pretraining)} (pretraining, N) pair(s) pretrained {runs} times "
                     f"({names} at N = {sizes})")
            how = "a pretraining run at a time, every run bringing all its fine-tunes" if self.pooled is None else (
                f"with one shift per pair, σ = {100 * self.pooled[0]:.2g}% of the loss, "
                + (f"one per checkpoint of a run, {100 * self.pooled[1]:.2g}%, " if self.pooled[1] else "")
                + f"and {100 * self.pooled[2]:.2g}% per point, each over the mean of its runs and pooled over the pairs")
            parts.append(f"{where} re-drawn together: {how}")
        if self.shared_families:
            parts.append(f"the fine-tunes of each of {len(self.shared_families)} lone pretraining run(s) shifted "
                         f"together by σ = {100 * self.shared:.2g}% of the loss "
                         f"({given_words('--pretraining-noise', self.given_from)})"
                         + (f", those of each of its checkpoints by {100 * self.checkpoint_shared:.2g}% more "
                            f"({given_words('--checkpoint-noise', self.given_from)})"
                            if self.checkpoint_shared else ""))
        return "; ".join(parts)

    def _clause(self, mode: str, of: str = "") -> str:
        table = self.by_n.get(mode)
        of = f" {of}" if of else ""
        if self.by_data.get(mode):
            per_d = ", ".join(f"{100 * sd:.2g}% at D = {compact(d)}" for d, sd in sorted(self.by_data[mode].items()))
            return f"σ per data size, {per_d}{of} ({self.source[mode]}; interpolated in log D between, held beyond)"
        if not table:
            return f"σ = {100 * self.sigma[mode]:.2g}%{of} ({self.source[mode]})"
        per_n = ", ".join(f"{100 * sd:.2g}% at N = {compact(n)}" for n, sd in sorted(table.items()))
        return f"σ per N, {per_n}{of} ({self.source[mode]}; interpolated in log N between, held beyond)"


@dataclass
class Resamples:
    """D_E and D_T of every fine-tuned point (the rows of EffectiveResult.table) in every resample."""

    d_e: np.ndarray                    # (B, P) both curves re-drawn
    d_t: np.ndarray                    # (B, P)
    d_t_scratch_only: np.ndarray       # (B, P) only the from-scratch curves re-drawn
    noise: NoiseModel
    losses: np.ndarray | None = None   # (B, len(results.runs)): every grid point's re-drawn loss

    def subset(self, columns: np.ndarray) -> "Resamples":
        """The same resamples for some fine-tuned points only (boolean mask or positions over P); without
        `losses`, which belong to the whole results table."""
        return Resamples(d_e=self.d_e[:, columns], d_t=self.d_t[:, columns],
                         d_t_scratch_only=self.d_t_scratch_only[:, columns], noise=self.noise)

    @property
    def n_resamples(self) -> int:
        return self.d_t.shape[0]


def redraw_by_pretraining(groups: list[PretrainingGroup], point_loss: np.ndarray, draws: np.ndarray,
                          rng: np.random.Generator) -> None:
    """Overwrite the groups' columns of `draws` (B, G): m runs drawn with replacement per group and resample,
    each point the mean of the drawn runs that have it about its loss, scaled by sqrt(m_p/(m_p-1)) for the
    m_p runs it has (module docstring, step 1)."""
    n_resamples = draws.shape[0]
    for group in groups:
        m = len(group.runs)
        picked = rng.integers(0, m, size=(n_resamples, m))
        weights = (picked[:, :, None] == np.arange(m)).sum(axis=1)            # (B, m) times each run drawn
        have = np.isfinite(group.values)                                      # (P, m)
        weight = weights[:, None, :] * have[None]                             # (B, P, m)
        total = weight.sum(axis=2)
        centre = np.nanmean(group.values, axis=1)
        summed = (weight * np.where(have, group.values, 0.0)[None]).sum(axis=2)
        resampled = np.where(total > 0, summed / np.maximum(total, 1), centre)
        count = have.sum(axis=1)
        draws[:, group.columns] = point_loss[group.columns] + np.sqrt(count / (count - 1)) * (resampled - centre)


def redraw_pooled(groups: list[PretrainingGroup], shared: float, checkpoint: float, per_point: float,
                  point_loss: np.ndarray, draws: np.ndarray, rng: np.random.Generator) -> None:
    """Overwrite the groups' columns of `draws`: each point's loss times (1 + shared/sqrt(m) z + checkpoint/sqrt(m_p)
    c + per_point/sqrt(m_p) e), one z per group and resample, one c per checkpoint of the group (`starts`) and
    resample, one e per point: the error of a mean of m runs, with the parts pooled over every group
    (`runnoise.pretraining_noise`) instead of read off a group's own m runs."""
    n_resamples = draws.shape[0]
    for group in groups:
        count = np.isfinite(group.values).sum(axis=1)
        z = rng.standard_normal((n_resamples, 1))
        e = rng.standard_normal((n_resamples, len(group.columns)))
        factor = 1 + shared / np.sqrt(len(group.runs)) * z + per_point / np.sqrt(count) * e
        if checkpoint > 0:      # no draw without it: tables without checkpoints keep their random stream
            labels, which = np.unique(group.starts, return_inverse=True)
            c = rng.standard_normal((n_resamples, len(labels)))
            factor += checkpoint / np.sqrt(count) * c[:, which]
        draws[:, group.columns] = point_loss[group.columns] * factor


def shared_families(results: ResultsTable, groups: list[PretrainingGroup]) -> list[np.ndarray]:
    """Per lone pretraining run, the columns (in results.runs) of its fine-tuned points: the points in no group
    (`pretraining_groups`) whose seeds all come from that one run; where the table names no run, the points of one
    pretraining name (its checkpoints counted as it), N and shape are taken to share one."""
    runs, key = results.runs, point_key(results)
    grouped = set(np.concatenate([g.columns for g in groups]).tolist()) if groups else set()
    seeds = results.seed_runs
    finetuned = seeds[seeds["mode"] == "finetune"] if len(seeds) else seeds
    named = finetuned.assign(pretrain_run=pretraining_run_of(finetuned)) if len(finetuned) else finetuned
    per_point = named.groupby(key, dropna=False)["pretrain_run"].agg(lambda r: sorted(set(r.dropna()))) \
        if len(named) else pd.Series(dtype=object)
    families: dict[tuple, list[int]] = {}
    for column, row in enumerate(runs[key].itertuples(index=False)):
        if row.mode != "finetune" or column in grouped:
            continue
        named_runs = per_point.get(tuple(row), [])
        if len(named_runs) > 1:
            continue        # seeds from several runs: re-drawing them re-draws the runs
        label = (named_runs[0],) if named_runs else (root_of(row.pretrain), row.n_params, row.shape)
        families.setdefault(label, []).append(column)
    return [np.array(columns) for _, columns in sorted(families.items(), key=lambda item: str(item[0]))]


def pooled_relative_sd(seed_runs: pd.DataFrame, key: list[str]) -> tuple[float, int]:
    """(pooled sd of loss / mean loss over grid points with >= 2 seeds, number of such points)."""
    points = _seeded_points(seed_runs, key)
    if points.empty:
        return float("nan"), 0
    return float(np.sqrt(np.sum(points["dof"] * points["relative_var"]) / points["dof"].sum())), len(points)


def noise_by_n(seed_runs: pd.DataFrame, key: list[str]) -> dict[float, float]:
    """{N: pooled relative sd over that N's seeded grid points} for the N with >= MIN_NOISE_DOF seed degrees
    of freedom; empty unless two or more N have them (one N says nothing about how the noise varies).

    Why per N: three seeds of v4's from-scratch points (analysis/cpu-seeds) measured 1.1% at N = 6.6 K
    falling to 0.24% at 500 K; one pooled sigma (0.57%) made the small models' intervals too narrow and
    the large models' too wide.
    """
    points = _seeded_points(seed_runs, key)
    if points.empty:
        return {}
    points["n_params"] = _one_size(points["n_params"].to_numpy(float))
    per_n = _pooled_by(points, "n_params")
    if len(per_n) < 2 or equal_variances(per_n["dof"].to_numpy(float), per_n["var"].to_numpy(float)):
        return {}
    return {float(n): float(np.sqrt(var)) for n, var in per_n["var"].items()}


def _pooled_by(points: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per value of `column` (rows of `_seeded_points`): seed degrees of freedom and the pooled relative variance,
    for the values with >= MIN_NOISE_DOF of them."""
    grouped = points.assign(weighted=points["dof"] * points["relative_var"]).groupby(column)[["dof", "weighted"]].sum()
    grouped = grouped[grouped["dof"] >= MIN_NOISE_DOF]
    return pd.DataFrame({"dof": grouped["dof"], "var": grouped["weighted"] / grouped["dof"]})


@dataclass(frozen=True)
class NoiseByData:
    """One mode's seed noise per data size, which the bootstrap does not model (it lends one sigma, or one per N,
    to single-seed points at every D; `--loss-noise` can give one per size). Why the report shows it: with five
    seeds at every point of v4 (analysis/cpu-replicates) the from-scratch noise rose with D, 0.29 % at 1e4
    characters to 1.1 % at 3e5 (Bartlett p = 6e-8), where it did not differ by N (p = 0.12), so a sigma measured
    at small D and lent to single-seed points at a larger one is too small there. Not a warning: what that cost was
    measured small (cpu-seeds-shaped replicates with the pretraining noise given: per-point D_E intervals 1.06-1.13
    times the spread between replicates, docs/METHOD.md §4)."""

    mode: str
    sigma: dict[float, float]        # D -> pooled relative sd, at the D with >= MIN_NOISE_DOF seed degrees of freedom
    dof: dict[float, float]
    p_value: float                   # Bartlett's test of one sd at all of them (nan with fewer than two)
    unseeded: tuple[float, ...]      # D of the mode's single-seed points where no point of that D has seeds


def noise_by_data(results: ResultsTable, mode: str) -> NoiseByData:
    """The seeds' pooled relative sd of `mode`'s loss per data size (N pooled), Bartlett's test of one sd for every
    size, and the sizes whose single-seed points have no seeded point at their size."""
    column, key = results.data_column, point_key(results)
    seeds = results.seed_runs[results.seed_runs["mode"] == mode] if len(results.seed_runs) else results.seed_runs
    points = _seeded_points(seeds, key, column) if len(seeds) else pd.DataFrame()
    sigma, dof = {}, {}
    if len(points):
        per_d = _pooled_by(points, column)
        sigma = {float(d): float(np.sqrt(var)) for d, var in per_d["var"].items()}
        dof = {float(d): float(k) for d, k in per_d["dof"].items()}
    p_value = bartlett_p(np.array(list(dof.values())), np.array(list(sigma.values())) ** 2) if len(sigma) >= 2 \
        else float("nan")
    runs = results.runs[results.runs["mode"] == mode]
    seeded_sizes = set(points[column].astype(float)) if len(points) else set()
    single = runs.loc[runs["n_seeds"] < 2, column].astype(float)
    unseeded = tuple(sorted(set(single) - seeded_sizes)) if seeded_sizes else ()
    return NoiseByData(mode, sigma, dof, p_value, unseeded)


def equal_variances(dof: np.ndarray, var: np.ndarray) -> bool:
    """Whether Bartlett's test (from each group's variance and degrees of freedom) leaves the groups' variances
    equal at level NOISE_BY_N_LEVEL. Why a test: on synthetic CPU-shaped studies with seeds like cpu-seeds's
    (6 degrees of freedom per N; benchmarks/coverage_analysis.py, 200 draws) a sigma per N always taken costs 3
    points of per-point D_T coverage where the noise is in fact the same at every N (0.857 against 0.886
    pooled), and gives 0.85-0.87 at every N where it falls 4x (pooled: 0.75 at the smallest N, 0.999 at the
    largest). With the test: 0.883 and 0.83-0.89. Its power at 6 degrees of freedom per N: 23% for a 2x fall
    over five N, 76% for 4x, 99% for 8x (tests/test_bootstrap.py)."""
    if (var <= 0).any():
        return not (var > 0).any()
    return bool(bartlett_p(dof, var) >= NOISE_BY_N_LEVEL)


def bartlett_p(dof: np.ndarray, var: np.ndarray) -> float:
    """Bartlett's test of equal variances from each group's variance and degrees of freedom: its p value (nan
    where a variance is not positive)."""
    dof, var = np.asarray(dof, float), np.asarray(var, float)
    if (var <= 0).any() or len(var) < 2:
        return float("nan")
    total, k = dof.sum(), len(dof)
    pooled = np.sum(dof * var) / total
    statistic = (total * np.log(pooled) - np.sum(dof * np.log(var))) / (
        1 + (np.sum(1 / dof) - 1 / total) / (3 * (k - 1)))
    return float(stats.chi2.sf(statistic, k - 1))


def _one_size(n_params: np.ndarray) -> np.ndarray:
    """Each N replaced by the geometric mean of its size: N within SAME_SIZE_DECADES of the next smaller one
    count as one size (the shape study's shapes of one size differ by <= 5% in N; a ladder's steps are >= 2x)."""
    values = np.unique(n_params)
    group = np.concatenate([[0], np.cumsum(np.diff(np.log10(values)) > SAME_SIZE_DECADES)])
    geometric_mean = lambda n: n.iloc[0] if len(n) == 1 else np.exp(np.log(n).mean())  # noqa: E731
    centre = pd.Series(values).groupby(group).transform(geometric_mean).to_numpy()
    return centre[np.searchsorted(values, n_params)]


def _seeded_points(seed_runs: pd.DataFrame, key: list[str], by: str = "n_params") -> pd.DataFrame:
    """One row per grid point with >= 2 seeds: its `by` (N, or its data size), seed degrees of freedom and
    variance / mean^2."""
    groups = seed_runs.groupby(key)["loss"]
    points = pd.DataFrame({"count": groups.count(), "mean": groups.mean(), "var": groups.var(ddof=1)})
    points = points[points["count"] >= 2].reset_index()
    return pd.DataFrame({by: points[by].astype(float) if len(points) else [],
                         "dof": (points["count"] - 1).astype(float),
                         "relative_var": points["var"] / points["mean"] ** 2})


def grid_residual_sd(scratch: pd.DataFrame, data_column: str) -> tuple[float, int]:
    """(relative noise of one from-scratch run, degrees of freedom) from the complete N x D grid.

    log L over the grid is fitted by a row effect, a column effect and one multiplicative interaction
    (the first singular pair of the double-centred table); the residual RMS, with its degrees of freedom
    (I-1)(J-1) - (I+J-3), estimates the noise. Measured on the Kaplan-shaped synthetic grid (5 N x 6 D,
    200 draws): 0.50% for 0.5% noise, 0.99% for 1%, 0.08% with none (the surface's own curvature).
    The per-N law's residuals are no substitute: on the committed CPU study they are 3.6%, the law's
    lack of fit (its curves are sigmoid in log D), where the grid leaves 0.4%. (nan, 0) without a
    complete grid of >= 3 N and >= 3 D.
    """
    rows = ["n_params", "shape"] if "shape" in scratch else ["n_params"]
    grid = scratch.pivot_table(index=rows, columns=data_column, values="loss")
    rows, columns = grid.shape
    dof = (rows - 1) * (columns - 1) - (rows + columns - 3)
    if rows < 3 or columns < 3 or grid.isna().any().any() or dof < 3:
        return float("nan"), 0
    log_loss = np.log(grid.to_numpy(float))
    centred = log_loss - log_loss.mean(1, keepdims=True) - log_loss.mean(0, keepdims=True) + log_loss.mean()
    u, singular, vt = np.linalg.svd(centred, full_matrices=False)
    residual = centred - singular[0] * np.outer(u[:, 0], vt[0])
    return float(np.sqrt(np.sum(residual ** 2) / dof)), dof


def residual_relative_sd(effective: EffectiveResult) -> tuple[float, int]:
    """(relative RMS residual of the from-scratch points about their per-N law, degrees of freedom).

    An upper bound on the noise of one run: the residuals also hold the law's lack of fit.
    """
    squares, dof = 0.0, 0
    for curve in effective.curves.values():
        if curve.law is None or len(curve.d) <= MIN_LAW_POINTS:
            continue
        squares += float(np.sum((curve.loss / curve.law.loss(curve.d) - 1) ** 2))
        dof += len(curve.d) - MIN_LAW_POINTS
    return (float(np.sqrt(squares / dof)), dof) if dof else (float("nan"), 0)


# How fine-tunes of a size pretrained two or more times are re-drawn (module docstring): "pooled" (the default,
# measured best), "runs" (each size's runs resampled), "points" (each point's seeds alone, as before them).
PRETRAINING_REDRAWS = ("pooled", "runs", "points")


def given_words(flag: str, given_from: str | None, given: str = "given: ", closing: str = "") -> str:
    """Where a given noise came from, in words: its flag, or the analysis --noise-from read it from."""
    return f"{given}measured by {given_from}, --noise-from{closing}" if given_from else f"{given}{flag}{closing}"


def estimate_noise(results: ResultsTable, effective: EffectiveResult,
                   loss_noise: float | dict[float, float] | None = None, per_n: bool = True,
                   shared_noise: float | None = None, pretraining_redraw: str = "pooled",
                   checkpoint_noise: float | None = None, given_from: str | None = None) -> NoiseModel:
    """The noise floor for single-seed grid points, per mode (see the module docstring); per N too when
    `per_n` and seeds measure it at two or more N (`noise_by_n`); the fine-tunes to re-draw together
    (`pretraining_groups`) and how (`pretraining_redraw`, one of PRETRAINING_REDRAWS); with `shared_noise`
    (--pretraining-noise), the shared shift of each lone pretraining run's fine-tunes (`shared_families`); with
    `checkpoint_noise` (--checkpoint-noise), the shift of each of its checkpoints' fine-tunes beyond it. `loss_noise`
    (--loss-noise), one sigma for every single-seed point, or {data size: sigma} in the table's units. `given_from`:
    the analysis those given values were read from (--noise-from), for the words."""
    if pretraining_redraw not in PRETRAINING_REDRAWS:
        raise ValueError(f"pretraining_redraw must be one of {PRETRAINING_REDRAWS}, not {pretraining_redraw!r}")
    key = point_key(results)
    sigma, source, seeded, by_n = {}, {}, {}, {}
    for mode in MODES:
        rows = results.seed_runs[results.seed_runs["mode"] == mode] if len(results.seed_runs) else results.seed_runs
        sigma[mode], seeded[mode] = pooled_relative_sd(rows, key) if len(rows) else (float("nan"), 0)
        by_n[mode] = noise_by_n(rows, key) if per_n and len(rows) else {}
        source[mode] = f"seed-to-seed spread of {seeded[mode]} {mode} grid point(s)"
    for mode, other in zip(MODES, MODES[::-1]):
        if not seeded[mode] and seeded[other]:
            sigma[mode], source[mode] = sigma[other], f"seed-to-seed spread of the {other} runs"
            by_n[mode] = by_n[other]
    by_data = {}
    if isinstance(loss_noise, dict):    # given per data size: sigma is their root mean square, for a one-number summary
        for mode in MODES:
            sigma[mode], by_n[mode] = float(np.sqrt(np.mean(np.square(list(loss_noise.values()))))), {}
            source[mode] = given_words("--loss-noise", given_from, "given per data size (", ")")
            by_data[mode] = {float(d): float(s) for d, s in loss_noise.items()}
    elif loss_noise is not None:
        for mode in MODES:
            sigma[mode], by_n[mode] = float(loss_noise), {}
            source[mode] = given_words("--loss-noise", given_from, "given (", ")")
    elif not any(seeded.values()):
        for mode in MODES:
            sigma[mode], source[mode] = _residual_floor(results, effective)
    groups = pretraining_groups(results) if pretraining_redraw != "points" else []
    lone = shared_families(results, groups) if shared_noise or checkpoint_noise else []
    parts = pretraining_noise(groups) if pretraining_redraw == "pooled" else pd.DataFrame()
    # No group with two points that every run has: nothing to pool, so its runs are resampled.
    pooled = parts.iloc[-1] if len(parts) else None
    components = None if pooled is None else (float(pooled["shared"]), float(np.nan_to_num(pooled["checkpoint"])),
                                              float(pooled["per_point"]))
    return NoiseModel(sigma=sigma, source=source, seeded_points=seeded, by_n={m: t for m, t in by_n.items() if t},
                      by_data=by_data,
                      pretraining=groups, pooled=components, shared=float(shared_noise or 0.0),
                      shared_families=lone, checkpoint_shared=float(checkpoint_noise or 0.0),
                      given_from=given_from or "")


def _residual_floor(results: ResultsTable, effective: EffectiveResult) -> tuple[float, str]:
    """(sigma, its source in words) when no grid point has two seeds: residuals of the from-scratch runs."""
    sigma, dof = grid_residual_sd(results.scratch, results.data_column)
    if dof:
        return sigma, (f"no seeds: residuals of the from-scratch grid about a smooth N × D surface "
                       f"({dof} degrees of freedom; an upper bound)")
    sigma, dof = residual_relative_sd(effective)
    if dof:
        return sigma, (f"no seeds: residuals of the from-scratch points about the per-N law ({dof} degrees "
                       "of freedom; an upper bound, it also holds the law's lack of fit)")
    return 0.0, "no seeds and no residuals: single-seed points are not re-drawn"


def draw_losses(results: ResultsTable, noise: NoiseModel, n_resamples: int,
                rng: np.random.Generator) -> np.ndarray:
    """(B, len(results.runs)): every grid point's loss, re-drawn (module docstring, step 1)."""
    key = point_key(results)
    runs = results.runs
    seeds = results.seed_runs.groupby(key)["loss"].apply(lambda s: s.to_numpy(float))
    per_point = [seeds.get(tuple(row), np.array([loss])) for row, loss in
                 zip(runs[key].itertuples(index=False), runs["loss"])]
    modes, n_params = runs["mode"].to_numpy(), runs["n_params"].to_numpy(float)
    data = runs[results.data_column].to_numpy(float)
    sigma = np.empty(len(runs))
    for mode in np.unique(modes):
        mine = modes == mode
        sigma[mine] = noise.at(mode, n_params[mine], data[mine])
    draws = redraw_points(per_point, sigma, n_resamples, rng)
    if noise.pooled is not None:
        redraw_pooled(noise.pretraining, *noise.pooled, runs["loss"].to_numpy(float), draws, rng)
    else:
        redraw_by_pretraining(noise.pretraining, runs["loss"].to_numpy(float), draws, rng)
    if noise.shared_families:
        shift = 1 + noise.shared * rng.standard_normal((n_resamples, len(noise.shared_families)))
        for f, columns in enumerate(noise.shared_families):
            draws[:, columns] *= shift[:, f:f + 1]
    if noise.checkpoint_shared:     # no draw without it: tables given a run's part alone keep their random stream
        names = runs["pretrain"].to_numpy()
        for columns in noise.shared_families:
            labels, which = np.unique(names[columns], return_inverse=True)
            draws[:, columns] *= 1 + noise.checkpoint_shared * rng.standard_normal((n_resamples, len(labels)))[:, which]
    return draws


def redraw_points(per_point: list[np.ndarray], sigma: np.ndarray, n_resamples: int,
                  rng: np.random.Generator) -> np.ndarray:
    """(B, G): the mean of each point's seeds in B resamples (module docstring, step 1): n >= 2 seeds
    drawn with replacement, deviations scaled by sqrt(n/(n-1)); one seed as value * (1 + sigma * eps)."""
    counts = np.array([len(s) for s in per_point])
    draws = np.empty((n_resamples, len(per_point)))
    for n in np.unique(counts):
        columns = np.flatnonzero(counts == n)
        values = np.stack([per_point[c] for c in columns])                  # (G, n)
        mean = values.mean(axis=1)
        if n == 1:
            draws[:, columns] = mean * (1 + sigma[columns] * rng.standard_normal((n_resamples, len(columns))))
            continue
        picked = rng.integers(0, n, size=(n_resamples, len(columns), n))
        resampled = np.take_along_axis(values[None].repeat(n_resamples, 0), picked, axis=2).mean(axis=2)
        draws[:, columns] = mean + np.sqrt(n / (n - 1)) * (resampled - mean)
    return draws


def read_off_curve(results: ResultsTable, draws: np.ndarray, key: CurveKey, weights: np.ndarray,
                   targets: np.ndarray) -> np.ndarray:
    """(B, T) D_E: targets (B, T) read off the from-scratch curve `key` as re-drawn in each resample."""
    runs, column = results.runs, results.data_column
    mine = (runs["mode"] == "scratch") & (runs["n_params"] == key[0]) & (runs["shape"] == key[1])
    scratch = np.flatnonzero(mine.to_numpy())
    scratch = scratch[np.argsort(runs[column].to_numpy(float)[scratch])]
    d, loss = runs[column].to_numpy(float)[scratch], draws[:, scratch]
    laws = fit_laws(d, loss) if len(np.unique(d)) >= MIN_LAW_POINTS else no_laws(len(draws))
    read, _ = invert_curves(np.log(d), loss, weights, laws, targets)
    return read


def resample_effective(results: ResultsTable, effective: EffectiveResult, noise: NoiseModel,
                       n_resamples: int, seed: int = 0) -> Resamples:
    """Steps 1-3 of the module docstring for every fine-tuned point."""
    rng = np.random.default_rng(seed)
    runs, table = results.runs, effective.table
    draws = draw_losses(results, noise, n_resamples, rng)
    finetuned = np.flatnonzero((runs["mode"] == "finetune").to_numpy())
    if len(finetuned) != len(table):
        raise ValueError("effective table does not match the results table's fine-tuned runs")
    d_e = np.full((n_resamples, len(table)), np.nan)
    d_e_scratch_only = np.full_like(d_e, np.nan)
    for key, curve in effective.curves.items():
        points = np.flatnonzero((table["n_params"].to_numpy(float) == key[0]) & (table["shape"] == key[1]).to_numpy())
        if not len(points):
            continue
        measured = np.broadcast_to(table["loss"].to_numpy(float)[points], (n_resamples, len(points)))
        targets = np.concatenate([draws[:, finetuned[points]], measured], axis=1)
        read = read_off_curve(results, draws, key, curve.weights, targets)
        d_e[:, points], d_e_scratch_only[:, points] = read[:, :len(points)], read[:, len(points):]
    d_f = table["d_f"].to_numpy(float)
    return Resamples(d_e=d_e, d_t=d_e - d_f, d_t_scratch_only=d_e_scratch_only - d_f, noise=noise, losses=draws)


def percentile_interval(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """5th and 95th percentiles per column, ignoring nan; each an actual draw, so inf stays inf."""
    with python_warnings.catch_warnings():
        python_warnings.simplefilter("ignore", RuntimeWarning)   # all-nan columns (no from-scratch curve)
        lo, hi = np.nanpercentile(draws, INTERVAL_PERCENTILES, axis=0, method="inverted_cdf")
    return lo, hi


def attach_intervals(table: pd.DataFrame, resamples: Resamples) -> None:
    """Fill the per-point 90% interval columns of the effective table (d_e_lo ... d_t_hi)."""
    table["d_e_lo"], table["d_e_hi"] = percentile_interval(resamples.d_e)
    table["d_t_lo"], table["d_t_hi"] = percentile_interval(resamples.d_t)


def seed_spread(results: ResultsTable) -> pd.DataFrame:
    """Per (pretrain, mode, N, shape): the seed-to-seed spread of the loss over the grid points with >= 2 seeds.

    `sd` is the pooled within-point standard deviation (nats), `relative` the same over the mean loss;
    both nan where no grid point of that N and shape has two seeds.
    """
    key = point_key(results)
    columns = ["pretrain", "mode", "n_params", "shape", "grid_points", "seeded_points", "seeds", "sd", "relative"]
    if results.seed_runs.empty:
        return pd.DataFrame(columns=columns)
    groups = results.seed_runs.groupby(key)["loss"]
    points = pd.DataFrame({"count": groups.count(), "mean": groups.mean(), "var": groups.var(ddof=1)}).reset_index()
    rows = []
    for (pretrain, mode, n_params, shape), group in points.groupby(["pretrain", "mode", "n_params", "shape"]):
        seeded = group[group["count"] >= 2]
        dof = (seeded["count"] - 1).to_numpy(float)
        sd = np.sqrt(np.sum(dof * seeded["var"]) / dof.sum()) if len(seeded) else np.nan
        relative = np.sqrt(np.sum(dof * seeded["var"] / seeded["mean"] ** 2) / dof.sum()) if len(seeded) else np.nan
        seeds = float((seeded if len(seeded) else group)["count"].median())   # at the points with seeds
        rows.append([pretrain, mode, float(n_params), shape, len(group), len(seeded), seeds, float(sd), float(relative)])
    return pd.DataFrame(rows, columns=columns)


def d_t_noise(table: pd.DataFrame, resamples: Resamples) -> pd.DataFrame:
    """Per (pretrain, D_F): what the runs' noise does to D_T (medians over N of the per-point numbers).

    `half_width`: half the 90% interval of D_T over D_T; `scratch_share`: the share of the variance of
    log D_T that re-drawing only the from-scratch curve gives (the rest comes from the fine-tuned
    point); `nonpositive`: the share of resamples with D_T <= 0 (noise alone makes the point ossify).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        both = np.log(np.where(resamples.d_t > 0, resamples.d_t, np.nan))
        scratch = np.log(np.where(resamples.d_t_scratch_only > 0, resamples.d_t_scratch_only, np.nan))
        spread = lambda draws: np.diff(percentile_interval(draws), axis=0)[0]  # noqa: E731
        share = np.clip((spread(scratch) / spread(both)) ** 2, 0, 1)
        half_width = (table["d_t_hi"] - table["d_t_lo"]) / (2 * table["d_t"].where(table["d_t"] > 0))
    points = pd.DataFrame({"pretrain": table["pretrain"], "d_f": table["d_f"], "half_width": half_width,
                           "scratch_share": share, "nonpositive": (resamples.d_t <= 0).mean(axis=0),
                           "usable": np.isfinite(table["d_t"]).to_numpy()})
    points = points[points["usable"]]
    summary = points.groupby(["pretrain", "d_f"]).agg(
        points=("half_width", "size"), half_width=("half_width", "median"),
        scratch_share=("scratch_share", "median"), nonpositive=("nonpositive", "mean"))
    return summary.reset_index()
