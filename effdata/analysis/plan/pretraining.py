"""The pretraining a transfer law describes, and whether a plan's pretraining is that one.

A transfer law D_T = k·D_F^α·N^β is fitted on fine-tunes of checkpoints pretrained on some number of tokens per
size, and its D_T is that pretraining's: on effdata's CPU ladder text+code's β at one pretraining token count runs
from 0.01 at 1.6 M tokens to 0.53 at 15 M and 0.59 at 30 M (docs/findings.md), and v4's law is for 30 tokens per
parameter. fits.json
records each pretraining name's budget (`budget.studies`, the row "this table": effdata.analysis.budget); the
planner reads it here, names it beside the law, and marks a prediction whose pretraining differs from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from effdata.analysis.budget.budget import SAME_BUDGET_RATIO
from effdata.fmt import compact


@dataclass(frozen=True)
class PretrainingBudget:
    """How one pretraining name's checkpoints were budgeted across N (fits.json `budget`)."""

    kind: str                        # "per parameter", "fixed", "varied" or "unknown"
    label: str                       # "30 tokens/parameter", "fixed 15 M tokens (2283–30 tokens/parameter)"
    p_min: float | None = None       # tokens per parameter, over the sizes
    p_max: float | None = None
    tokens_min: float | None = None
    tokens_max: float | None = None

    def tokens_at(self, n_params: float) -> float | None:
        """The tokens this budget gives a model of N parameters (geometric middle of its range), or None where
        the budget is not one rule (varied across N, or unknown)."""
        if self.kind == "per parameter" and self.p_min and self.p_max:
            return math.sqrt(self.p_min * self.p_max) * n_params
        if self.kind == "fixed" and self.tokens_min and self.tokens_max:
            return math.sqrt(self.tokens_min * self.tokens_max)
        return None


def read_budgets(fits: dict) -> dict[str, PretrainingBudget]:
    """{pretraining name: its budget} of the table the fits were fitted on; {} where fits.json has none (the
    papers' laws, a fits.json written before budgets were recorded)."""
    studies = (fits.get("budget") or {}).get("studies") or []
    own = next((s for s in studies if s.get("role") == "this table"), None)
    found = {}
    for name, entry in ((own or {}).get("budgets") or {}).items():
        found[str(name)] = PretrainingBudget(**{key: entry.get(key) for key in
                                                ("kind", "label", "p_min", "p_max", "tokens_min", "tokens_max")})
    return found


def requested_tokens(n_params, tokens: float | None, tokens_per_param: float | None):
    """The pretraining tokens a plan gives a model of N parameters, N a number or an array (--pretrain-tokens,
    else R·N), or None where the plan gives neither."""
    if tokens:
        return float(tokens)
    if tokens_per_param:
        return float(tokens_per_param) * n_params
    return None


def pretraining_mismatch(name: str, budget: PretrainingBudget | None, n_params: float, asked: float | None) -> str:
    """'' where the plan gives no pretraining tokens or gives the law's (within SAME_BUDGET_RATIO, the ratio below
    which the analysis counts two budgets as one), else what differs: the law's D_T is not this pretraining's."""
    if asked is None:
        return ""
    law_tokens = budget.tokens_at(n_params) if budget is not None else None
    if law_tokens is None:
        why = "not recorded" if budget is None or budget.kind == "unknown" else f"not one rule ({budget.label})"
        return f"pretraining {compact(asked)} tokens; the '{name}' transfer law's pretraining budget is {why}"
    if max(asked, law_tokens) <= SAME_BUDGET_RATIO * min(asked, law_tokens):
        return ""
    return (f"pretraining {compact(asked)} tokens, not the '{name}' transfer law's {compact(law_tokens)} at this N "
            f"({budget.label})")
