"""Pretraining budget: how D_T depends on how long the starting model was pretrained. No torch.

docs/METHOD.md §5d. A fine-tune's budget is P, the pretraining tokens per parameter of the checkpoint it
started from (its `pretrain_tokens_per_param`; a table without that column: the pretraining row of the
same name and size, tokens_seen / N). Names that share a *base distribution*, the part before `@`
(`text`, `text@10tpp`, `text@3tpp`), differ only in P. Per base:

* `describe_budgets`: each pretraining name's budget in words, from the data: per parameter (the same P at
  every N: "30 tokens/parameter"), fixed (the same tokens at every N, so P = B/N: "fixed 4 M tokens
  (157–7.2 tokens/parameter)"), else the range of P;
* `fit_budget`: log D_T = log k + α log D_F + β log N + γ log P on the transfer fit's points
  (`fit.select_fit_points`, `fit.headline_points`: the low-data regime, D_E read inside the measured
  from-scratch range, else a row including extrapolated D_E beside no headline), Huber in log space, 90%
  intervals from the same resamples of the runs. Only with >= 2 N that each have >= 2 distinct P: a fixed
  budget ties P to N, and β and γ cannot be told apart;
* `fixed_budget_check`: under a fixed budget B, P = B/N, so D_T ∝ N^β P^γ = B^γ N^(β−γ): the slope in N
  a fixed-budget study measures should be β − γ. Predicted from a study whose budget grows with N (β of
  its name at the largest P, minus γ, paired resample by resample: both come from the same re-drawn
  runs) and set against the other study's measured β (independent studies: its draws pair at random).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from effdata.analysis.core.fit import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_HUBER_DELTA,
    INTERVAL_PERCENTILES,
    MIN_FIT_POINTS,
    MIN_RESAMPLES,
    TransferFit,
    fit_with_draws,
    headline_points,
    jsonable,
    select_fit_points,
)
from effdata.analysis.core.table import ResultsTable, TableError, root_of

MIN_BUDGET_POINTS = MIN_FIT_POINTS + 1   # four parameters plus at least two degrees of freedom
SAME_BUDGET_RATIO = 1.05                 # P (or tokens) within 5% across N: one budget (steps round them up)


def reading(interval) -> str:
    """What a 90% interval alone says about the sign of a slope."""
    if interval is None or not all(np.isfinite(interval)):
        return "no interval"
    lo, hi = interval
    return "positive" if lo > 0 else "negative" if hi < 0 else "consistent with zero"


# --------------------------------------------------------------------------- P of every fine-tune

def tokens_per_param(effective: pd.DataFrame, pretraining: pd.DataFrame) -> pd.Series:
    """P of each fine-tuned row: its own `pretrain_tokens_per_param`, else its pretraining run's tokens
    per parameter (same name, N and shape, seeds averaged; then same name and N), else nan."""
    own = effective.get("pretrain_tokens_per_param", pd.Series(np.nan, index=effective.index)).astype(float)
    if pretraining.empty or "n_params" not in pretraining:
        return own
    runs = pretraining.assign(shape=pretraining.get("shape", ""), p=_run_tokens_per_param(pretraining))
    exact = runs.groupby(["pretrain", "n_params", "shape"])["p"].mean()
    loose = runs.groupby(["pretrain", "n_params"])["p"].mean()
    looked_up = [exact.get((row.pretrain, row.n_params, row.shape), loose.get((row.pretrain, row.n_params), np.nan))
                 for row in effective[["pretrain", "n_params", "shape"]].itertuples()]
    return own.fillna(pd.Series(looked_up, index=effective.index, dtype=float))


def _run_tokens_per_param(pretraining: pd.DataFrame) -> np.ndarray:
    """A pretraining row's `tokens_per_param`, else tokens_seen / N (nan without either)."""
    nan = pd.Series(np.nan, index=pretraining.index)
    given = pd.to_numeric(pretraining.get("tokens_per_param", nan), errors="coerce")
    seen = pd.to_numeric(pretraining.get("tokens_seen", nan), errors="coerce")
    return given.fillna(seen / pretraining["n_params"].astype(float)).to_numpy(float)


def budget_points(effective: pd.DataFrame, pretraining: pd.DataFrame) -> pd.DataFrame:
    """The effective table (same index) with each row's base distribution `base` and budget `p`."""
    return effective.assign(base=[root_of(str(p)) for p in effective["pretrain"]],
                            p=tokens_per_param(effective, pretraining).to_numpy(float))


# --------------------------------------------------------------------------- budgets in words

@dataclass(frozen=True)
class Budget:
    """How one pretraining name was budgeted across N."""

    pretrain: str
    base: str
    kind: str                      # "per parameter", "fixed", "varied" or "unknown"
    label: str                     # "30 tokens/parameter", "fixed 4 M tokens (157–7.2 tokens/parameter)"
    p_min: float | None = None
    p_max: float | None = None
    tokens_min: float | None = None
    tokens_max: float | None = None

    def to_dict(self) -> dict:
        return jsonable(asdict(self))


def per_param_text(p: float) -> str:
    """30.07 -> '30', 7.15 -> '7.2', 157.1 -> '157': tokens per parameter as a label."""
    return f"{p:.0f}" if p >= 100 else f"{p:.2g}"


def tokens_text(tokens: float) -> str:
    """4001792 -> '4 M', 2.5e8 -> '250 M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if tokens >= scale:
            value = tokens / scale
            return f"{value:.0f} {unit}" if value >= 100 else f"{value:.2g} {unit}"
    return f"{tokens:.0f}"


def describe_budget(pretrain: str, rows: pd.DataFrame) -> Budget:
    """The budget of one name from its rows' P (mean per N): per parameter, fixed, varied or unknown."""
    per_n = rows.groupby("n_params")["p"].mean().dropna()
    if per_n.empty:
        return Budget(pretrain, root_of(str(pretrain)), "unknown", "budget unknown (no pretraining tokens per parameter)")
    p = per_n.to_numpy(float)
    tokens = p * per_n.index.to_numpy(float)
    ranges = {"p_min": float(p.min()), "p_max": float(p.max()), "tokens_min": float(tokens.min()),
              "tokens_max": float(tokens.max())}
    span = f"{per_param_text(p.max())}–{per_param_text(p.min())} tokens/parameter"
    if p.max() <= SAME_BUDGET_RATIO * p.min():
        kind, label = "per parameter", f"{per_param_text(float(np.exp(np.log(p).mean())))} tokens/parameter"
    elif tokens.max() <= SAME_BUDGET_RATIO * tokens.min():
        kind, label = "fixed", f"fixed {tokens_text(float(np.exp(np.log(tokens).mean())))} tokens ({span})"
    else:
        kind, label = "varied", span
    return Budget(pretrain, root_of(str(pretrain)), kind, label, **ranges)


def describe_budgets(points: pd.DataFrame) -> dict[str, Budget]:
    """Every pretraining name's budget, largest P first within a base (`budget_points` rows)."""
    budgets = [describe_budget(name, rows) for name, rows in points.groupby("pretrain")]
    budgets.sort(key=lambda b: (b.base, -(b.p_max or 0.0), b.pretrain))
    return {b.pretrain: b for b in budgets}


# --------------------------------------------------------------------------- the γ fit

@dataclass(frozen=True)
class BudgetFit:
    """log D_T = log k + α log D_F + β log N + γ log P for one base distribution (all its budgets)."""

    base: str
    units: str
    fitted: bool
    reason: str | None = None                 # why not fitted, when fitted is False
    names: tuple[str, ...] = ()               # the pretraining names pooled
    k: float | None = None
    alpha: float | None = None
    beta: float | None = None                 # the slope in N at fixed P
    gamma: float | None = None                # the slope in P at fixed N
    intervals: dict[str, list[float]] = field(default_factory=dict)
    points: str = "interpolated"              # which D_E: "interpolated" or "including extrapolated"
    regime: str | None = None
    n_points: int = 0
    n_extrapolated: int = 0
    n_distinct_n: int = 0
    n_distinct_p: int = 0
    p_range: tuple[float, float] | None = None
    rmse_log: float | None = None
    lack_of_fit: float | None = None
    huber_delta: float = DEFAULT_HUBER_DELTA
    n_bootstrap_used: int = 0
    samples: np.ndarray | None = field(default=None, repr=False, compare=False)   # (B, 4), row b = resample b
    including_extrapolated: "BudgetFit | None" = None

    def predict(self, d_f, n_params, p):
        return (self.k * np.asarray(d_f, float) ** self.alpha * np.asarray(n_params, float) ** self.beta
                * np.asarray(p, float) ** self.gamma)

    def to_dict(self) -> dict:
        out = asdict(replace(self, samples=None, including_extrapolated=None))
        out.pop("samples")
        out["including_extrapolated"] = self.including_extrapolated.to_dict() if self.including_extrapolated else None
        return jsonable(out)


def _distinct(values: np.ndarray) -> int:
    """Distinct budgets, P within rounding (seeds averaged, steps rounded up) counted once."""
    return len(np.unique(np.round(np.log(np.asarray(values, float)) / np.log(SAME_BUDGET_RATIO))))


def budget_reason(points: pd.DataFrame) -> str | None:
    """None if the points can separate γ from β, else the reason."""
    if len(points) < MIN_BUDGET_POINTS:
        return f"need ≥ {MIN_BUDGET_POINTS} points with D_T > 0 (have {len(points)})"
    if points["d_f"].nunique() < 2:
        return "need ≥ 2 distinct D_F to fit alpha (have 1)"
    several = sum(_distinct(rows["p"]) >= 2 for _, rows in points.groupby("n_params"))
    if several < 2:
        return (f"need ≥ 2 N with ≥ 2 pretraining budgets each to tell γ from β (have {several}): "
                "a fixed token budget gives every N one P, tied to N")
    return None


def _fit_budget_points(points: pd.DataFrame, draws: np.ndarray, label: str, common: dict, seed: int,
                       progress: bool, warnings: list[str]) -> BudgetFit:
    """Fit and bootstrap the law with γ on `points`; `draws` (B, len(points)) their re-read D_T."""
    d_f, n_params, d_t, p = (points[c].to_numpy(float) for c in ("d_f", "n_params", "d_t", "p"))
    law = fit_with_draws(d_f, n_params, d_t, draws, common["huber_delta"], seed, progress, extra=(p,))
    intervals = {}
    bounds = law.percentiles()
    if bounds is not None:
        lo, hi = bounds
        intervals = {"k": [float(np.exp(lo[0])), float(np.exp(hi[0]))], "alpha": [float(lo[1]), float(hi[1])],
                     "beta": [float(lo[2]), float(hi[2])], "gamma": [float(lo[3]), float(hi[3])]}
    else:
        warnings.append(f"budget fit '{common['base']}' ({label}): " + (
            f"only {len(law.used)} usable bootstrap resamples: no intervals" if len(draws) else
            "bootstrap disabled: the fit has no intervals"))
    log_k, alpha, beta, gamma = (float(v) for v in law.theta)
    return BudgetFit(fitted=True, k=math.exp(log_k), alpha=alpha, beta=beta, gamma=gamma, intervals=intervals,
                     points=label, n_points=len(points), n_extrapolated=int(points["extrapolated"].sum()),
                     n_distinct_n=int(points["n_params"].nunique()), n_distinct_p=_distinct(p),
                     p_range=(float(p.min()), float(p.max())), rmse_log=law.rmse_log, lack_of_fit=law.lack_of_fit,
                     n_bootstrap_used=len(law.used), samples=law.samples, **common)


def fit_budget(points: pd.DataFrame, base: str, units: str, draws: np.ndarray | None = None,
               n_bootstrap: int = DEFAULT_BOOTSTRAP, huber_delta: float = DEFAULT_HUBER_DELTA, seed: int = 0,
               warnings: list[str] | None = None, progress: bool = False) -> BudgetFit:
    """The γ law of one base distribution. `points`: `budget_points` of the effective table; `draws` (B,
    len(points)): D_T of every row in each resample (bootstrap.Resamples.d_t), else D_T held fixed."""
    warnings = [] if warnings is None else warnings
    rows = points[(points["base"] == base) & np.isfinite(points["p"]) & (points["p"] > 0)]
    common = {"base": base, "units": units, "huber_delta": huber_delta, "names": tuple(sorted(rows["pretrain"].unique()))}
    if rows.empty:
        return BudgetFit(fitted=False, reason="not fitted: no fine-tune with a known pretraining budget (tokens per "
                                              "parameter)", **common)
    chosen, regime, reason = select_fit_points(rows, warnings, f"{base}, budgets pooled")
    reason = reason or budget_reason(chosen)
    if reason is not None:
        return BudgetFit(fitted=False, reason=f"not fitted: {reason}", regime=regime, **common)
    common["regime"] = regime
    if draws is None:
        draws = np.broadcast_to(points["d_t"].to_numpy(float), (n_bootstrap, len(points)))
    fit_on = lambda chosen_rows, label: _fit_budget_points(  # noqa: E731
        chosen_rows, draws[:, points.index.get_indexer(chosen_rows.index)], label, common, seed, progress, warnings)
    beside = fit_on(chosen, "including extrapolated") if chosen["extrapolated"].any() else None
    inside, headline_reason = headline_points(chosen)
    inside_reason = None if headline_reason else budget_reason(inside)
    headline_reason = headline_reason or (f"{inside_reason} with D_E inside the measured from-scratch range"
                                          if inside_reason else None)
    if headline_reason is not None:
        return BudgetFit(fitted=False, reason=f"not fitted on interpolated D_E: {headline_reason}",
                         including_extrapolated=beside, **common)
    return replace(fit_on(inside, "interpolated"), including_extrapolated=beside)


# --------------------------------------------------------------------------- a study, and two compared

def _targets(raw: pd.DataFrame) -> set[str]:
    """The target distributions a raw results table names (empty without a `target` column)."""
    if "target" not in raw:
        return set()
    return set(raw["target"].dropna().astype(str).str.strip()) - {""}


def comparable_tables(this_raw: pd.DataFrame, this: ResultsTable, other_raw: pd.DataFrame, other: ResultsTable,
                      other_name: str) -> list[str]:
    """Raise TableError when `other` cannot be set beside `this` (no fine-tunes in either, another target,
    another unit of D); return warnings for what could not be checked."""
    where = f"--budget-compare {other_name}"
    if other.finetuned.empty:
        raise TableError(f"{where}: no fine-tuned runs, nothing to compare")
    if this.finetuned.empty:
        raise TableError(f"{where}: this table has no fine-tuned runs, nothing to compare it with")
    if this.units != other.units:
        raise TableError(f"{where}: its data sizes are in {other.units}, this table's in {this.units}")
    mine, theirs = _targets(this_raw), _targets(other_raw)
    if mine and theirs and mine != theirs:
        raise TableError(f"{where}: a study of target {', '.join(sorted(theirs))}, this table's is "
                         f"{', '.join(sorted(mine))}: D_T of different targets do not compare")
    unknown = [name for name, targets in (("this table", mine), (other_name, theirs)) if not targets]
    return [f"{where}: no `target` column in {' or '.join(unknown)}: assumed to be the same target"] if unknown else []



@dataclass(frozen=True)
class StudyBudget:
    """One results table's budgets: each name's budget and transfer fit, each base's γ fit, its points."""

    role: str                                  # "this table" or "compared table"
    source: str
    units: str
    budgets: dict[str, Budget]
    transfer: dict[str, TransferFit]
    fits: dict[str, BudgetFit]
    points: pd.DataFrame = field(repr=False, compare=False)

    @property
    def bases(self) -> list[str]:
        return sorted({b.base for b in self.budgets.values()})

    def names(self, base: str) -> list[str]:
        """Its pretraining names of one base, largest P first."""
        return [name for name, b in self.budgets.items() if b.base == base]

    def to_dict(self) -> dict:
        return {"role": self.role, "source": self.source, "units": self.units,
                "budgets": {name: b.to_dict() for name, b in self.budgets.items()},
                "transfer": {name: fit.to_dict() for name, fit in self.transfer.items() if name in self.budgets},
                "fits": {base: fit.to_dict() for base, fit in self.fits.items()}}


def study_budget(role: str, source: str, effective: pd.DataFrame, pretraining: pd.DataFrame,
                 transfer: dict[str, TransferFit], units: str, draws: np.ndarray | None = None,
                 n_bootstrap: int = DEFAULT_BOOTSTRAP, huber_delta: float = DEFAULT_HUBER_DELTA, seed: int = 0,
                 warnings: list[str] | None = None, progress: bool = False) -> StudyBudget:
    """Budgets and γ fits of one table. `effective`: the effective table its transfer fits used; `draws`: the
    same resamples (B, len(effective)), so that γ and each name's β pair up draw by draw."""
    points = budget_points(effective, pretraining)
    budgets = describe_budgets(points)
    fits = {base: fit_budget(points, base, units, draws, n_bootstrap, huber_delta, seed, warnings, progress)
            for base in sorted({b.base for b in budgets.values()})}
    return StudyBudget(role=role, source=source, units=units, budgets=budgets, transfer=transfer, fits=fits,
                       points=points)


def usable(fit: TransferFit | BudgetFit | None) -> tuple[TransferFit | BudgetFit | None, str]:
    """(the row to use, a note): the headline law, else the row including extrapolated D_E (said), else None
    with the reason."""
    if fit is not None and fit.fitted:
        return fit, ""
    beside = fit.including_extrapolated if fit is not None else None
    if beside is not None and beside.fitted:
        return beside, "including extrapolated D_E (no headline law)"
    return None, fit.reason if fit is not None else "no fine-tuned runs"


def _interval(draws: np.ndarray) -> list[float] | None:
    finite = draws[np.isfinite(draws)]
    return [float(v) for v in np.percentile(finite, INTERVAL_PERCENTILES)] if len(finite) >= MIN_RESAMPLES else None


@dataclass(frozen=True)
class FixedBudgetCheck:
    """The fixed-budget β a study whose budget grows with N predicts (β at its largest P − γ), against the
    β another study measured under a fixed budget; `reason` says why there is none."""

    base: str
    reason: str | None = None
    grown: str | None = None                  # role of the table the prediction comes from
    fixed: str | None = None                  # role of the table that measured under a fixed budget
    reference: str | None = None              # the grown table's name at its largest P (whose β is used)
    reference_label: str | None = None
    fixed_name: str | None = None
    fixed_label: str | None = None
    predicted: float | None = None
    predicted_interval: list[float] | None = None
    measured: float | None = None
    measured_interval: list[float] | None = None
    difference: float | None = None           # predicted − measured
    difference_interval: list[float] | None = None
    verdict: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return jsonable(asdict(self))


def _samples(fit, column: int) -> np.ndarray:
    return np.full(0, np.nan) if fit.samples is None else np.asarray(fit.samples, float)[:, column]


def _check_parts(grown: StudyBudget, fixed: StudyBudget, base: str) -> tuple[dict, list[str]] | str:
    """The fits the check reads (or why it cannot be made), with notes on any that is not a headline law."""
    gamma_fit, gamma_note = usable(grown.fits.get(base))
    if gamma_fit is None:
        return f"γ of `{base}` not fitted in the {grown.role} ({gamma_note})"
    per_param = [n for n in grown.names(base) if grown.budgets[n].kind == "per parameter"]
    fixed_names = [n for n in fixed.names(base) if fixed.budgets[n].kind == "fixed"]
    if not per_param:
        return f"the {grown.role} has no `{base}` pretraining with a budget per parameter"
    if not fixed_names:
        return f"the {fixed.role} has no `{base}` pretraining under a fixed token budget"
    reference, measured = per_param[0], fixed_names[0]
    beta_fit, beta_note = usable(grown.transfer.get(reference))
    fixed_fit, fixed_note = usable(fixed.transfer.get(measured))
    if beta_fit is None or fixed_fit is None:
        which, why = (reference, beta_note) if beta_fit is None else (measured, fixed_note)
        return f"no transfer law for `{which}` ({why})"
    notes = [f"{what}: {note}" for what, note in ((f"γ of `{base}`", gamma_note), (f"β of `{reference}`", beta_note),
                                                   (f"β of `{measured}` ({fixed.role})", fixed_note)) if note]
    return {"gamma": gamma_fit, "beta": beta_fit, "fixed": fixed_fit, "reference": reference, "measured": measured}, notes


def fixed_budget_check(grown: StudyBudget, fixed: StudyBudget, base: str) -> FixedBudgetCheck:
    """β − γ of `grown` against the measured β of `fixed`'s fixed-budget name of the same base (module docstring)."""
    parts = _check_parts(grown, fixed, base)
    if isinstance(parts, str):
        return FixedBudgetCheck(base=base, reason=parts, grown=grown.role, fixed=fixed.role)
    fits, notes = parts
    predicted_draws = _samples(fits["beta"], 2) - _samples(fits["gamma"], 3)     # the same resamples, pairwise
    measured_draws = _samples(fits["fixed"], 2)
    count = min(len(predicted_draws), len(measured_draws))                        # independent studies
    difference_draws = predicted_draws[:count] - measured_draws[:count]
    predicted = fits["beta"].beta - fits["gamma"].gamma
    difference_interval = _interval(difference_draws)
    verdict = {"positive": "the prediction lies above the measured β",
               "negative": "the prediction lies below the measured β",
               "consistent with zero": "consistent: the difference's 90% interval holds 0",
               "no interval": "no interval to judge by"}[reading(difference_interval)]
    return FixedBudgetCheck(
        base=base, grown=grown.role, fixed=fixed.role, reference=fits["reference"],
        reference_label=grown.budgets[fits["reference"]].label, fixed_name=fits["measured"],
        fixed_label=fixed.budgets[fits["measured"]].label, predicted=predicted,
        predicted_interval=_interval(predicted_draws), measured=fits["fixed"].beta,
        measured_interval=fits["fixed"].intervals.get("beta"), difference=predicted - fits["fixed"].beta,
        difference_interval=difference_interval, verdict=verdict, notes=tuple(notes))


@dataclass(frozen=True)
class BudgetStudy:
    """This table's budgets, the compared table's (if any) and the fixed-budget check per base."""

    units: str
    studies: tuple[StudyBudget, ...]
    checks: dict[str, FixedBudgetCheck] = field(default_factory=dict)

    @property
    def bases(self) -> list[str]:
        return sorted({base for study in self.studies for base in study.bases})

    def to_dict(self) -> dict:
        return {"units": self.units, "model": "log D_T = log k + α log D_F + β log N + γ log P, P = pretraining "
                "tokens per parameter", "studies": [s.to_dict() for s in self.studies],
                "fixed_budget_checks": {base: check.to_dict() for base, check in self.checks.items()}}


def compare_budgets(this: StudyBudget, other: StudyBudget | None = None) -> BudgetStudy:
    """The budget section's content: with another table, the fixed-budget check of every base both hold,
    predicted from this table (else from the other, when only it has γ)."""
    if other is None:
        return BudgetStudy(units=this.units, studies=(this,))
    checks = {}
    for base in sorted(set(this.bases) & set(other.bases)):
        check = fixed_budget_check(this, other, base)
        if check.reason is not None and usable(other.fits.get(base))[0] is not None:
            reverse = fixed_budget_check(other, this, base)
            check = reverse if reverse.reason is None else check
        checks[base] = check
    return BudgetStudy(units=this.units, studies=(this, other), checks=checks)
