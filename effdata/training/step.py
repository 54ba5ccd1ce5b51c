"""One training step: the fused unembedding + cross-entropy, AdamW, precision and torch.compile.

`Stepper` is the step `train_run` takes and `effdata.training.bench` measures: the transformer body
(under bf16 autocast when the precision plan says so, torch.compile'd when `should_compile` says so),
then the fused chunked unembedding + cross-entropy, backward, gradient clipping and a fused AdamW step.

Optimiser: AdamW, betas (0.9, 0.95), eps 1e-8, weight decay on matrices only (every parameter with
2+ dims: the linear weights and the token/position embeddings; never biases or layer norms), gradient
clipping at norm 1.0; fused AdamW where PyTorch has it.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F

from effdata.spec import TrainSettings
from effdata.training.steptimes import StepTimes, compile_pays


def make_optimizer(model: torch.nn.Module, settings: TrainSettings, lr: float, dev: torch.device) -> torch.optim.AdamW:
    """AdamW, weight decay on parameters with 2+ dims only; fused where supported."""
    params = list({id(p): p for p in model.parameters() if p.requires_grad}.values())
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    kw = dict(lr=lr, betas=(settings.beta1, settings.beta2), eps=1e-8)
    try:
        return torch.optim.AdamW(groups, fused=True, **kw)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, foreach=True, **kw)


class LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of (h @ W.T) against y, fused and chunked over rows.

    The unembedding and softmax dominate a small model's step (vocab × d_model ≫ d_model²). Computing
    logits, loss and both gradients a cache-sized chunk at a time never writes the (tokens × vocab)
    logits to memory, nor the zero-filled gradient the unfused backward allocates: ~3× faster on CPU
    at the smallest sizes, identical to F.cross_entropy in fp32 up to float rounding (tested). The
    gradients are computed in forward and scaled by grad_output in backward. `low` = bf16 matmuls.
    """

    @staticmethod
    def forward(ctx, h, W, y, chunk: int, low: torch.dtype | None):
        M = h.shape[0]
        gh = torch.empty_like(h)
        gW = torch.zeros_like(W)
        Wm = W.to(low) if low is not None else W
        loss = torch.zeros((), dtype=torch.float32, device=h.device)
        rows = torch.arange(min(chunk, M), device=h.device)
        for i in range(0, M, chunk):
            hc, yc = h[i:i + chunk], y[i:i + chunk]
            n = hc.shape[0]
            hm = hc.to(low) if low is not None else hc
            logits = (hm @ Wm.T).float()
            lse = torch.logsumexp(logits, -1)
            loss += (lse - logits.gather(1, yc[:, None]).squeeze(1)).sum()
            p = logits.sub_(lse[:, None]).exp_()       # softmax, in place
            p[rows[:n], yc] -= 1                        # d(sum of losses)/d(logits)
            if low is None:
                torch.mm(p, Wm, out=gh[i:i + n])
                gW.addmm_(p.T, hc)
            else:
                pm = p.to(low)
                gh[i:i + n] = pm @ Wm
                gW += (pm.T @ hm).float()
        ctx.save_for_backward(gh, gW)
        ctx.M = M
        return loss / M

    @staticmethod
    def backward(ctx, grad_out):
        gh, gW = ctx.saved_tensors
        scale = grad_out / ctx.M
        return gh * scale, gW * scale, None, None, None


def linear_cross_entropy_sum(h: torch.Tensor, W: torch.Tensor, y: torch.Tensor, chunk: int,
                             low: torch.dtype | None) -> torch.Tensor:
    """Summed cross-entropy of (h @ W.T) against y, forward only (evaluation): a chunk of rows at a time,
    so the (rows × vocab) logits are never held at once. `low` = matmuls in that dtype; the softmax is
    fp32 and the sum fp64 across chunks. F.cross_entropy per chunk, not LinearCrossEntropy's logsumexp:
    PyTorch's log-softmax kernel has a faster exp than torch.exp (0.6 vs 0.8 ns an element here), and
    the chunked head of an evaluation took 38-57 ms instead of 57-86 ms per 16,384 tokens (d 32-128)."""
    Wm = W.to(low) if low is not None else W
    total = torch.zeros((), dtype=torch.float64, device=h.device)
    for i in range(0, h.shape[0], chunk):
        hc = h[i:i + chunk]
        logits = ((hc.to(low) if low is not None else hc) @ Wm.T).float()
        total += F.cross_entropy(logits, y[i:i + chunk], reduction="sum")
    return total


def ce_chunk_rows(vocab_size: int, dev: torch.device) -> int:
    """Rows per chunk of the fused unembedding + cross-entropy.

    CPU: about 1 MB of fp32 logits (stays in L2; docs/notes/issue-3.md) but at least 128 rows: at V = 16,384
    the 16 rows of 1 MB made the head 1.3-2.4x slower than 128 rows, which was within 8% of the fastest
    chunk at V = 2,048 and 16,384, d = 64 and 256, fp32 and bf16 (benchmarks/bench_head.py,
    docs/notes/issue-16.md). CUDA: 512 MB of fp32 logits. A GPU's L2 (40-50 MB) holds no useful chunk at
    these vocabularies, so every chunk streams its logits through memory (~38 bytes per logit in the bf16
    path) and, once per chunk, the d × V gradient of W (~20 bytes per entry: the bf16 product, its fp32
    copy, the add): 1,024-row chunks spend ~40% of the logits' traffic again on it at d = 768,
    V = 16,384; 8,192 rows (512 MB) ~5%. Arithmetic, not yet measured on a GPU."""
    if dev.type == "cpu":
        return max(128, (1 << 18) // vocab_size)
    return max(16, (1 << 27) // vocab_size)


def compiled_blocks(body: torch.nn.Module) -> torch.nn.Module:
    """A view of the transformer body whose blocks run torch.compile'd one at a time. It shares every
    parameter and submodule with `body`, which stays eager (evaluation and checkpoints use it).

    Why per block: compiling the whole body traces transformers' mask code, whose data-dependent
    "no padding" check cannot run under tracing, so it builds a dense (B, 1, T, T) mask and SDPA gets
    attn_mask=<mask>, is_causal=False: no flash kernel, and the whole square computed. Run eagerly, that
    check finds no mask, and each compiled block calls SDPA with is_causal=True and no mask
    (tests/test_train.py traces it). The blocks share one compiled graph (same code and shapes)."""
    view = copy.copy(body)
    view._modules = {**body._modules, "h": torch.nn.ModuleList(torch.compile(block) for block in body.h)}
    return view


def make_loss_fn(model: torch.nn.Module, amp_dtype: torch.dtype | None, dev: torch.device,
                 compile: bool = False, head_dtype: torch.dtype | None = None) -> Callable:
    """loss(windows) -> mean next-token cross-entropy: the transformer body (under autocast when
    amp_dtype, its blocks torch.compile'd when `compile`), then the fused chunked unembedding + cross-entropy."""
    body = compiled_blocks(model.transformer) if compile else model.transformer
    W = model.lm_head.weight
    chunk = ce_chunk_rows(W.shape[0], dev)

    def hidden(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(dev.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            return body(input_ids=x).last_hidden_state

    def loss_fn(w: torch.Tensor) -> torch.Tensor:
        h = hidden(w[:, :-1])
        h = h.float().reshape(-1, h.size(-1))
        return LinearCrossEntropy.apply(h, W, w[:, 1:].reshape(-1), chunk, head_dtype)

    return loss_fn


class Stepper:
    """Our training step: body forward (optionally torch.compile'd) + fused unembedding/cross-entropy,
    backward, clip, fused AdamW step.
    Returns the loss as a tensor (no host sync)."""

    def __init__(self, model, optimizer, settings: TrainSettings, dev: torch.device,
                 amp_dtype: torch.dtype | None, compile: bool, log: Callable[[str], None] = print,
                 head_dtype: torch.dtype | None = None):
        self.model, self.opt, self.dev = model, optimizer, dev
        self.grad_clip = settings.grad_clip
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.eager_loss = make_loss_fn(model, amp_dtype, dev, head_dtype=head_dtype)
        self.loss_fn = self.eager_loss
        self.compiled = False
        self.log = log
        if compile:
            try:
                self.loss_fn = make_loss_fn(model, amp_dtype, dev, compile=True, head_dtype=head_dtype)
                self.compiled = True
            except Exception as exc:  # noqa: BLE001
                log(f"torch.compile unavailable ({exc!r}); running eager")

    def __call__(self, windows: torch.Tensor, lr: float) -> torch.Tensor:
        for g in self.opt.param_groups:
            g["lr"] = lr
        windows = windows.to(self.dev, non_blocking=True)
        try:
            loss = self._forward_backward(windows)
        except Exception as exc:  # noqa: BLE001 - a compiler failure must not kill the run
            if not self.compiled:
                raise
            # The backward is compiled lazily, at the first backward: its errors land here too.
            self.log(f"torch.compile failed ({type(exc).__name__}: {exc}); falling back to eager")
            self.opt.zero_grad(set_to_none=True)
            self.loss_fn, self.compiled = self.eager_loss, False
            loss = self._forward_backward(windows)
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=True)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.detach()

    def _forward_backward(self, windows: torch.Tensor) -> torch.Tensor:
        loss = self.loss_fn(windows)
        loss.backward()
        return loss


def should_compile(s: TrainSettings, total_steps: int, measured: StepTimes | None) -> bool:
    """compile="auto": compile a run of at least compile_min_steps steps when it pays by this machine's
    measured step times (`steptimes.compile_pays`: the time saved over the run's expected steps against
    the compile time); never without a measurement. A first compile took 2-66 s here depending on the
    inductor cache and the load, more than a 1,000-step run at n100k gained (docs/notes/issue-13.md)."""
    if s.compile != "auto":
        return s.compile == "on"
    return measured is not None and total_steps >= s.compile_min_steps and compile_pays(measured, total_steps)
