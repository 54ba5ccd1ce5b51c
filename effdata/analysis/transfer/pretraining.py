"""The pretraining runs as an input: how much each model was pretrained, and how well.

A fine-tuned model's D_T depends on how well it was pretrained, and in a grid with one token budget
for every size the bigger models are the less pretrained ones (docs/METHOD.md §1: beta came out negative,
-0.22, with 7 tokens per parameter at the largest size and 157 at the smallest). So the report shows,
per pretraining run: tokens seen, tokens per parameter, its loss on its own held-out distribution and
the target (Python) loss it starts fine-tuning from, and says in words whether bigger models were
better pretrained.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from effdata.fmt import compact, sig

# Hoffmann et al. 2022 (Chinchilla): about 20 tokens per parameter is compute-optimal; a model that saw
# far fewer stopped well above the loss its size can reach.
COMPUTE_OPTIMAL_TOKENS_PER_PARAM = 20.0
COLUMNS = ["pretrain", "size", "n_params", "tokens_seen", "tokens_per_param", "own_loss", "target_loss", "flops"]


@dataclass
class PretrainingSummary:
    """One row per pretraining run (seeds averaged) and a reading per pretraining name."""

    table: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COLUMNS))
    readings: dict[str, str] = field(default_factory=dict)


def summarize_pretraining(pretraining: pd.DataFrame) -> PretrainingSummary:
    """The pretraining rows of a results table (ResultsTable.pretraining) as PretrainingSummary."""
    if pretraining.empty or "n_params" not in pretraining:
        return PretrainingSummary()
    rows = pretraining.copy()
    for column in ("tokens_seen", "tokens_per_param", "pretrain_valid_loss", "loss", "flops"):
        rows[column] = pd.to_numeric(rows[column], errors="coerce") if column in rows else np.nan
    computed = rows["tokens_seen"] / rows["n_params"]
    rows["tokens_per_param"] = rows["tokens_per_param"].fillna(computed)
    rows = rows.rename(columns={"pretrain_valid_loss": "own_loss", "loss": "target_loss"})
    if "size" not in rows:
        rows["size"] = None
    if "shape" not in rows:
        rows["shape"] = ""
    table = (rows.groupby(["pretrain", "n_params", "shape"], as_index=False)   # shapes at one N stay apart
             .agg(size=("size", "first"), tokens_seen=("tokens_seen", "mean"),
                  tokens_per_param=("tokens_per_param", "mean"), own_loss=("own_loss", "mean"),
                  target_loss=("target_loss", "mean"), flops=("flops", "mean"))[COLUMNS])
    readings = {name: _reading(group.sort_values("n_params")) for name, group in table.groupby("pretrain")}
    return PretrainingSummary(table=table, readings=readings)


def _reading(runs: pd.DataFrame) -> str:
    """Whether bigger models were better pretrained (own held-out loss falling with N), in one paragraph."""
    if len(runs) < 2:
        return "one pretraining size: nothing to compare across N."
    parts = []
    own = runs["own_loss"].to_numpy(float)
    n_values = runs["n_params"].to_numpy(float)
    if np.isfinite(own).all():
        falls = int(np.sum(np.diff(own) < 0))
        steps = len(own) - 1
        rises = [f"{compact(n_values[i])} → {compact(n_values[i + 1])}" for i in range(steps) if own[i + 1] >= own[i]]
        verdict = ("bigger models were better pretrained on their own distribution" if falls == steps else
                   f"not at every step: it does not fall from N = {', '.join(rises)}")
        parts.append(f"own held-out loss falls with N at {falls} of {steps} steps ({sig(own[0])} at "
                     f"N = {compact(n_values[0])}, {sig(own[-1])} at N = {compact(n_values[-1])}): {verdict}")
    else:
        parts.append("no own held-out loss (`pretrain_valid_loss`): whether bigger models were better "
                     "pretrained cannot be judged")
    per_param = runs["tokens_per_param"].to_numpy(float)
    if np.isfinite(per_param).all():
        starved = n_values[per_param < COMPUTE_OPTIMAL_TOKENS_PER_PARAM]
        parts.append(f"tokens per parameter {sig(per_param[0])} at the smallest N, {sig(per_param[-1])} at the "
                     "largest" + (f"; below the compute-optimal ~{COMPUTE_OPTIMAL_TOKENS_PER_PARAM:.0f} "
                                  f"(Hoffmann et al. 2022) from N = {compact(starved.min())}, so those models "
                                  "stopped well above their own loss floor" if len(starved) else ""))
    target = runs["target_loss"].to_numpy(float)
    if np.isfinite(target).all():
        parts.append(f"fine-tuning starts from a target loss of {sig(target[0])} (smallest N) to "
                     f"{sig(target[-1])} (largest)")
    return "; ".join(parts) + "."
