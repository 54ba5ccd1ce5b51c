"""The transfer law D_T = k·D_F^α·N^β audited: each N and each D_F left out, least squares beside Huber, the
largest N predicted from the rest, N counted with embeddings, the ossified fine-tunes put back in as
censored observations, whether one α and one β fit every N (form.py), and whether the Huber fit pins each
exponent at all (core/flat.py) (docs/METHOD.md §6)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.stats import norm

from effdata.analysis.audit.form import SYMBOL, alpha_by_n, beta_by_n, form_warning
from effdata.analysis.audit.leverage import (Extrapolation, LawAudit, estimator_warnings, leave_each_out,
                                             leverage_warnings)
from effdata.analysis.core.fit import (MIN_FIT_POINTS, TransferFit, enough_points, fit_log_linear, flat_ranges,
                                      law_points)
from effdata.fmt import sig

EXPONENTS = ("alpha", "beta")


def _identified(d_f, n_params) -> bool:
    # One point fewer than the headline asks for: a refit without one group needs only to pin three parameters.
    return enough_points(d_f, n_params, MIN_FIT_POINTS - 1) is None


def refit_exponents(d_f, n_params, d_t, delta: float) -> dict[str, float]:
    """(α, β) of the Huber fit on these points; nan where they cannot pin three parameters down."""
    if not _identified(d_f, n_params):
        return {name: np.nan for name in EXPONENTS}
    theta, _ = fit_log_linear(d_f, n_params, d_t, delta)
    return {"alpha": float(theta[1]), "beta": float(theta[2])}


def least_squares(d_f, n_params, d_t) -> dict[str, float]:
    design = np.column_stack([np.ones(len(d_f)), np.log(d_f), np.log(n_params)])
    theta = np.linalg.lstsq(design, np.log(d_t), rcond=None)[0]
    return {"alpha": float(theta[1]), "beta": float(theta[2])}


def extrapolate_largest(d_f, n_params, d_t, delta: float, label: str) -> Extrapolation | None:
    """Fit on every N but the largest; the mean |log D_T error| of its points."""
    largest = n_params == n_params.max()
    if not _identified(d_f[~largest], n_params[~largest]):
        return None
    theta, _ = fit_log_linear(d_f[~largest], n_params[~largest], d_t[~largest], delta)
    predicted = theta[0] + theta[1] * np.log(d_f[largest]) + theta[2] * np.log(n_params[largest])
    return Extrapolation(label, float(np.mean(np.abs(predicted - np.log(d_t[largest])))), "log D_T",
                         int(largest.sum()))


def censored_fit(d_f, n_params, d_t, ossified_d_f, ossified_n) -> dict[str, float] | None:
    """(α, β) with the ossified fine-tunes as left-censored points (a Tobit fit in log D_T, Gaussian scatter).

    An ossified run says D_T ≤ 0, which no log-linear law can reach; what the table can say is that its D_T
    is below the smallest transfer it resolved anywhere: the censoring point is D_F times the smallest
    D_T/D_F among the fitted points (docs/METHOD.md §6)."""
    if not len(ossified_d_f) or not _identified(d_f, n_params):
        return None
    floor = np.log(ossified_d_f * np.min(d_t / d_f))
    x_seen = np.column_stack([np.ones(len(d_f)), np.log(d_f), np.log(n_params)])
    x_cens = np.column_stack([np.ones(len(ossified_d_f)), np.log(ossified_d_f), np.log(ossified_n)])
    y = np.log(d_t)
    start = np.append(np.linalg.lstsq(x_seen, y, rcond=None)[0], np.log(max(np.std(y), 1e-3)))

    def negative_log_likelihood(p):
        theta, sigma = p[:3], np.exp(p[3])
        seen = norm.logpdf(y, x_seen @ theta, sigma).sum()
        return -(seen + norm.logcdf((floor - x_cens @ theta) / sigma).sum())

    result = minimize(negative_log_likelihood, start, method="Nelder-Mead",
                      options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-9})
    return {"alpha": float(result.x[1]), "beta": float(result.x[2])}


def audit_transfer(effective: pd.DataFrame, fit: TransferFit, size_labels: dict[float, str],
                   total_params: dict[float, float], draws: np.ndarray | None = None, seed: int = 0) -> LawAudit | None:
    """Every check of the module docstring for one pretraining name's law. `draws` (B, len(effective)): D_T of
    every row in each bootstrap resample, as the law was fitted on (None: the form check has no interval)."""
    found = law_points(effective, fit)
    if found is None:
        return None
    points, shown = found
    d_f, n_params, d_t = (points[c].to_numpy(float) for c in ("d_f", "n_params", "d_t"))
    delta = shown.huber_delta
    audit = LawAudit(law=f"transfer law '{fit.pretrain}'", estimates={"alpha": shown.alpha, "beta": shown.beta},
                     intervals={k: tuple(v) for k, v in shown.intervals.items() if k in EXPONENTS})
    refit = lambda keep: refit_exponents(d_f[keep], n_params[keep], d_t[keep], delta)  # noqa: E731
    other = lambda keep: (least_squares(d_f[keep], n_params[keep], d_t[keep])  # noqa: E731
                          if _identified(d_f[keep], n_params[keep]) else {})
    audit.left_out = (leave_each_out(n_params, size_labels, "N", refit, other)
                      + leave_each_out(d_f, {}, "D_F", refit, other))
    audit.other_estimate = least_squares(d_f, n_params, d_t)
    audit.extrapolation = extrapolate_largest(d_f, n_params, d_t, delta, size_labels.get(n_params.max(), "largest N"))
    if total_params and all(n in total_params for n in n_params):
        audit.sensitivity["N with embeddings"] = refit_exponents(
            d_f, np.array([total_params[n] for n in n_params]), d_t, delta)
    rows = effective[(effective["pretrain"] == fit.pretrain) & effective["ossified"].astype(bool)]
    censored = censored_fit(d_f, n_params, d_t, rows["d_f"].to_numpy(float), rows["n_params"].to_numpy(float))
    if censored is not None:
        audit.sensitivity[f"with {len(rows)} ossified as censored"] = censored
    point_draws = None if draws is None else draws[:, effective.index.get_indexer(points.index)]
    audit.form = alpha_by_n(d_f, n_params, d_t, point_draws, delta, seed, size_labels)
    audit.bend = beta_by_n(d_f, n_params, d_t, point_draws, delta, seed, size_labels)
    audit.flat = flat_ranges(d_f, n_params, d_t, delta, np.array([np.log(shown.k), shown.alpha, shown.beta]))
    audit.warnings = leverage_warnings(audit) + estimator_warnings(audit) + flat_warnings(audit)
    for form in (audit.form, audit.bend):
        if form is not None:
            audit.warnings += form_warning(audit.law, form)
    return audit


def flat_warnings(audit: LawAudit) -> list[str]:
    """One line per exponent the Huber fit does not pin: every value in a range fits the points equally."""
    return [f"{audit.law}: the Huber fit does not pin {SYMBOL[name]}: every {SYMBOL[name]} in [{sig(low)}, {sig(high)}] "
            f"gives the same least loss (the headline shows the one with the least squared residuals, "
            f"{sig(audit.estimates[name])}); read its interval, not its value (docs/METHOD.md §6)"
            for name, (low, high) in audit.flat.items()]
