"""Does one α fit every N? Does one β? The transfer law's form, tested on its own points (docs/METHOD.md §6).

D_T = k·D_F^α·N^β gives every size the same α, and β is then read the same at every D_F. When α in fact
changes with N (a small model that forgets its pretraining as D_F grows, a large one whose D_T rises
steeply: analysis/cpu-large-d), β depends on the D_F range it was fitted on, and no interval of the
headline says so. The α check refits the law with one more term,

    ln D_T = c + α·x + β·y + δ·(x·y − mean),   x = ln D_F − mean, y = ln N − mean,

so that α(N) = α + δ·(ln N − mean ln N), on the headline's points and on the same bootstrap resamples
(Huber, lack of fit included: core/fit.py), and warns when δ's interval excludes zero. The β check does the
same with γ·(y² − mean) (ln D_T a parabola in ln N, β(N) = β + 2γ·y): a β that grows with N makes a fit on
small sizes under-predict large ones (text+code over 2.2 decades, analysis/cpu-w1m/to-1e6: ×2.6 on w1m).

The interval behind the warning is wider than the report's 90 %: a 90 % interval that excludes zero
under a law with one α would fire on one clean table in ten, and a report holds five laws or more.
Measured (tests/test_form.py: clean tables like v4's, 6 N × 2 D_F, scatter 0.1 in ln D_T, 200 resamples
each): over 400 tables the 90 % interval missed zero on 9.5 %, the 98 % interval (ALARM_PERCENTILES) on
0.75 % (on another 80 tables, 4 times: a rate near 1–2 %); a change of 0.25 per decade of N is found on 25 of 40
such tables, and on all 40 with 3 D_F per N. β's check, on 400 tables like v4 + w1m's (7 N × 2 D_F): the 98 %
interval missed zero on 1 %, the 90 % on 5.8 %; a change of 0.2 per decade is found on 94 of 100. Through the
pipeline, on one-seed CPU-shaped tables whose run noise falls with N, both fire more: β on 3.8 %, α on 2.7 % of 600
(benchmarks/form_alarms.py, docs/METHOD.md §6).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from effdata.analysis.core.fit import INTERVAL_PERCENTILES, MIN_RESAMPLES, fit_with_draws
from effdata.fmt import compact, sig

ALARM_PERCENTILES = (1.0, 99.0)
MIN_FORM_POINTS = 6          # four parameters and two degrees of freedom left for the scatter


@dataclass(frozen=True)
class Term:
    """One exponent let free to change linearly in ln N: the column added to the law's design, and how the
    exponent at N reads off the fitted slope γ of that column (exponent(N) = exponent + factor·γ·(ln N − mean))."""

    exponent: str                                       # "alpha" or "beta": the law's parameter it bends
    index: int                                          # its place in (log k, α, β)
    factor: float                                       # d exponent / d ln N per unit of γ
    min_sizes: int                                      # distinct N it needs (a curve through two N is a line)
    paired: bool                                        # it needs two sizes with two D_F each (a product column)


ALPHA = Term("alpha", 1, 1.0, 2, paired=True)    # column x·y: α(N) = α + γ·y
BETA = Term("beta", 2, 2.0, 3, paired=False)     # column y² − mean: β(N) = d ln D_T / d ln N = β + 2γ·y


@dataclass(frozen=True)
class ExponentByN:
    """An exponent as a function of N on the headline law's points: its change per decade of N and its value at
    the ends."""

    exponent: str                                       # "alpha" or "beta"
    per_decade: float                                   # how much the exponent changes per decade of N
    interval: tuple[float, float] | None                # its 90 % interval (None without resamples)
    alarm_interval: tuple[float, float] | None          # its ALARM_PERCENTILES interval, behind the warning
    at: dict[str, tuple[float, tuple[float, float] | None]]   # smallest and largest N -> the exponent there [90 %]
    n_points: int
    left_out: dict[str, float] = field(default_factory=dict)   # N's label -> the change without it (nan: not pinned)

    @property
    def differs(self) -> bool:
        """The exponent changes with N: the alarm interval of its change excludes zero."""
        return self.alarm_interval is not None and (self.alarm_interval[0] > 0 or self.alarm_interval[1] < 0)

    def to_dict(self) -> dict:
        return {f"{self.exponent}_per_decade_of_n": self.per_decade, "interval": self.interval,
                "alarm_interval": self.alarm_interval, "alarm_percentiles": list(ALARM_PERCENTILES),
                f"{self.exponent}_at": {label: {self.exponent: a, "interval": i} for label, (a, i) in self.at.items()},
                "n_points": self.n_points, "differs": self.differs, "left_out": self.left_out}

    def most_moved_by(self) -> str | None:
        """The N whose leaving out moves the change most (None: no refit pinned it)."""
        moves = {label: abs(v - self.per_decade) for label, v in self.left_out.items() if np.isfinite(v)}
        return max(moves, key=moves.get) if moves else None


def _identified(d_f: np.ndarray, n_params: np.ndarray, term: Term) -> bool:
    # α's term needs two sizes that each have two D_F (the product column is then not a mix of the others);
    # β's needs three sizes (a curve through two is a line) and two D_F.
    if len(d_f) < MIN_FORM_POINTS or len(np.unique(d_f)) < 2:
        return False
    with_two = [n for n in np.unique(n_params) if len(np.unique(d_f[n_params == n])) >= 2]
    return len(np.unique(n_params)) >= term.min_sizes and (not term.paired or len(with_two) >= 2)


def term_column(d_f: np.ndarray, n_params: np.ndarray, term: Term) -> np.ndarray:
    """The term's regressor, as fit_with_draws takes an extra one (it fits on its log)."""
    x, y = np.log(d_f) - np.log(d_f).mean(), np.log(n_params) - np.log(n_params).mean()
    return np.exp(x * y) if term is ALPHA else np.exp(y ** 2)


def _interval(values: np.ndarray, percentiles) -> tuple[float, float] | None:
    values = values[np.isfinite(values)]
    if len(values) < MIN_RESAMPLES:
        return None
    low, high = np.percentile(values, percentiles)
    return float(low), float(high)


def alpha_by_n(d_f, n_params, d_t, draws: np.ndarray | None, delta: float, seed: int,
               labels: dict[float, str], left_out: bool = True) -> ExponentByN | None:
    """The law with α linear in ln N (exponent_by_n with ALPHA)."""
    return exponent_by_n(ALPHA, d_f, n_params, d_t, draws, delta, seed, labels, left_out)


def beta_by_n(d_f, n_params, d_t, draws: np.ndarray | None, delta: float, seed: int,
              labels: dict[float, str], left_out: bool = True) -> ExponentByN | None:
    """The law with β linear in ln N, i.e. ln D_T quadratic in ln N (exponent_by_n with BETA)."""
    return exponent_by_n(BETA, d_f, n_params, d_t, draws, delta, seed, labels, left_out)


def exponent_by_n(term: Term, d_f, n_params, d_t, draws: np.ndarray | None, delta: float, seed: int,
                  labels: dict[float, str], left_out: bool = True) -> ExponentByN | None:
    """The law with `term` added, fitted on (d_f, n_params, d_t) and refitted on each row of `draws` (B, n: the
    same points' D_T in each resample; None: no intervals), and (`left_out`) without each N. None where the
    term cannot be pinned down."""
    d_f, n_params, d_t = (np.asarray(a, float) for a in (d_f, n_params, d_t))
    if not _identified(d_f, n_params, term):
        return None
    law = fit_with_draws(d_f, n_params, d_t, np.empty((0, len(d_t))) if draws is None else draws, delta, seed,
                         extra=(term_column(d_f, n_params, term),))
    samples = law.used if law.samples is not None else np.empty((0, 4))
    at = {}
    for n in (n_params.min(), n_params.max()):
        shift = term.factor * (np.log(n) - np.log(n_params).mean())
        at[labels.get(n, f"N={sig(n)}")] = (float(law.theta[term.index] + law.theta[3] * shift),
                                            _interval(samples[:, term.index] + samples[:, 3] * shift,
                                                      INTERVAL_PERCENTILES))
    per_decade = samples[:, 3] * term.factor * np.log(10)
    return ExponentByN(term.exponent, float(law.theta[3] * term.factor * np.log(10)),
                       _interval(per_decade, INTERVAL_PERCENTILES), _interval(per_decade, ALARM_PERCENTILES), at,
                       len(d_t), left_out=change_without_each_n(d_f, n_params, d_t, delta, labels, term)
                       if left_out else {})


def change_without_each_n(d_f, n_params, d_t, delta: float, labels: dict[float, str],
                          term: Term = ALPHA) -> dict[str, float]:
    """The exponent's change per decade of N refitted without each N in turn (point estimates; nan where the
    rest cannot pin it down), by N's label (left_out_label, as the audit's left-out rows). On v4 replicated six
    times (analysis/cpu-replicates, text+code) the pooled change of α, 1.00 per decade, is 0.18 without w7k, a
    size that forgets its pretraining as D_F grows: the change rests on one N, as β can."""
    return {left_out_label(n, labels): change_without(d_f, n_params, d_t, delta, n_params != n, term)
            for n in np.unique(n_params)}


def left_out_label(value: float, labels: dict[float, str], group: str = "N") -> str:
    """How a left-out group is named: its label (a size's name), else `N=2.5e4` (or `D_F=1e4`)."""
    return labels.get(value, f"{group}={compact(value)}")


def change_without(d_f, n_params, d_t, delta: float, keep: np.ndarray, term: Term = ALPHA) -> float:
    """The exponent's change per decade of N on the points `keep` marks (a point estimate; nan where they cannot
    pin it)."""
    d_f, n_params, d_t = d_f[keep], n_params[keep], d_t[keep]
    if not _identified(d_f, n_params, term):
        return float("nan")
    law = fit_with_draws(d_f, n_params, d_t, np.empty((0, len(d_t))), delta, 0,
                         extra=(term_column(d_f, n_params, term),))
    return float(law.theta[3] * term.factor * np.log(10))


SYMBOL = {"alpha": "α", "beta": "β"}
# What a change with N does to the headline: α's makes β depend on the D_F range, β's on the N range.
CONSEQUENCE = {"alpha": "β depends on the D_F range it is fitted on",
               "beta": "β depends on the N range it is fitted on and the law misreads sizes outside it"}


def form_warning(law: str, form: ExponentByN) -> list[str]:
    """One line when the exponent changes with N, naming its value at the two ends."""
    if not form.differs:
        return []
    symbol = SYMBOL[form.exponent]
    ends = ", ".join(f"{sig(a)} at {label}" for label, (a, _) in form.at.items())
    return [f"{law}: one {symbol} does not fit every N: {symbol} is {ends} ({sig(form.per_decade)} per decade of N, "
            f"{ALARM_PERCENTILES[1] - ALARM_PERCENTILES[0]:g} % interval [{sig(form.alarm_interval[0])}, "
            f"{sig(form.alarm_interval[1])}]{_without_most(form)}), so {CONSEQUENCE[form.exponent]} "
            "(docs/METHOD.md §6)"]


def _without_most(form: ExponentByN) -> str:
    """'; without w7k 0.18 per decade': the refit without the N that moves the change most ('' where none does)."""
    label = form.most_moved_by()
    return "" if label is None else f"; without {label} {sig(form.left_out[label])} per decade"
