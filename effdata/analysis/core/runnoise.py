"""How much of a fine-tune's noise is its pretraining run's and how much its own seed's.

A pretraining's seed moves all the fine-tunes of that run together (8 % of its own loss between two w100k seeds,
up to 6 % of a fine-tune's: analysis/cpu-pretrain-lr/seed1). Where a size is pretrained two or more times and each
run fine-tuned at several points, a two-way analysis of variance of log loss (points x runs) splits a fine-tune's
noise into a shift its run shares with all its fine-tunes and the rest (`pretraining_noise`); the bootstrap re-draws
such fine-tunes together (bootstrap.py). Fine-tunes of one pretraining run at one point that differ in their own seed
alone (`[extra_seeds] pretraining = "shared"`) measure the fine-tune's own seed noise (`own_seed_noise`); the part of
the rest that it leaves is a pretraining's effect that differs between points (`pretraining_interaction`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from effdata.analysis.core.table import ResultsTable, pretraining_run_of


def point_key(results: ResultsTable) -> list[str]:
    """The columns that name one grid point: its seeds are re-drawn together."""
    return ["pretrain", "mode", "n_params", "shape", results.data_column]


@dataclass
class PretrainingGroup:
    """Fine-tuned grid points of one N, shape and pretraining (checkpoints of one run count as one: `text@10tpp`
    is `text`) that each have seeds from two or more of the same pretraining runs."""

    pretrain: str
    n_params: float
    shape: str
    runs: list[str]          # the pretraining runs, m of them
    columns: np.ndarray      # (P,) the points' rows in results.runs
    values: np.ndarray       # (P, m) each run's mean loss at each point; nan where the run has none there
    counts: np.ndarray       # (P, m) how many fine-tunes (seeds) each of those means is over; 0 where none


def pretraining_groups(results: ResultsTable) -> list[PretrainingGroup]:
    """The groups of fine-tuned points to re-draw together: >= 2 runs at >= 2 of their points (with one point,
    re-drawing runs is re-drawing that point's seeds, as already done)."""
    seeds = results.seed_runs
    if seeds.empty or "mode" not in seeds:
        return []
    finetuned = seeds[seeds["mode"] == "finetune"].assign(pretrain_run=lambda t: pretraining_run_of(t))
    finetuned = finetuned.dropna(subset=["pretrain_run"]).assign(root=lambda t: t["pretrain"].str.split("@").str[0])
    key = point_key(results)
    position = {tuple(row): i for i, row in enumerate(results.runs[key].itertuples(index=False))}
    groups = []
    for (root, n_params, shape), rows in finetuned.groupby(["root", "n_params", "shape"], sort=True):
        cells = rows.groupby(key + ["pretrain_run"])["loss"]
        values, counts = cells.mean().unstack("pretrain_run"), cells.size().unstack("pretrain_run")
        values = values[values.notna().sum(axis=1) >= 2]
        if len(values) < 2:
            continue
        groups.append(PretrainingGroup(pretrain=str(root), n_params=float(n_params), shape=str(shape),
                                       runs=[str(r) for r in values.columns],
                                       columns=np.array([position[tuple(i)] for i in values.index]),
                                       values=values.to_numpy(float),
                                       counts=counts.loc[values.index, values.columns].fillna(0).to_numpy(int)))
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
    run shares among all its fine-tunes, from a two-way analysis of variance of log loss (points x runs, the
    points that every run has).

    `shared`: sd of a run's common shift, sqrt(max(0, MS_run - MS_rest) / P); `per_point`: sd of the rest,
    sqrt(MS_rest) (the fine-tune's own seed noise, and how a run's shift differs between points); `p_value`:
    MS_run / MS_rest against F(m - 1, (P - 1)(m - 1)), the chance of so large a shared part with none.
    Both sds are of log loss, so relative sds of the loss."""
    columns = ["pretrain", "n_params", "shape", "runs", "points", "shared", "per_point", "p_value"]
    rows, pooled = [], np.zeros(4)      # sums of squares and degrees of freedom: run, rest
    for g in groups:
        sums = anova_sums(g)
        if sums is None:
            continue
        points = int(np.isfinite(g.values).all(axis=1).sum())
        rows.append([g.pretrain, g.n_params, g.shape, len(g.runs), points, *_components(sums, points)])
        pooled += sums
    if len(rows) > 1:
        mean_points = float(np.mean([r[4] for r in rows]))
        rows.append(["all", np.nan, "", int(np.median([r[3] for r in rows])), sum(r[4] for r in rows),
                     *_components(pooled, mean_points)])
    return pd.DataFrame(rows, columns=columns)


def anova_sums(group: PretrainingGroup) -> np.ndarray | None:
    """[SS_run, dof_run, SS_rest, dof_rest] of the group's log loss over the points every run has (points x runs);
    None with fewer than two such points."""
    y = np.log(group.values[np.isfinite(group.values).all(axis=1)])
    points, m = y.shape
    if points < 2:
        return None
    rest = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()
    return np.array([points * np.sum((y.mean(0) - y.mean()) ** 2), m - 1, np.sum(rest ** 2), (points - 1) * (m - 1)])


def _components(sums: np.ndarray, points: float) -> tuple[float, float, float]:
    """(shared sd, per-point sd, p value) from [SS_run, dof_run, SS_rest, dof_rest] (`pretraining_noise`)."""
    ms_run, ms_rest = sums[0] / sums[1], sums[2] / sums[3]
    p_value = float(stats.f.sf(ms_run / ms_rest, sums[1], sums[3])) if ms_rest > 0 else float("nan")
    return float(np.sqrt(max(0.0, ms_run - ms_rest) / points)), float(np.sqrt(ms_rest)), p_value


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
    named = named.assign(root=named["pretrain"].str.split("@").str[0], log_loss=np.log(named["loss"].astype(float)))
    cells = named.groupby(point_key(results) + ["pretrain_run"])["log_loss"]
    within = pd.DataFrame({"k": cells.size(), "ss": cells.apply(lambda v: float(((v - v.mean()) ** 2).sum()))})
    within = within[within["k"] >= 2].reset_index()
    if within.empty:
        return pd.DataFrame(columns=columns)
    within["root"] = within["pretrain"].str.split("@").str[0]
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
    pooled over the groups: a pretraining run's effect that differs between its points (D_F, starting checkpoint),
    which one shift per run does not model. None without both measurements.

    The rest of the analysis of variance is over cell means of k_c fine-tunes, so its mean square estimates
    interaction² + own² · mean(1/k_c) (cells independent, points balanced); `p_value`: that mean square over
    own² · mean(1/k_c) against F(dof_rest, dof_own), the chance of so large a rest with no interaction."""
    if own.empty:
        return None
    pooled = own.iloc[-1]
    sums, inverse = np.zeros(4), []
    for g in groups:
        group_sums = anova_sums(g)
        if group_sums is None:
            continue
        sums += group_sums
        complete = np.isfinite(g.values).all(axis=1)
        inverse += (1.0 / g.counts[complete]).ravel().tolist()
    if not inverse or sums[3] == 0:
        return None
    ms_rest, expected = sums[2] / sums[3], pooled["own"] ** 2 * float(np.mean(inverse))
    p_value = float(stats.f.sf(ms_rest / expected, sums[3], pooled["dof"])) if expected > 0 else float("nan")
    return {"per_point": float(np.sqrt(ms_rest)), "per_point_dof": int(sums[3]), "own": float(pooled["own"]),
            "own_dof": int(pooled["dof"]), "own_in_per_point": float(np.sqrt(expected)),
            "interaction": float(np.sqrt(max(0.0, ms_rest - expected))), "p_value": p_value}
