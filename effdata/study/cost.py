"""What a study's runs will cost, before they run: tokens, FLOPs and expected GPU time per run. No torch.

Upper bounds: every run is assumed to train its whole schedule (early stopping usually ends sooner; a
length search is counted as trying every length up to its cap).
Fractions given in characters use the target's measured characters per token. Training FLOPs per token
are `ModelShape.flops_per_token` (6N plus the unembedding and attention); an evaluation costs a third
of that per token (forward only).
"""
from __future__ import annotations

from dataclasses import dataclass

from effdata.spec import StudyRun
from effdata.training.schedule import Schedule, schedule_for


@dataclass(frozen=True)
class GpuRate:
    """Sustained model FLOP/s of one GPU that an expected GPU time assumes."""

    name: str
    train: float          # a bf16 training step
    evaluate: float       # an fp32 evaluation (TF32 off: docs/notes/issue-16.md)


# NVIDIA's dense peaks for an A100 (SXM): 312 TFLOP/s bf16, 19.5 TFLOP/s fp32 without TF32. Assumed, not
# measured (no GPU here): 30% of the bf16 peak in training (nanoGPT-style GPT-2 small runs report 30-50%
# MFU with compile; our small widths do worse) and 60% of the fp32 peak in evaluation. Measure yours with
# `python -m effdata.bench --device cuda --sizes g5m,g85m` and read the dry run's hours accordingly.
A100 = GpuRate("A100", train=0.30 * 312e12, evaluate=0.60 * 19.5e12)


@dataclass(frozen=True)
class CostModel:
    chars_per_token: float            # of the target's train split
    vocab_size: int                   # of the study's tokenizer (the unembedding's FLOPs)

    def schedule(self, run: StudyRun) -> Schedule:
        """The run's schedule, from the same `schedule_for` the run itself uses."""
        spec = run.spec
        data_tokens = spec.data_tokens or int((spec.data_chars or 0) / self.chars_per_token)
        return schedule_for(spec, data_tokens, spec.shape.n_params)

    def tokens(self, run: StudyRun) -> int:
        """Tokens the run trains on at most, its mid-run checkpoints' branches (and a length search's) included."""
        schedule = self.schedule(run)
        return (schedule.total_steps + schedule.branch_steps + schedule.length_steps) * schedule.tokens_per_step

    def flops(self, run: StudyRun) -> float:
        """Training FLOPs at most, 6·N·tokens (the paper's convention; what the longest-first order sorts by)."""
        return 6.0 * run.spec.shape.n_params * self.tokens(run)

    def train_flops(self, run: StudyRun) -> float:
        """Training FLOPs at most, the unembedding and attention included."""
        return run.spec.shape.flops_per_token(self.vocab_size)[0] * self.tokens(run)

    def eval_tokens(self, run: StudyRun) -> int:
        """Tokens the run evaluates at most: every evaluation, the test loss, and a pretraining run's
        loss on its own distribution; each mid-run checkpoint is evaluated as a run's end is."""
        schedule, s = self.schedule(run), run.spec.settings
        total, every = schedule.total_steps, schedule.eval_interval
        evaluations = 1 + total // every + (1 if total % every else 0)  # step 0, every `every`, the last
        extra = s.eval_tokens if run.mode == "pretrain" else 0
        ends = (1 + len(schedule.branches)) * (s.test_tokens + extra)
        return (evaluations + len(schedule.branches) + len(schedule.lengths)) * s.eval_tokens + ends

    def eval_flops(self, run: StudyRun) -> float:
        return run.spec.shape.flops_per_token(self.vocab_size)[0] / 3 * self.eval_tokens(run)

    def gpu_seconds(self, run: StudyRun, gpu: GpuRate = A100) -> float:
        """Expected seconds of one GPU for the run at most (its whole schedule) at `gpu`'s assumed rates."""
        return self.train_flops(run) / gpu.train + self.eval_flops(run) / gpu.evaluate
