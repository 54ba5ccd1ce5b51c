"""The γ law (log D_T = log k + α log D_F + β log N + γ log P, docs/METHOD.md §5d) audited as the transfer
law is: each N left out under both estimators, least squares beside Huber, the largest N predicted."""
from __future__ import annotations

import numpy as np
import pandas as pd

from effdata.analysis.audit.leverage import (Extrapolation, LawAudit, estimator_warnings, leave_each_out,
                                             leverage_warnings)
from effdata.analysis.budget.budget import BudgetFit
from effdata.analysis.core.fit import MIN_FIT_POINTS, fit_log_linear, headline_points, select_fit_points

EXPONENTS = ("alpha", "beta", "gamma")


def _points(points: pd.DataFrame, fit: BudgetFit) -> tuple[pd.DataFrame, BudgetFit] | None:
    shown = fit if fit.fitted else fit.including_extrapolated
    if shown is None or not shown.fitted:
        return None
    rows = points[(points["base"] == fit.base) & np.isfinite(points["p"]) & (points["p"] > 0)]
    chosen, _, _ = select_fit_points(rows, [], fit.base)
    return (headline_points(chosen)[0] if shown.points == "interpolated" else chosen), shown


def _identified(d_f, n, p) -> bool:
    return (len(d_f) >= MIN_FIT_POINTS and len(np.unique(d_f)) >= 2 and len(np.unique(n)) >= 2
            and len(np.unique(p)) >= 2 and np.linalg.matrix_rank(np.column_stack(
                [np.ones(len(d_f)), np.log(d_f), np.log(n), np.log(p)])) == 4)


def _huber(d_f, n, d_t, p, delta) -> dict[str, float]:
    if not _identified(d_f, n, p):
        return {}
    theta, _ = fit_log_linear(d_f, n, d_t, delta, extra=(p,))
    return dict(zip(EXPONENTS, map(float, theta[1:4])))


def _least_squares(d_f, n, d_t, p) -> dict[str, float]:
    if not _identified(d_f, n, p):
        return {}
    design = np.column_stack([np.ones(len(d_f)), np.log(d_f), np.log(n), np.log(p)])
    return dict(zip(EXPONENTS, map(float, np.linalg.lstsq(design, np.log(d_t), rcond=None)[0][1:4])))


def audit_budget(points: pd.DataFrame, fit: BudgetFit, size_labels: dict[float, str]) -> LawAudit | None:
    found = _points(points, fit)
    if found is None:
        return None
    chosen, shown = found
    d_f, n, d_t, p = (chosen[c].to_numpy(float) for c in ("d_f", "n_params", "d_t", "p"))
    audit = LawAudit(f"γ law '{fit.base}'", {k: getattr(shown, k) for k in EXPONENTS},
                     {k: tuple(v) for k, v in shown.intervals.items() if k in EXPONENTS})
    audit.left_out = leave_each_out(n, size_labels, "N", lambda keep: _huber(d_f[keep], n[keep], d_t[keep], p[keep],
                                                                              shown.huber_delta),
                                    lambda keep: _least_squares(d_f[keep], n[keep], d_t[keep], p[keep]))
    audit.other_estimate = _least_squares(d_f, n, d_t, p)
    top = n == n.max()
    if _identified(d_f[~top], n[~top], p[~top]):
        theta, _ = fit_log_linear(d_f[~top], n[~top], d_t[~top], shown.huber_delta, extra=(p[~top],))
        predicted = theta[0] + theta[1] * np.log(d_f[top]) + theta[2] * np.log(n[top]) + theta[3] * np.log(p[top])
        audit.extrapolation = Extrapolation(size_labels.get(float(n.max()), "the largest N"),
                                            float(np.mean(np.abs(predicted - np.log(d_t[top])))), "log D_T", int(top.sum()))
    audit.warnings = leverage_warnings(audit) + estimator_warnings(audit)
    return audit
