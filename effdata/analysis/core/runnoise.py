"""How much of a fine-tune's noise is its pretraining run's and how much its own seed's.

A pretraining's seed moves all the fine-tunes of that run together (8 % of its own loss between two w100k seeds,
up to 6 % of a fine-tune's: analysis/cpu-pretrain-lr/seed1). Where a size is pretrained two or more times and each
run fine-tuned at several points, a nested analysis of variance of log loss splits a fine-tune's noise into a shift
its run shares with all its fine-tunes, a shift each of the run's checkpoints (its final model, `@10tpp`, ...: other
models) shares with its own, and the rest (`pretraining_noise`); the bootstrap re-draws such fine-tunes together
(bootstrap.py). Fine-tunes of one pretraining run at one point that differ in their own seed
alone (`[extra_seeds] pretraining = "shared"`) measure the fine-tune's own seed noise (`own_seed_noise`); the part of
the rest that it leaves is a pretraining's effect that differs between points (`pretraining_interaction`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from effdata.analysis.core.table import ResultsTable, checkpoint_of, pretraining_run_of, root_of


def point_key(results: ResultsTable) -> list[str]:
    """The columns that name one grid point: its seeds are re-drawn together."""
    return ["pretrain", "mode", "n_params", "shape", results.data_column]


@dataclass
class PretrainingGroup:
    """Fine-tuned grid points of one N, shape and pretraining (checkpoints of one run count as one: `text@10tpp`
    is `text`) that each have seeds from two or more of the same pretraining runs. `starts` names each point's
    checkpoint (`10tpp` for `text@10tpp`; "" for the run's final model): a run's checkpoints are different models,
    each with its own shift (`pretraining_noise`)."""

    pretrain: str
    n_params: float
    shape: str
    runs: list[str]          # the pretraining runs, m of them
    columns: np.ndarray      # (P,) the points' rows in results.runs
    values: np.ndarray       # (P, m) each run's mean loss at each point; nan where the run has none there
    counts: np.ndarray       # (P, m) how many fine-tunes (seeds) each of those means is over; 0 where none
    starts: np.ndarray       # (P,) each point's checkpoint: the part of its pretraining name after "@", else ""


def pretraining_groups(results: ResultsTable) -> list[PretrainingGroup]:
    """The groups of fine-tuned points to re-draw together: >= 2 runs at >= 2 of their points (with one point,
    re-drawing runs is re-drawing that point's seeds, as already done)."""
    seeds = results.seed_runs
    if seeds.empty or "mode" not in seeds:
        return []
    finetuned = seeds[seeds["mode"] == "finetune"].assign(pretrain_run=lambda t: pretraining_run_of(t))
    finetuned = finetuned.dropna(subset=["pretrain_run"]).assign(root=lambda t: t["pretrain"].map(root_of))
    key = point_key(results)
    position = {tuple(row): i for i, row in enumerate(results.runs[key].itertuples(index=False))}
    groups = []
    for (root, n_params, shape), rows in finetuned.groupby(["root", "n_params", "shape"], sort=True):
        cells = rows.groupby(key + ["pretrain_run"])
        values = cells["loss"].mean().unstack("pretrain_run")
        counts = (cells["seed"].nunique() if "seed" in rows else cells.size()).unstack("pretrain_run")
        values = values[values.notna().sum(axis=1) >= 2]
        if len(values) < 2:
            continue
        groups.append(PretrainingGroup(pretrain=str(root), n_params=float(n_params), shape=str(shape),
                                       runs=[str(r) for r in values.columns],
                                       columns=np.array([position[tuple(i)] for i in values.index]),
                                       values=values.to_numpy(float),
                                       counts=counts.loc[values.index, values.columns].fillna(0).to_numpy(int),
                                       starts=np.array([checkpoint_of(name) for name in
                                                        values.index.get_level_values("pretrain")])))
    return groups


def one_pretraining_per_point(results: ResultsTable) -> bool:
    """Whether the table has fine-tuned points and each starts from one pretraining run: its seeds name at most one,
    or it has one seed. False where some point's seeds come from two or more runs, or are several and name none
    (then which runs they started from is unknown)."""
    seeds = results.seed_runs
    finetuned = seeds[seeds["mode"] == "finetune"] if len(seeds) else seeds
    if finetuned.empty:
        return False
    named = finetuned.assign(run=pretraining_run_of(finetuned))
    per_point = named.groupby(point_key(results), dropna=False).agg(runs=("run", "nunique"), seeds=("loss", "size"))
    return not ((per_point["runs"] >= 2) | ((per_point["runs"] == 0) & (per_point["seeds"] >= 2))).any()


def pretraining_noise(groups: list[PretrainingGroup]) -> pd.DataFrame:
    """Per group, and pooled over them (pretrain "all"): how much of the fine-tunes' seed noise a pretraining
    run shares among all its fine-tunes, and how much each of its checkpoints shares among its own, from a nested
    analysis of variance of log loss over the points that every run has (`anova_sums`).

    `shared`: sd of a run's common shift, sqrt(max(0, MS_run - MS_checkpoint) / P); `checkpoint`: sd of a
    checkpoint's shift beyond it, sqrt(max(0, MS_checkpoint - MS_rest) / (P / S)) for S checkpoints (nan where
    each checkpoint has one point, or there is one: then it is in the rest, and MS_run is set against MS_rest);
    `per_point`: sd of the rest, sqrt(MS_rest) (the fine-tune's own seed noise, and how a checkpoint's shift
    differs between its points); `p_value`, `checkpoint_p`: each mean square over the next against its F, the
    chance of so large a part with none. The sds are of log loss, so relative sds of the loss."""
    columns = ["pretrain", "n_params", "shape", "runs", "points", "shared", "checkpoint", "per_point", "p_value",
               "checkpoint_p"]
    rows, found = [], []
    for g in groups:
        sums = anova_sums(g)
        if sums is None:
            continue
        rows.append([g.pretrain, g.n_params, g.shape, len(g.runs), int(sums.points), *sums.components()])
        found.append(sums)
    if len(rows) > 1:
        rows.append(["all", np.nan, "", int(np.median([r[3] for r in rows])), sum(r[4] for r in rows),
                     *AnovaSums.pooled(found).components()])
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class AnovaSums:
    """Sums of squares and degrees of freedom of a nested analysis of variance of log loss: runs, a run's
    checkpoints within it (its points grouped by `PretrainingGroup.starts`), the rest; `points` P and
    `per_checkpoint` (P / S) are the coefficients of the expected mean squares (balanced; means when pooled)."""

    run: float
    run_dof: int
    checkpoint: float
    checkpoint_dof: int
    rest: float
    rest_dof: int
    points: float
    per_checkpoint: float

    @staticmethod
    def pooled(found: list["AnovaSums"]) -> "AnovaSums":
        split = [a.per_checkpoint for a in found if a.checkpoint_dof]
        return AnovaSums(*(sum(getattr(a, f) for a in found) for f in
                           ("run", "run_dof", "checkpoint", "checkpoint_dof", "rest", "rest_dof")),
                         points=float(np.mean([a.points for a in found])),
                         per_checkpoint=float(np.mean(split)) if split else 1.0)

    def components(self) -> tuple[float, float, float, float, float]:
        """(shared, checkpoint, per_point, p_value, checkpoint_p): `pretraining_noise`'s columns."""
        ms_rest = self.rest / self.rest_dof
        checkpoint, checkpoint_p, below, below_dof = np.nan, np.nan, ms_rest, self.rest_dof
        if self.checkpoint_dof:
            below, below_dof = self.checkpoint / self.checkpoint_dof, self.checkpoint_dof
            checkpoint = float(np.sqrt(max(0.0, below - ms_rest) / self.per_checkpoint))
            checkpoint_p = _f_sf(below, ms_rest, self.checkpoint_dof, self.rest_dof)
        ms_run = self.run / self.run_dof
        return (float(np.sqrt(max(0.0, ms_run - below) / self.points)), checkpoint, float(np.sqrt(ms_rest)),
                _f_sf(ms_run, below, self.run_dof, below_dof), checkpoint_p)


def _f_sf(above: float, below: float, dof_above: int, dof_below: int) -> float:
    return float(stats.f.sf(above / below, dof_above, dof_below)) if below > 0 else float("nan")


def anova_sums(group: PretrainingGroup) -> AnovaSums | None:
    """The nested analysis of variance of the group's log loss over the points every run has (points x runs); None
    with fewer than two such points. The run-by-point residual splits into a part each (run, checkpoint) shares over
    its points and the rest, where some checkpoint has two or more points; else all of it is the rest."""
    complete = np.isfinite(group.values).all(axis=1)
    y, starts = np.log(group.values[complete]), group.starts[complete]
    points, m = y.shape
    if points < 2:
        return None
    residual = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()
    labels = np.unique(starts)
    split = int(1 < len(labels) < points)
    by_checkpoint = np.zeros_like(residual)
    for label in labels if split else ():
        by_checkpoint[starts == label] = residual[starts == label].mean(axis=0)
    return AnovaSums(run=points * float(np.sum((y.mean(0) - y.mean()) ** 2)), run_dof=m - 1,
                     checkpoint=float(np.sum(by_checkpoint ** 2)), checkpoint_dof=split * (m - 1) * (len(labels) - 1),
                     rest=float(np.sum((residual - by_checkpoint) ** 2)),
                     rest_dof=(m - 1) * (points - 1 - split * (len(labels) - 1)),
                     points=float(points), per_checkpoint=points / len(labels) if split else 1.0)


def own_seed_noise(results: ResultsTable) -> pd.DataFrame:
    """A fine-tune's own seed noise: the sd of log loss among fine-tunes of one pretraining run at one point (a
    *cell*: they differ in their seed alone), pooled over the cells with two or more, per pretraining name (its
    checkpoints counted as it), N and shape, and over all of them (pretrain "all", where there are two or more rows).
    Columns: cells, fine_tunes (in those cells), dof (fine-tunes less cells), own (relative sd of the loss)."""
    columns = ["pretrain", "n_params", "shape", "cells", "fine_tunes", "dof", "own"]
    seeds = results.seed_runs
    finetuned = seeds[seeds["mode"] == "finetune"] if len(seeds) and "mode" in seeds else seeds.iloc[:0]
    if finetuned.empty:
        return pd.DataFrame(columns=columns)
    named = finetuned.assign(pretrain_run=pretraining_run_of(finetuned)).dropna(subset=["pretrain_run"])
    named = named.assign(log_loss=np.log(named["loss"].astype(float)))
    if "seed" in named:     # rows of one seed (a sweep's settings, repeats) are one fine-tune, not several
        named = named.groupby(point_key(results) + ["pretrain_run", "seed"], as_index=False)["log_loss"].mean()
    cells = named.groupby(point_key(results) + ["pretrain_run"])["log_loss"]
    within = pd.DataFrame({"k": cells.size(), "ss": cells.apply(lambda v: float(((v - v.mean()) ** 2).sum()))})
    within = within[within["k"] >= 2].reset_index()
    if within.empty:
        return pd.DataFrame(columns=columns)
    within["root"] = within["pretrain"].map(root_of)
    rows = [[root, float(n), str(shape), len(g), int(g["k"].sum()), int((g["k"] - 1).sum()),
             float(np.sqrt(g["ss"].sum() / (g["k"] - 1).sum()))]
            for (root, n, shape), g in within.groupby(["root", "n_params", "shape"], sort=True)]
    if len(rows) > 1:
        dof = sum(r[5] for r in rows)
        rows.append(["all", np.nan, "", sum(r[3] for r in rows), sum(r[4] for r in rows), dof,
                     float(np.sqrt(within["ss"].sum() / dof))])
    return pd.DataFrame(rows, columns=columns)


def pretraining_interaction(groups: list[PretrainingGroup], own: pd.DataFrame) -> dict | None:
    """What the fine-tune's own seed (`own_seed_noise`, pooled) leaves of the per-point part of `pretraining_noise`,
    pooled over the groups: a pretraining's effect on one point that the run's and the checkpoint's shifts do not
    tie to its others (between the D_F of one checkpoint), which the bootstrap draws per point. None without both
    measurements.

    The rest of the analysis of variance is over cell means of k_c fine-tunes, so its mean square estimates
    interaction² + own² · mean(1/k_c) (cells independent, points balanced); `p_value`: that mean square over
    own² · mean(1/k_c) against F(dof_rest, dof_own), the chance of so large a rest with no interaction."""
    if own.empty:
        return None
    pooled = own.iloc[-1]
    rest, rest_dof, inverse = 0.0, 0, []
    for g in groups:
        sums = anova_sums(g)
        if sums is None:
            continue
        rest, rest_dof = rest + sums.rest, rest_dof + sums.rest_dof
        complete = np.isfinite(g.values).all(axis=1)
        inverse += (1.0 / g.counts[complete]).ravel().tolist()
    if not inverse or rest_dof == 0:
        return None
    ms_rest, expected = rest / rest_dof, pooled["own"] ** 2 * float(np.mean(inverse))
    p_value = _f_sf(ms_rest, expected, rest_dof, int(pooled["dof"])) if expected > 0 else float("nan")
    return {"per_point": float(np.sqrt(ms_rest)), "per_point_dof": int(rest_dof), "own": float(pooled["own"]),
            "own_dof": int(pooled["dof"]), "own_in_per_point": float(np.sqrt(expected)),
            "interaction": float(np.sqrt(max(0.0, ms_rest - expected))), "p_value": p_value}


@dataclass(frozen=True)
class RunNoise:
    """A table's pretraining-run noise, measured once for the report: `pretraining_noise` of its groups,
    `own_seed_noise`, and `pretraining_interaction` (None without both)."""

    pretraining: pd.DataFrame
    own: pd.DataFrame
    interaction: dict | None


def measure_run_noise(results: ResultsTable) -> RunNoise:
    groups = pretraining_groups(results)
    own = own_seed_noise(results)
    return RunNoise(pretraining_noise(groups), own, pretraining_interaction(groups, own))
