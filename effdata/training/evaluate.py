"""Held-out loss of a model: mean next-token cross-entropy over fixed leading windows of a split.

The transformer body, then the chunked forward-only unembedding + cross-entropy of the training step
(`step.linear_cross_entropy_sum`): the (tokens × vocabulary) logits are never held at once.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from effdata.training.device import exact_fp32
from effdata.training.rundata import RunFailed
from effdata.training.step import ce_chunk_rows, linear_cross_entropy_sum


@torch.inference_mode()
@exact_fp32()
def evaluate(model: torch.nn.Module, tokens: np.ndarray, n_ctx: int, max_tokens: int,
             batch_size: int, dev: torch.device, body_dtype: torch.dtype | None = None,
             head_dtype: torch.dtype | None = None) -> float:
    """Mean next-token loss (nats/token) over the leading `max_tokens` tokens in non-overlapping
    n_ctx windows, eval mode, TF32 off on CUDA. `body_dtype`: autocast the transformer body to it (None = fp32);
    `head_dtype`: the unembedding matmul's dtype (None = fp32); logsumexp and sums are fp32 or wider.
    Attention runs as SDPA whatever training uses: forward only, it was 3-7 % faster than matmul
    attention at n25k-n500k in bf16 (training avoids SDPA in bf16 on CPU for its slow backward)."""
    n = min(len(tokens), max_tokens)
    k = (n - 1) // n_ctx
    if k < 1:
        raise RunFailed(f"evaluation needs at least n_ctx+1 = {n_ctx + 1} tokens, has {n}")
    was_training, attention = model.training, model.config._attn_implementation
    model.eval()
    model.config._attn_implementation = "sdpa"
    try:
        total = _summed_loss(model, tokens, n_ctx, k, batch_size, dev, body_dtype, head_dtype)
    finally:
        model.train(was_training)
        model.config._attn_implementation = attention
    return float(total) / (k * n_ctx)


def _summed_loss(model, tokens, n_ctx: int, k: int, batch_size: int, dev: torch.device,
                 body_dtype: torch.dtype | None, head_dtype: torch.dtype | None) -> torch.Tensor:
    """Summed next-token loss of the first k windows, `batch_size` windows at a time."""
    W = model.lm_head.weight
    chunk = ce_chunk_rows(W.shape[0], dev)
    total = torch.zeros((), dtype=torch.float64, device=dev)
    ar = np.arange(n_ctx + 1)
    with _eager():
        for b in range(0, k, batch_size):
            starts = np.arange(b, min(k, b + batch_size)) * n_ctx
            w = torch.from_numpy(np.asarray(tokens[starts[:, None] + ar]).astype(np.int64)).to(dev)
            with torch.autocast(dev.type, dtype=body_dtype or torch.float32, enabled=body_dtype is not None):
                h = model.transformer(input_ids=w[:, :-1]).last_hidden_state
            total += linear_cross_entropy_sum(h.float().reshape(-1, h.size(-1)), W, w[:, 1:].reshape(-1), chunk,
                                              head_dtype)
    return total


def _eager():
    """Evaluation runs eagerly even where training compiled parts of the model in place: eval mode,
    inference mode and another batch would each be a recompile (seconds) for a few forward passes."""
    set_stance = getattr(torch.compiler, "set_stance", None)
    return set_stance("force_eager") if set_stance is not None else contextlib.nullcontext()
