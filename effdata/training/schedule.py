"""How long a run trains, its warm-up, evaluation interval and learning rate: pure functions, no torch.

The cost estimate of a study (`effdata.study.cost`) uses the same `schedule_for` as the run itself,
so what a dry run promises is what a run does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from effdata.spec import RunSpec


def kaplan_lr(n_params: int) -> float:
    """Kaplan et al. (2020) peak LR rule, LR(N) ≈ 0.003239 − 0.0001395·ln N (N non-embedding)."""
    return max(1e-5, 0.003239 - 0.0001395 * math.log(max(n_params, 1)))


def lr_at(step: int, peak: float, warmup_steps: int, total_steps: int, min_ratio: float = 0.1) -> float:
    """LR for the optimizer update at `step` (0-based): linear warm-up over `warmup_steps` updates
    (step 0 gets peak/warmup_steps, step warmup_steps-1 the peak), then cosine from the peak down to
    min_ratio·peak at `total_steps`; min_ratio·peak afterwards. A pure function."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass(frozen=True)
class Schedule:
    total_steps: int
    warmup_steps: int
    eval_interval: int
    peak_lr: float
    tokens_per_step: int

    def lr(self, step: int, min_ratio: float) -> float:
        return lr_at(step, self.peak_lr, self.warmup_steps, self.total_steps, min_ratio)


def schedule_for(spec: RunSpec, n_train_tokens: int, n_params: int) -> Schedule:
    """Expected length, warm-up, evaluation interval and peak LR of a run.

    pretrain: token_budget / tokens per step. scratch and fine-tune: `max_epochs` over the fraction,
    clamped to [min_steps, max_steps] (fine-tunes use the from-scratch hyperparameters). Warm-up is
    `warmup_frac` of the expected steps (capped at `warmup_max`), so short runs finish their warm-up.
    Peak LR: Kaplan's rule by N times `lr_scale`, unless `lr` is given."""
    s = spec.settings
    tps = s.batch_size * spec.shape.n_ctx
    if spec.mode == "pretrain":
        total = max(1, math.ceil(spec.token_budget / tps))
    else:
        total = math.ceil(s.max_epochs * n_train_tokens / tps)
        total = min(s.max_steps, max(s.min_steps, total))
    warmup = max(1, min(s.warmup_max, round(s.warmup_frac * total)))
    interval = max(1, total // s.evals_per_run)
    peak = s.lr if s.lr is not None else kaplan_lr(n_params) * s.lr_scale
    return Schedule(total, warmup, interval, peak, tps)
