"""What the learning-curve laws answer: steps and batch for a target loss at N, and the compute-efficient
frontier (Kaplan et al. 2020, §5-6). Pure arithmetic on the fitted laws; every answer outside the ranges the
laws were fitted on says so.

* Steps: L(N, S) = (N_c/N)^α_N + (S_c/S)^α_S solved for S: S = S_c·(L − (N_c/N)^α_N)^(−1/α_S); none when
  L is at or below the N term (the size cannot reach it however long it trains).
* Batch: with L(N, S_min) and B_crit(L), a batch B takes S = S_min·(1 + B_crit/B) steps and E = E_min·(1 + B/B_crit)
  tokens, E_min = B_crit·S_min (eq. 5.5-5.6); the answer's batch is B_crit, Kaplan's compromise (2× the fewest
  steps, 2× the fewest tokens). With plain S (no noise scale) the steps are at the batch the runs used.
* Frontier: C_min(L) = min over N of 6·N·E_min(N, L), N on a grid a decade around the fitted sizes; the N that
  attains it is N_opt for that compute (Kaplan's N_opt ∝ C^0.73 is this minimum on their laws).
* The same frontier in closed form, for a compute C (`frontier_at_compute`): d/dN of N·S_min(N, L) = 0 puts the
  N term at α_S/(α_N + α_S) of L (Kaplan §6.1), so N_opt ∝ L^(−1/α_N), S_min ∝ L^(−1/α_S), B_crit ∝ L^(−1/α_B)
  and C_min ∝ L^(−p), p = 1/α_N + 1/α_S + 1/α_B: N_opt ∝ C^((1/α_N)/p), Kaplan's α_C^min/α_N (0.68 from his
  rounded exponents; he quotes 0.71, and 0.73 fitted on his runs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from effdata.analysis.dynamics.law import LearningCurveFit
from effdata.analysis.dynamics.noise import NoiseScaleFit

FRONTIER_GRID = 200     # sizes tried per loss, log-spaced over a decade beyond the fitted sizes each way


@dataclass(frozen=True)
class StepsAnswer:
    n: float
    target: float
    steps: float               # optimiser steps at `batch_tokens` (nan: unreachable at this N)
    batch_tokens: float
    tokens: float              # steps × batch
    compute: float             # 6·N·tokens
    s_min: float               # the fewest steps (at an infinite batch; = steps for a plain-S law)
    e_min: float               # the fewest tokens (at a tiny batch; nan for a plain-S law)
    flags: tuple[str, ...]     # extrapolations, and why an answer is missing


def extrapolations(law: LearningCurveFit, n: float, target: float, s: float) -> list[str]:
    flags = []
    if not min(law.sizes) <= n <= max(law.sizes):
        flags.append(f"N outside the fitted {min(law.sizes):.3g}-{max(law.sizes):.3g}")
    if not law.loss_range[0] <= target <= law.loss_range[1]:
        flags.append(f"loss outside the fitted {law.loss_range[0]:.3g}-{law.loss_range[1]:.3g}")
    if np.isfinite(s) and not law.step_range[0] <= s <= law.step_range[1]:
        flags.append(f"{law.steps} outside the fitted {law.step_range[0]:.3g}-{law.step_range[1]:.3g}")
    return flags


def law_steps(law: LearningCurveFit, n, target) -> np.ndarray:
    """S (or S_min) at which L(N, S) reaches `target`; nan where the N term alone is at or above it."""
    rest = np.asarray(target, float) - np.exp(law.log_a - law.alpha_n * np.log(np.asarray(n, float)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rest > 0, np.exp((law.log_b - np.log(rest)) / law.alpha_s), np.nan)


def steps_for(law: LearningCurveFit, noise: NoiseScaleFit | None, n: float, target: float) -> StepsAnswer:
    """Steps, batch, tokens and compute for a run of N to reach `target` (module docstring)."""
    s = float(law_steps(law, n, target))
    flags = extrapolations(law, n, target, s)
    if not np.isfinite(s):
        flags.append(f"unreachable: L(N, ∞) = {math.exp(law.log_a - law.alpha_n * math.log(n)):.3g} ≥ the target")
    if law.steps == "S_min" and noise is not None and noise.fitted:
        b_crit = float(noise.b_crit(target))
        steps, e_min = 2 * s, s * b_crit
        return StepsAnswer(n, target, steps, b_crit, steps * b_crit, 6 * n * steps * b_crit, s, e_min, tuple(flags))
    b = law.batch_tokens
    return StepsAnswer(n, target, s, b, s * b, 6 * n * s * b, s, np.nan, tuple(flags + ["steps at the runs' batch"]))


@dataclass(frozen=True)
class FrontierPoint:
    loss: float
    n_opt: float
    c_min: float               # 6·N_opt·E_min: FLOPs
    flags: tuple[str, ...]


def frontier(law: LearningCurveFit, noise: NoiseScaleFit, losses) -> list[FrontierPoint]:
    """C_min(L) and N_opt(L) for each loss (needs L(N, S_min) and B_crit(L))."""
    if law.steps != "S_min" or not noise.fitted:
        raise ValueError("the frontier needs L(N, S_min) and a fitted B_crit(L)")
    grid = np.geomspace(min(law.sizes) / 10, max(law.sizes) * 10, FRONTIER_GRID)
    points = []
    for loss in losses:
        compute = 6 * grid * law_steps(law, grid, loss) * float(noise.b_crit(loss))
        if not np.isfinite(compute).any():
            continue
        best = int(np.nanargmin(compute))
        flags = extrapolations(law, grid[best], loss, float(law_steps(law, grid[best], loss)))
        if best in (0, len(grid) - 1):
            flags.append("the minimum is at the edge of the sizes tried")
        points.append(FrontierPoint(float(loss), float(grid[best]), float(compute[best]), tuple(flags)))
    return points


def _frontier_laws(law: LearningCurveFit, noise: NoiseScaleFit | None) -> NoiseScaleFit:
    """B_crit(L), or ValueError when the closed-form frontier cannot be drawn from these laws."""
    if law.steps != "S_min" or noise is None or not noise.fitted:
        raise ValueError("the frontier needs L(N, S_min) and a fitted B_crit(L)")
    if not min(law.alpha_n, law.alpha_s, noise.alpha_b) > 0:
        raise ValueError("the frontier needs positive α_N, α_S and α_B")
    return noise


def optimal_at_loss(law: LearningCurveFit, noise: NoiseScaleFit | None, loss: float) -> FrontierPoint:
    """N_opt and C_min for one loss, in closed form (module docstring), flagged like the grid's frontier."""
    noise = _frontier_laws(law, noise)
    share = law.alpha_s / (law.alpha_n + law.alpha_s)      # the N term's share of L at the optimum
    n_opt = math.exp((law.log_a - math.log(share * loss)) / law.alpha_n)
    s_min = float(law_steps(law, n_opt, loss))
    c_min = 6 * n_opt * s_min * float(noise.b_crit(loss))
    return FrontierPoint(float(loss), n_opt, c_min, tuple(extrapolations(law, n_opt, loss, s_min)))


def frontier_exponent(law: LearningCurveFit, noise: NoiseScaleFit | None) -> float:
    """a in N_opt ∝ C^a along the frontier: (1/α_N) / (1/α_N + 1/α_S + 1/α_B)."""
    noise = _frontier_laws(law, noise)
    return (1 / law.alpha_n) / (1 / law.alpha_n + 1 / law.alpha_s + 1 / noise.alpha_b)


def frontier_at_compute(law: LearningCurveFit, noise: NoiseScaleFit | None, compute: float) -> FrontierPoint:
    """The frontier's point whose C_min is `compute`: log C_min is linear in log L (slope −p), so one point fixes L."""
    noise = _frontier_laws(law, noise)
    p = 1 / law.alpha_n + 1 / law.alpha_s + 1 / noise.alpha_b
    at_one = optimal_at_loss(law, noise, 1.0).c_min
    return optimal_at_loss(law, noise, (at_one / compute) ** (1 / p))


def loss_at_compute(law: LearningCurveFit, noise: NoiseScaleFit | None, n: float, compute: float) -> float:
    """The loss a size-N run reaches with `compute` FLOPs spent at C_min (6·N·S_min(N, L)·B_crit(L) = C), under
    the frontier's laws: what another allocation's N is worth on this law. C falls as L rises, so one root."""
    noise = _frontier_laws(law, noise)
    floor = math.exp(law.log_a - law.alpha_n * math.log(n))      # L(N, ∞): the cost runs to infinity there

    def excess(log_gap):   # log C − log compute at L = floor + gap; S_min from the gap itself (no cancellation)
        log_steps = (law.log_b - log_gap) / law.alpha_s
        b_crit = float(noise.b_crit(floor + math.exp(log_gap)))
        return math.log(6 * n) + log_steps + math.log(b_crit) - math.log(compute)
    low, high = math.log(floor) - 60, math.log(floor) + 10
    if excess(low) < 0 or excess(high) > 0:
        return float("nan")
    return floor + math.exp(brentq(excess, low, high, xtol=1e-12))


def example_targets(law: LearningCurveFit) -> list[float]:
    """Losses the report answers for: the lowest the law's runs reached, and the middle of its fitted range."""
    low, high = law.loss_range
    return [low, (low + high) / 2]


def answer_all(law: LearningCurveFit, noise: NoiseScaleFit | None) -> tuple[list[StepsAnswer], list[FrontierPoint]]:
    """Steps for each fitted N at each example target; the frontier over the fitted losses where it can be drawn."""
    answers = [steps_for(law, noise, n, t) for t in example_targets(law) for n in law.sizes]
    can_frontier = law.steps == "S_min" and noise is not None and noise.fitted
    losses = np.linspace(law.loss_range[0], law.loss_range[1], 4)
    return answers, frontier(law, noise, losses) if can_frontier else []


def laws_from_fits(fits: dict) -> tuple[LearningCurveFit, NoiseScaleFit | None]:
    """The law the answers use (L(N, S_min) where fitted, else L(N, S)) and B_crit(L), from fits.json's
    `dynamics` block; ValueError naming what is missing."""
    block = fits.get("dynamics")
    if not block:
        raise ValueError("this fits.json has no `dynamics` block (its table had no learning curves: curves.csv)")
    entry = block.get("law_s_min") if (block.get("law_s_min") or {}).get("fitted") else block.get("law")
    if not entry or not entry.get("fitted"):
        raise ValueError(f"no fitted learning-curve law in this fits.json ({(entry or {}).get('reason', 'none')})")
    law = LearningCurveFit(True, steps=entry["steps"], alpha_n=entry["alpha_n"], alpha_s=entry["alpha_s"],
                           log_a=math.log(entry["A"]), log_b=math.log(entry["B"]), n_c=entry["n_c"], s_c=entry["s_c"],
                           sizes=entry["sizes"], step_range=tuple(entry["step_range"]),
                           loss_range=tuple(entry["loss_range"]), batch_tokens=entry["batch_tokens"] or float("nan"))
    critical = block.get("critical_batch") or {}
    noise = (NoiseScaleFit(True, b_star=critical["b_star_tokens"], alpha_b=critical["alpha_b"])
             if critical.get("fitted") else None)
    return law, noise
