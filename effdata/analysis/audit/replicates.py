"""Does a transfer law survive the pretraining's seed? Where a table pretrains every size more than once (seeds of
one pretraining recipe: analysis/cpu-pretrain-seeds), the law refitted on each seed's pretraining runs alone: each
replicate of the whole design (fine-tunes at every point, N and D_F, that the law has), its fine-tunes read off the
same from-scratch curves (docs/METHOD.md §6).

A pretraining run's seed moves all its fine-tunes together (0.70 % of their loss, 0.86 % more per checkpoint:
analysis/cpu-finetune-seeds), and with one run per size the whole law rests on one draw of each. These rows say how
far one draw of the ladder moves the exponents, and α's change per decade of N (the form check's, form.py) with it.
Sensitivity rows, no warning: one replicate is noisier than the mean of several that the headline is fitted on, and
the headline's interval already re-draws the runs' shifts (core/bootstrap.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from effdata.analysis.audit.form import alpha_by_n
from effdata.analysis.audit.transfer import fit_points, refit_exponents
from effdata.analysis.core.effective import effective_table
from effdata.analysis.core.fit import TransferFit
from effdata.analysis.core.table import ResultsTable, pretraining_run_of, with_seed_runs


ALONE = "'s pretraining runs alone"      # a row's label: "seed 3" + ALONE


@dataclass
class Replicates:
    """A law refitted on each pretraining seed's runs alone: label -> exponents, and α's change per decade of N."""

    exponents: dict[str, dict[str, float]] = field(default_factory=dict)
    alpha_per_decade: dict[str, float] = field(default_factory=dict)


def pretraining_seeds(results: ResultsTable) -> pd.Series:
    """Each seed run's pretraining seed (index: `results.seed_runs`): the seed of the pretraining row whose run id
    is the run it started from (a mid-run checkpoint's row, `<run>@10tpp`, is that run's); where the table has no
    such row (a table of fine-tunes that name their `pretrain_run`), the lowest seed among that run's fine-tunes
    (a study's extra seeds of a shared pretraining fine-tune it with seeds of their own beside its run's). Missing
    for from-scratch runs, and for fine-tunes that name no run or have no seed."""
    runs, pretraining = results.seed_runs, results.pretraining
    if runs.empty or "seed" not in runs:
        return pd.Series(np.nan, index=runs.index, dtype=float)
    run = pretraining_run_of(runs)
    lowest = pd.to_numeric(runs["seed"], errors="coerce").groupby(run).transform("min")
    if pretraining.empty or not {"run_id", "seed"} <= set(pretraining.columns):
        return lowest.astype(float)
    ids = pretraining["run_id"].astype(str).str.split("@").str[0]
    seed_of = dict(zip(ids, pd.to_numeric(pretraining["seed"], errors="coerce")))
    return run.map(seed_of).astype(float).fillna(lowest)


def by_replicate(table: ResultsTable, curves: dict, fit: TransferFit, labels: dict) -> Replicates:
    """`fit`'s law on each pretraining seed whose runs fine-tune at every point (N, D_F) that the law's fine-tunes
    have (a replicate of the whole design), where there are two or more: on the points its shown law would be fitted on
    (transfer.fit_points), by its estimator (Huber, its δ)."""
    runs, found = table.seed_runs, Replicates()
    if runs.empty or "mode" not in runs:
        return found
    mine = ((runs["mode"] == "finetune") & (runs["pretrain"] == fit.pretrain)).to_numpy()
    seeds = pretraining_seeds(table).to_numpy()
    cells = lambda rows: set(zip(rows["n_params"], rows[table.data_column]))  # noqa: E731
    design = cells(runs[mine])
    whole = [s for s in np.unique(seeds[mine & np.isfinite(seeds)]) if cells(runs[mine & (seeds == s)]) == design]
    if len(whole) < 2:
        return found
    for seed in whole:
        alone = with_seed_runs(table, runs[mine & (seeds == seed)])
        chosen = fit_points(effective_table(alone.finetuned, curves, table.data_column), fit)
        if chosen is None:
            continue
        points, shown = chosen
        d_f, n_params, d_t = (points[c].to_numpy(float) for c in ("d_f", "n_params", "d_t"))
        label = f"seed {seed:g}{ALONE}"
        found.exponents[label] = refit_exponents(d_f, n_params, d_t, shown.huber_delta)
        form = alpha_by_n(d_f, n_params, d_t, None, shown.huber_delta, 0, labels)
        found.alpha_per_decade[label] = form.per_decade if form is not None else float("nan")
    return found
