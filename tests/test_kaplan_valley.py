"""A Kaplan refit whose points leave an exponent free (`kaplan_valley`): found where the truth has no N term to pin
α_N, not found on a clean Kaplan table, and "fits as well" checked by refits with α_N held at the valley's ends."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from synthetic import CPU_N, CPU_SCRATCH, cpu_scratch_loss

from effdata.analysis.audit.laws import audit_kaplan
from effdata.analysis.laws.scaling import KAPLAN_BOUNDS, ScratchPoints, fit_kaplan, kaplan_valley


def _scratch(loss, seed: int = 0, noise: float = 0.003) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n, d = (grid.ravel() for grid in np.meshgrid(np.asarray(CPU_N, float), np.asarray(CPU_SCRATCH, float)))
    return pd.DataFrame({"pretrain": "none", "mode": "scratch", "n_params": n, "data_chars": d, "data_tokens": d / 4,
                         "loss": loss(n, d) * (1 + noise * rng.standard_normal(n.size))})


def _least_cost_at(points: ScratchPoints, alpha_n: float, start: np.ndarray) -> float:
    """Least squares with α_N held at `alpha_n` (the other three free), from `start` and a few more."""
    def residual(p):
        return p[0] * np.logaddexp((alpha_n / p[0]) * (p[1] - points.log_n), p[2] - points.log_d) - points.log_loss
    lower, upper = np.array(KAPLAN_BOUNDS)[:, 1:]
    starts = [start[1:], [0.1, start[2], start[3]], [0.1, 30.0, start[3]], [0.1, -30.0, start[3]]]
    return min(least_squares(residual, np.clip(s, lower + 1e-9, upper - 1e-9), bounds=(lower, upper)).cost
               for s in starts)


def test_a_table_without_an_n_term_leaves_alpha_n_free_and_every_value_in_the_valley_fits_as_well():
    # L = (D_c/D)^α_D at every N: N_c → 0 switches the N term off whatever α_N is.
    scratch = _scratch(lambda n, d: (5e3 / d) ** 0.1 * 8.0)
    fit = fit_kaplan(scratch, n_bootstrap=0)      # no intervals: the refits are what is tested
    audit = audit_kaplan(scratch, fit, {}, None)
    headline = audit.valley("the headline", "least squares", "alpha_n")
    assert headline is not None            # wider than MIN_SPREAD; ten starts find a part of the valley
    points = ScratchPoints.from_frame(scratch, "tokens")
    start = np.array([fit.alpha_n, fit.alpha_d, np.log(fit.n_c), np.log(fit.d_c)])
    ends = [_least_cost_at(points, a, start) for a in (headline.low, headline.high)]
    inside = _least_cost_at(points, (headline.low + headline.high) / 2, start)
    assert max(ends + [inside]) <= min(ends + [inside]) * (1 + 1e-4)
    assert "Not pinned" not in " ".join(audit.warnings)       # a note under the table, not a warning of its own


def test_a_clean_kaplan_table_is_pinned_with_each_size_left_out():
    for seed in range(2):
        scratch = _scratch(cpu_scratch_loss, seed)
        fit = fit_kaplan(scratch, n_bootstrap=0)      # no intervals: the refits are what is tested
        audit = audit_kaplan(scratch, fit, {}, None)
        assert audit.unpinned == [], audit.unpinned
        points = ScratchPoints.from_frame(scratch, "tokens")
        start = (fit.alpha_n, fit.alpha_d, np.log(fit.n_c), np.log(fit.d_c))
        assert kaplan_valley(points, start) == {}
