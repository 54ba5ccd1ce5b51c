"""A run's best held-out loss forecast from the start of its learning curve, and the rule that stops a sweep's
losing run by it (docs/METHOD.md §5f). No torch.

Foundation, not analysis: the training loop stops a run by this forecast (`TrainSettings.stop_by_forecast`)
and the analysis measures its error (`analysis/dynamics/forecast.py`); one fit serves both, and neither layer
may import the other.

* `own_forecast`: L = c + b·S^(−a) fitted to a run's evaluations after warm-up, read at its planned end.
* `MARGINS`: how wrong that forecast was, measured: the largest |forecast/best − 1| over the 20 runs with
  curves among the committed studies (analysis/dynamics and analysis/dynamics-batch: 13 from scratch, 7
  fine-tunes; cosine schedules of 300 steps, 20 evaluations each), at each fraction of the run seen, rounded
  up (`benchmarks/stop_by_forecast.py --margins` measures it again; tests/test_stop_forecast.py checks it).
  From-scratch runs set it, and their forecasts err high (+2 % on average at half the run, +10 % at a
  quarter: a power law in S does not see the cosine decay's last drop); fine-tunes, which early-stop, err
  low and by less (at most 7 % at a quarter, 3 % at half).
* `stop_check`: stop when the forecast less its margin is still above the best finished sibling's loss.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

MIN_POINTS = 4      # c + b·S^(−a): three numbers and one degree of freedom

# (fraction of the planned steps seen, relative margin): max |error| 0.139, 0.128, 0.086, 0.043, 0.028 measured.
MARGINS = ((0.25, 0.14), (0.3, 0.13), (0.4, 0.09), (0.5, 0.05), (0.6, 0.03))
FIRST_FRACTION = MARGINS[0][0]   # below it nothing was measured (with 20 evaluations, < 4 points after warm-up)


def own_forecast(steps, losses, end: float) -> float:
    """c + b·S^(−a) fitted (in log loss) to the points (`steps`, `losses`), read at step `end`; NaN with fewer
    than MIN_POINTS points."""
    import numpy as np  # noqa: PLC0415 (here, not at the top: spec reads FIRST_FRACTION and every process imports
    from scipy.optimize import least_squares  # noqa: PLC0415  spec; numpy and scipy.optimize took 0.36 s)

    s, loss = np.asarray(steps, float), np.asarray(losses, float)
    if len(s) < MIN_POINTS:
        return math.nan
    scale = s.max()

    def residual(p):
        c, log_b, a = p
        return np.log(c + np.exp(log_b - a * np.log(s / scale))) - np.log(loss)

    start = np.array([0.5 * loss.min(), np.log(0.5 * loss.min()), 0.5])
    result = least_squares(residual, start, bounds=([0.0, -30, 0.01], [loss.max(), 30, 5.0]))
    c, log_b, a = result.x
    return float(c + np.exp(log_b - a * np.log(end / scale)))


def margin_at(seen: float) -> float | None:
    """The measured margin for a run seen to `seen` of its planned steps: that of the largest measured fraction
    at or below it (errors shrink as more is seen, so this is the safe side); None below FIRST_FRACTION."""
    usable = [margin for fraction, margin in MARGINS if fraction <= seen + 1e-9]
    return usable[-1] if usable else None


@dataclass(frozen=True)
class StopCheck:
    """One forecast check of a running sweep point, as its record keeps it (`forecast_*` columns)."""

    forecast_loss: float     # its best held-out loss, forecast at its planned end
    forecast_margin: float   # the relative margin subtracted (MARGINS)
    forecast_seen: float     # the fraction of its planned steps seen
    forecast_bar: float      # the best held-out loss of its finished siblings
    stop: bool

    def to_dict(self) -> dict[str, float | bool]:
        return asdict(self)


def stop_check(steps, losses, end: float, seen: float, bar: float) -> StopCheck | None:
    """Stop when forecast·(1 − margin) > bar: even the forecast's largest measured error in the run's favour
    leaves it worse than a sibling that has finished. The forecast of the best loss is at most the best seen (a
    curve already past its best, where the fit is poor, keeps what it reached). None when there is no forecast
    or no margin yet."""
    margin = margin_at(seen)
    forecast = own_forecast(steps, losses, end)
    if margin is None or not math.isfinite(forecast):
        return None
    forecast = min(forecast, min(losses))
    return StopCheck(forecast, margin, seen, bar, bool(forecast * (1 - margin) > bar))
