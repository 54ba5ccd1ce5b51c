"""A run's learning curve as the record keeps it: one point per evaluation (no torch).

`record.json`'s `metrics.curve` is a list of these; `study/store.py` writes them to `curves.csv` (one row per
evaluation) and `effdata.analysis.dynamics` reads that table. The keys are the curve table's columns.
"""
from __future__ import annotations

import math
from typing import Any

CURVE_KEYS = ("step", "tokens", "lr", "train_loss", "valid_loss")


def _finite(x: float | None) -> float | None:
    """A loss as JSON holds it: rounded like `evals`, None where there is none (step 0 has no training
    loss; a run trained to its budget is evaluated held-out only at its ends)."""
    return round(float(x), 6) if x is not None and math.isfinite(x) else None


def curve_point(step: int, tokens: int, lr: float, train_loss: float | None, valid_loss: float | None,
                **extra: float | None) -> dict[str, Any]:
    """One evaluation's point: the step, tokens trained on so far, the LR of the last step, the mean training
    loss since the previous evaluation, the held-out loss (`extra`: measurements an option adds, e.g. the
    gradient noise scale)."""
    point = {"step": int(step), "tokens": int(tokens), "lr": float(lr), "train_loss": _finite(train_loss),
             "valid_loss": _finite(valid_loss)}
    # Significant digits, not decimals: |G|² of a small model can be 1e-6.
    point.update({k: float(f"{v:.9g}") if v is not None and math.isfinite(v) else None for k, v in extra.items()})
    return point
