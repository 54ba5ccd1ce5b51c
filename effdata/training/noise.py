"""The gradient noise scale B_simple = tr(Σ)/|G|², measured at an evaluation (McCandlish et al. 2018).

Appendix A's unbiased estimator from gradients at two batch sizes: for a gradient estimate G_B over B
examples, E|G_B|² = |G|² + tr(Σ)/B, so with B_small < B_big

    |G|²  ≈ (B_big·|G_big|² − B_small·|G_small|²) / (B_big − B_small)
    tr(Σ) ≈ (|G_small|² − |G_big|²) / (1/B_small − 1/B_big)

Here B_small is a micro-batch (the step's batch split into MICRO parts) and G_big their mean, which is the
whole batch's gradient. Both estimates are averaged over `batches` batches before the ratio is taken (the
paper's advice: a ratio of noisy estimates is biased, their averages much less), and B_simple is in
sequences. The batches are those of the steps about to be trained (a pure function of the step, so reading
them changes nothing) and the gradients go through `torch.autograd.grad`, never into `.grad` or the
optimiser: a run with the measurement has the numbers of one without (tests/test_noise.py).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

MICRO = 4   # micro-batches per batch: B_small = batch/4. More parts lower the estimator's variance and cost more
            # small backward passes; 4 keeps the cost at about one step's forward and backward per batch measured


@dataclass(frozen=True)
class NoiseScale:
    b_simple: float        # tr(Σ)/|G|² in sequences (inf or negative when |G|² is estimated ≤ 0: noise-dominated)
    trace: float           # tr(Σ) per sequence
    grad_sq: float         # |G|²
    seconds: float

    def as_point(self) -> dict[str, float]:
        """What a curve point keeps (training.curve.curve_point's extra keys)."""
        return {"b_simple": self.b_simple, "noise_trace": self.trace, "grad_sq": self.grad_sq,
                "noise_s": self.seconds}


def estimate(small_sq: float, big_sq: float, b_small: float, b_big: float) -> tuple[float, float]:
    """(tr(Σ), |G|²) from mean squared gradient norms at two batch sizes (appendix A)."""
    grad_sq = (b_big * big_sq - b_small * small_sq) / (b_big - b_small)
    trace = (small_sq - big_sq) / (1 / b_small - 1 / b_big)
    return trace, grad_sq


def _sq_norm(grads) -> float:
    return float(sum(g.detach().float().pow(2).sum() for g in grads if g is not None))


def measure(loss_fn: Callable[[torch.Tensor], torch.Tensor], params: list[torch.Tensor], windows: list[torch.Tensor],
            dev: torch.device) -> NoiseScale:
    """B_simple from the batches `windows` (each (batch, n_ctx+1)), split into MICRO micro-batches each."""
    t = time.perf_counter()
    small_sq = big_sq = 0.0
    b_big = windows[0].shape[0]
    parts = min(MICRO, b_big)
    if parts < 2:
        raise ValueError("the noise scale needs a batch of at least 2 sequences")
    b_small = b_big // parts
    for batch in windows:
        micro = batch[: parts * b_small].to(dev).split(b_small)
        grads = [torch.autograd.grad(loss_fn(m), params, allow_unused=True) for m in micro]
        small_sq += sum(_sq_norm(g) for g in grads) / parts
        big_sq += _sq_norm([sum(gs) / parts if gs[0] is not None else None for gs in zip(*grads)])
    trace, grad_sq = estimate(small_sq / len(windows), big_sq / len(windows), b_small, parts * b_small)
    b_simple = trace / grad_sq if grad_sq > 0 else float("inf")
    return NoiseScale(b_simple, trace, grad_sq, time.perf_counter() - t)
