"""Does a transfer law survive the pretraining's seed? Where a table pretrains every size more than once (seeds of
one pretraining recipe: analysis/cpu-pretrain-seeds), the law refitted on each seed's pretraining runs alone: each
replicate of the whole design (fine-tunes at every point, N and D_F, that the law has). Where the table's
from-scratch runs of that seed cover every from-scratch point too (analysis/cpu-replicates), the replicate reads its
fine-tunes off its own seed's from-scratch curves: the study as a run with that one seed gives it, independent of
the other replicates; else off the same (seed-averaged) curves as the headline (docs/METHOD.md §6).

A pretraining run's seed moves all its fine-tunes together (0.70 % of their loss, 0.86 % more per checkpoint:
analysis/cpu-finetune-seeds), and with one run per size the whole law rests on one draw of each. These rows say how
far one draw of the ladder moves the exponents, and α's change per decade of N (the form check's, form.py) with it.
Sensitivity rows, no warning: one replicate is noisier than the mean of several that the headline is fitted on, and
the headline's interval already re-draws the runs' shifts (core/bootstrap.py). Independent replicates also give the
exponents' spread from one replicate to the next, which a single-seed study's interval should match.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from effdata.analysis.audit.form import alpha_by_n, change_without, left_out_label
from effdata.analysis.audit.transfer import refit_exponents
from effdata.analysis.core.effective import build_curves, effective_table
from effdata.analysis.core.fit import TransferFit, law_points
from effdata.analysis.core.table import ResultsTable, pretraining_run_of, root_of, with_seed_runs


ALONE = "'s pretraining runs alone"      # a row's label: "seed 3" + ALONE (on the headline's from-scratch curves)
OWN = "'s runs alone"                    # "seed 3" + OWN: its fine-tunes on its own from-scratch runs' curves


@dataclass
class Replicates:
    """A law refitted on each pretraining seed's runs alone: label -> exponents, and α's change per decade of N."""

    exponents: dict[str, dict[str, float]] = field(default_factory=dict)
    alpha_per_decade: dict[str, float] = field(default_factory=dict)
    points: dict[str, ReplicatePoints] = field(default_factory=dict)   # label -> the points it was fitted on
    independent: bool = False      # every replicate on its own seed's from-scratch curves

    def spread(self) -> dict[str, float]:
        """Each exponent's standard deviation over the independent replicates (ddof 1); {} where they are not."""
        if not self.independent or len(self.exponents) < 2:
            return {}
        names = next(iter(self.exponents.values())).keys()
        return {n: float(np.std([e[n] for e in self.exponents.values()], ddof=1)) for n in names}

    def change_over_replicates(self, without: str | None = None) -> dict | None:
        """α's change per decade of N averaged over the independent replicates, its 90 % t interval and the p value
        against no change: a test of the rise that does not lean on the bootstrap (analysis/cpu-replicates); with
        `without` (an N's label), the same of each replicate's change refitted without that N. None where the
        replicates are not independent or fewer than three have the change."""
        if not self.independent:
            return None
        if without is None:
            return _mean_over(self.alpha_per_decade.values())
        return _mean_over(change_without(*p.arrays, p.delta, p.without(without)) for p in self.points.values())

    def exponent_over_replicates(self, name: str, without: str) -> dict | None:
        """An exponent averaged over the independent replicates, with every N and without N `without` (each
        replicate refitted without it): a size an exponent rests on, seen on independent draws instead of one pooled
        table (analysis/cpu-replicates: text's β 0.49 with w500k, 0.25 without). None as change_over_replicates."""
        if not self.independent:
            return None
        every = _mean_over(e[name] for e in self.exponents.values())
        rest = _mean_over(refit_exponents(*(a[p.without(without)] for a in p.arrays), p.delta)[name]
                          for p in self.points.values())
        return None if every is None or rest is None else {**every, "without": {"n": without, **rest}}


@dataclass(frozen=True)
class ReplicatePoints:
    """One replicate's fitted points, kept so that a refit without one N is made only for the N asked about (each
    Huber fit costs about 20 ms, and every N of every replicate of every law added 7 s to cpu-replicates' analysis)."""

    d_f: np.ndarray
    n_params: np.ndarray
    d_t: np.ndarray
    delta: float
    labels: dict[float, str]

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.d_f, self.n_params, self.d_t

    def without(self, label: str) -> np.ndarray:
        """The points that are not N `label`'s: all of them where this replicate has none of that N's (ossified or
        extrapolated at every D_F), for its fit is then already without it."""
        return np.array([left_out_label(n, self.labels) != label for n in self.n_params])


def _mean_over(values) -> dict | None:
    """The mean of the finite values, its 90 % t interval and p value against zero; None for fewer than three."""
    values = np.array([v for v in values if np.isfinite(v)])
    if len(values) < 3:
        return None
    test = stats.ttest_1samp(values, 0.0)
    low, high = test.confidence_interval(0.90)
    return {"mean": float(values.mean()), "interval": [float(low), float(high)], "p_value": float(test.pvalue),
            "replicates": int(len(values))}


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
    ids = pretraining["run_id"].astype(str).map(root_of)
    seed_of = dict(zip(ids, pd.to_numeric(pretraining["seed"], errors="coerce")))
    return run.map(seed_of).astype(float).fillna(lowest)


def by_replicate(table: ResultsTable, curves: dict, fit: TransferFit, labels: dict) -> Replicates:
    """`fit`'s law on each pretraining seed whose runs fine-tune at every point (N, D_F) that the law's fine-tunes
    have (a replicate of the whole design), where there are two or more: on the points its shown law would be fitted on
    (core.fit.law_points), by its estimator (Huber, its δ); each on its own seed's from-scratch curves where every
    whole seed has them (`own_scratch`), else all on `curves`."""
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
    scratch = {seed: own_scratch(table, seed) for seed in whole}
    found.independent = all(rows is not None for rows in scratch.values())
    for seed in whole:
        tuned = runs[mine & (seeds == seed)]
        alone = with_seed_runs(table, pd.concat([tuned, scratch[seed]]) if found.independent else tuned)
        read_off = build_curves(alone.scratch, table.data_column, []) if found.independent else curves
        chosen = law_points(effective_table(alone.finetuned, read_off, table.data_column), fit)
        if chosen is None:
            continue
        points, shown = chosen
        d_f, n_params, d_t = (points[c].to_numpy(float) for c in ("d_f", "n_params", "d_t"))
        label = f"seed {seed:g}{OWN if found.independent else ALONE}"
        found.exponents[label] = refit_exponents(d_f, n_params, d_t, shown.huber_delta)
        found.points[label] = ReplicatePoints(d_f, n_params, d_t, shown.huber_delta, labels)
        form = alpha_by_n(d_f, n_params, d_t, None, shown.huber_delta, 0, labels, left_out=False)
        found.alpha_per_decade[label] = form.per_decade if form is not None else float("nan")
    return found


def own_scratch(table: ResultsTable, seed: float) -> pd.DataFrame | None:
    """The table's from-scratch runs of this seed, where they cover every from-scratch point (N, shape, data size)
    that the table has; else None."""
    runs = table.seed_runs
    if "seed" not in runs:
        return None
    scratch = runs[runs["mode"] == "scratch"]
    shape = scratch["shape"].fillna("") if "shape" in scratch else pd.Series("", index=scratch.index)
    points = pd.Series(list(zip(scratch["n_params"], shape, scratch[table.data_column])), index=scratch.index)
    chosen = pd.to_numeric(scratch["seed"], errors="coerce") == seed
    if scratch.empty or set(points[chosen]) != set(points):
        return None
    return scratch[chosen]
