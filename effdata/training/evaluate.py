"""Held-out loss of a model: mean next-token cross-entropy over fixed leading windows of a split."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from effdata.training.device import exact_fp32
from effdata.training.rundata import RunFailed


@torch.inference_mode()
@exact_fp32()
def evaluate(model: torch.nn.Module, tokens: np.ndarray, n_ctx: int, max_tokens: int,
             batch_size: int, dev: torch.device) -> float:
    """Mean next-token loss (nats/token) over the leading `max_tokens` tokens in non-overlapping
    n_ctx windows, fp32 (TF32 off on CUDA), eval mode."""
    n = min(len(tokens), max_tokens)
    k = (n - 1) // n_ctx
    if k < 1:
        raise RunFailed(f"evaluation needs at least n_ctx+1 = {n_ctx + 1} tokens, has {n}")
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=dev)
    ar = np.arange(n_ctx + 1)
    for b in range(0, k, batch_size):
        starts = np.arange(b, min(k, b + batch_size)) * n_ctx
        w = torch.from_numpy(np.asarray(tokens[starts[:, None] + ar]).astype(np.int64)).to(dev)
        logits = model(input_ids=w[:, :-1]).logits.float()
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), w[:, 1:].reshape(-1), reduction="sum").double()
    model.train(was_training)
    return float(total) / (k * n_ctx)
