"""How long a run trains, its warm-up, evaluation interval and learning rate: pure functions, no torch.

The cost estimate of a study (`effdata.study.cost`) uses the same `schedule_for` as the run itself,
so what a dry run promises is what a run does.

Two learning-rate schedules (`TrainSettings.schedule`, docs/METHOD.md §5b):

* `cosine` (the default): linear warm-up, then cosine from the peak to `min_lr_ratio`·peak at the last
  expected step (`lr_at`).
* `wsd` (warm-up, stable, decay): linear warm-up, the peak held, then a linear decay to
  `min_lr_ratio`·peak over the last `decay_frac` of the run's steps (`wsd_lr_at`). Until its decay
  begins a run's learning rate does not depend on its length, so a pretraining run can branch off
  a copy at the decay start of a shorter run, decay the copy, and hold exactly the model that shorter
  run would have ended with (`Branch`). Its warm-up is therefore set by its shortest branch, not by
  its own length, so that the branch and the shorter run share it.

The same branches find a from-scratch run's or a fine-tune's best length (`TrainSettings.length_search =
"branches"`, docs/METHOD.md §5e): the trunk runs to the cap (`max_steps`) under wsd, and `Schedule.lengths`
are the shorter runs it tries on the way, min_steps·branch_ratio^k steps, each the run of that length.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from effdata.spec import RunSpec, SpecError, TrainSettings


def kaplan_lr(n_params: int) -> float:
    """Kaplan et al. (2020) peak LR rule, LR(N) ≈ 0.003239 − 0.0001395·ln N (N non-embedding)."""
    return max(1e-5, 0.003239 - 0.0001395 * math.log(max(n_params, 1)))


@dataclass(frozen=True)
class TunedLrRule:
    """The learning-rate sweep's rule (analysis/lr, docs/METHOD.md §5c): log2 lr_scale = intercept +
    per_decade·log10 D, D the run's training data in characters, held within the swept range
    [low_chars, high_chars] (the sweep says nothing outside it)."""
    intercept: float
    per_decade: float
    low_chars: float
    high_chars: float
    chars_per_token: float   # for runs sized in tokens: the Python split's ratio (1e5 chars = 33,522 tokens)


# analysis/lr/sweep.json's chosen rule (leave-one-out RMS 0.56 in log2; tests/test_schedule.py checks the
# two agree). D and run length move together in that sweep (the 1e6-character runs hit the 1,000-step cap),
# so above 1e6 characters, where only the number of epochs grows, the factor is held at its 1e6 value.
TUNED_LR = TunedLrRule(intercept=-5.219, per_decade=1.103, low_chars=1e5, high_chars=1e6, chars_per_token=2.983)


def tuned_lr_factor(data_chars: float, rule: TunedLrRule = TUNED_LR) -> float:
    """The factor on Kaplan's LR(N) the sweep found best for a run on `data_chars` characters."""
    d = min(rule.high_chars, max(rule.low_chars, data_chars))
    return 2.0 ** (rule.intercept + rule.per_decade * math.log10(d))


def peak_lr(spec: RunSpec, n_train_tokens: int, n_params: int) -> float:
    """`lr` if given; else Kaplan's LR(N) × `lr_scale`, and under `lr_rule = "tuned"` × the sweep's factor
    for the run's data. Pretraining takes the factor at the top of the range whatever its budget: its data is
    never repeated and its runs are long, and one value for every budget keeps a mid-run checkpoint's branch
    the run of that length (`Branch`)."""
    s = spec.settings
    if s.lr is not None:
        return s.lr
    peak = kaplan_lr(n_params) * s.lr_scale
    if s.lr_rule == "tuned":
        if spec.mode == "pretrain":
            chars = TUNED_LR.high_chars
        else:
            chars = spec.data_chars or n_train_tokens * TUNED_LR.chars_per_token
        peak *= tuned_lr_factor(chars)
    return peak


def lr_at(step: int, peak: float, warmup_steps: int, total_steps: int, min_ratio: float = 0.1) -> float:
    """LR for the optimizer update at `step` (0-based): linear warm-up over `warmup_steps` updates
    (step 0 gets peak/warmup_steps, step warmup_steps-1 the peak), then cosine from the peak down to
    min_ratio·peak at `total_steps`; min_ratio·peak afterwards. A pure function."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def decay_start(warmup_steps: int, total_steps: int, decay_steps: int) -> int:
    """The first update of a wsd run's decay: `decay_steps` before its end, never inside the warm-up."""
    return max(warmup_steps, total_steps - decay_steps)


def wsd_lr_at(step: int, peak: float, warmup_steps: int, total_steps: int, decay_steps: int,
              min_ratio: float = 0.1) -> float:
    """LR for the update at `step` (0-based) under warm-up, stable, decay: the warm-up of `lr_at`, then
    the peak, then a linear decay from `decay_start` that gives the last update (total_steps - 1)
    min_ratio·peak; min_ratio·peak afterwards. A pure function."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    start = decay_start(warmup_steps, total_steps, decay_steps)
    if step < start:
        return peak
    progress = min(1.0, (step - start + 1) / max(1, total_steps - start))
    return peak * (1 - (1 - min_ratio) * progress)


@dataclass(frozen=True)
class Branch:
    """A mid-run checkpoint of a wsd pretraining run: the run of `total_steps` it stands for. The trunk
    leaves a copy at that run's decay start; the copy decays to `total_steps` and is saved."""

    tokens_per_param: float | None     # the c of checkpoint_tokens_per_param (None: a length search's branch)
    total_steps: int                   # ceil(round(c·N) / tokens per step): a run with that token budget
    decay_steps: int


@dataclass(frozen=True)
class Schedule:
    total_steps: int
    warmup_steps: int
    eval_interval: int
    peak_lr: float
    tokens_per_step: int
    kind: str = "cosine"               # TrainSettings.schedule
    decay_steps: int = 0               # wsd: the final decay's updates
    branches: tuple[Branch, ...] = ()  # wsd pretraining: the mid-run checkpoints, shortest first
    lengths: tuple[Branch, ...] = ()   # length_search = "branches": the shorter runs tried, shortest first
    limit: str = "epoch_budget"        # what sets total_steps: token_budget, epoch_budget, step_floor, step_cap

    def lr(self, step: int, min_ratio: float) -> float:
        if self.kind == "wsd":
            return wsd_lr_at(step, self.peak_lr, self.warmup_steps, self.total_steps, self.decay_steps, min_ratio)
        return lr_at(step, self.peak_lr, self.warmup_steps, self.total_steps, min_ratio)

    @property
    def decay_start(self) -> int:
        """wsd: the first update whose LR is below the peak (after the warm-up)."""
        return decay_start(self.warmup_steps, self.total_steps, self.decay_steps)

    def of_branch(self, branch: Branch) -> "Schedule":
        """The schedule of the shorter run `branch` stands for: the same warm-up and peak, its own length
        and decay. Its LR equals this run's at every step before its decay start (`branch_start`)."""
        return dataclasses.replace(self, total_steps=branch.total_steps, decay_steps=branch.decay_steps, branches=(),
                                   lengths=())

    def branch_start(self, branch: Branch) -> int:
        """The trunk step at which `branch` leaves it: the shorter run's decay start."""
        return self.of_branch(branch).decay_start

    @property
    def branch_steps(self) -> int:
        """Updates the branches add to the run (each decays from its start to its end)."""
        return sum(b.total_steps - self.branch_start(b) for b in self.branches)

    @property
    def length_steps(self) -> int:
        """Updates a length search's branches add when it tries every length (its most; it stops sooner)."""
        return sum(b.total_steps - self.branch_start(b) for b in self.lengths)


def _decay_steps(s: TrainSettings, total: int) -> int:
    return max(1, round(s.decay_frac * total))


def _warmup_steps(s: TrainSettings, horizon: int) -> int:
    return max(1, min(s.warmup_max, round(s.warmup_frac * horizon)))


def _branches(spec: RunSpec, total: int, tps: int, n_params: int) -> tuple[Branch, ...]:
    """The mid-run checkpoints as branches; SpecError for one that is not shorter than the run in steps."""
    out = []
    for c in spec.checkpoint_tokens_per_param:
        steps = max(1, math.ceil(round(c * n_params) / tps))
        if steps >= total:
            raise SpecError(f"checkpoint_tokens_per_param {c:g} at {spec.size} is {steps} steps of "
                            f"{tps:,} tokens, not fewer than the run's {total}: the run's own checkpoint is that model")
        out.append(Branch(c, steps, _decay_steps(spec.settings, steps)))
    return tuple(out)


def _search_lengths(s: TrainSettings, total: int) -> tuple[Branch, ...]:
    """The runs a length search tries before the trunk's own end: min_steps·branch_ratio^k steps (rounded,
    each longer than the last), shorter than `total`. Geometric, so that the search's cost is a fixed
    multiple of the length it finds whatever that length is (docs/METHOD.md §5e)."""
    out: list[Branch] = []
    length = float(s.min_steps)
    while round(length) < total:
        steps = round(length)
        if not out or steps > out[-1].total_steps:
            out.append(Branch(None, steps, _decay_steps(s, steps)))
        length *= s.branch_ratio
    return tuple(out)


def _length(spec: RunSpec, n_train_tokens: int, tps: int) -> tuple[int, str]:
    """The run's steps and what sets them (`Schedule.limit`)."""
    s = spec.settings
    if spec.mode == "pretrain":
        return max(1, math.ceil(spec.token_budget / tps)), "token_budget"
    if s.length_search == "branches":
        return s.max_steps, "step_cap"
    epochs = math.ceil(s.max_epochs * n_train_tokens / tps)
    if epochs > s.max_steps:
        return s.max_steps, "step_cap"
    if epochs < s.min_steps:
        return s.min_steps, "step_floor"
    return epochs, "epoch_budget"


def schedule_for(spec: RunSpec, n_train_tokens: int, n_params: int) -> Schedule:
    """Expected length, warm-up, evaluation interval, peak LR and (wsd) decay and branches of a run.

    pretrain: token_budget / tokens per step. scratch and fine-tune: `max_epochs` over the fraction,
    clamped to [min_steps, max_steps] (fine-tunes use the from-scratch hyperparameters); under
    `length_search = "branches"`, max_steps with the shorter `lengths` tried on the way, and evaluated only
    at their ends and its own (the interval is the whole run). Warm-up is `warmup_frac` of the expected
    steps (capped at `warmup_max`), so short runs finish their warm-up; under wsd with branches, of the
    shortest branch's steps. Peak LR: `peak_lr`."""
    s = spec.settings
    tps = s.batch_size * spec.shape.n_ctx
    total, limit = _length(spec, n_train_tokens, tps)
    branches = _branches(spec, total, tps, n_params) if s.schedule == "wsd" else ()
    search = spec.mode != "pretrain" and s.length_search == "branches"
    lengths = _search_lengths(s, total) if search else ()
    warmup = _warmup_steps(s, min([b.total_steps for b in branches + lengths], default=total))
    interval = total if search else max(1, total // s.evals_per_run)
    peak = peak_lr(spec, n_train_tokens, n_params)
    decay = _decay_steps(s, total) if s.schedule == "wsd" else 0
    return Schedule(total, warmup, interval, peak, tps, s.schedule, decay, branches, lengths, limit)
