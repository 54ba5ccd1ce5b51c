"""What a study's runs will cost, before they run: tokens and training FLOPs per run. No torch.

Upper bounds: every run is assumed to train its whole schedule (early stopping usually ends sooner).
Fractions given in characters use the target's measured characters per token.
"""
from __future__ import annotations

from dataclasses import dataclass

from effdata.spec import StudyRun
from effdata.training.schedule import schedule_for


@dataclass(frozen=True)
class CostModel:
    chars_per_token: float            # of the target's train split

    def tokens(self, run: StudyRun) -> int:
        """Tokens the run processes at most."""
        spec = run.spec
        data_tokens = spec.data_tokens or int((spec.data_chars or 0) / self.chars_per_token)
        schedule = schedule_for(spec, data_tokens, spec.shape.n_params)
        return schedule.total_steps * schedule.tokens_per_step

    def flops(self, run: StudyRun) -> float:
        """Training FLOPs at most, 6·N·tokens (what the longest-first order sorts by)."""
        return 6.0 * run.spec.shape.n_params * self.tokens(run)
