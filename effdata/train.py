"""One training run, early-stopped on held-out Python: pretrain, from scratch, or fine-tune.

`train_run(spec, data, run_dir)` is the whole contract. What it does (METHOD.md has the why):

* model: `effdata.model.build_model` (seeded), or for a fine-tune the pretrained checkpoint loaded with
  `from_pretrained` and checked against the spec's shape and the data's vocabulary;
* optimiser: AdamW, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on matrices only (every parameter
  with 2+ dims: the linear weights and the token/position embeddings; never biases or layer norms),
  gradient clipping at norm 1.0; fused AdamW where PyTorch has it;
* learning rate: `lr_at(step, ...)`, a pure function of the step: linear warm-up to the peak, then
  cosine decay to `min_lr_ratio`·peak at the run's expected last step. Warm-up = `warmup_frac` of the
  expected steps (capped at `warmup_max`), so short runs finish their warm-up. Peak LR from the size by
  Kaplan et al.'s rule LR(N) = 0.003239 − 0.0001395·ln N (N non-embedding), times `lr_scale`, unless
  `lr` is given;
* length: pretrain = token_budget / tokens per step; scratch and fine-tune = `max_epochs` over the
  fraction, clamped to [`min_steps`, `max_steps`]. Fine-tunes use the from-scratch hyperparameters;
* batches: non-overlapping windows of n_ctx+1 tokens, reshuffled every epoch (with a random offset);
  the batch at step s is a pure function of (seed, s), so a resumed run sees the same batches;
* evaluation: at step 0 and every expected_steps/`evals_per_run` steps, on the first `eval_tokens`
  tokens of the fixed target valid split in non-overlapping n_ctx windows, fp32. Early stopping:
  `patience` evaluations without improvement (pretraining too, unless `pretrain_stop_on="budget"`).
  The best model (in memory) gives the reported `valid_loss`, and `loss` = its test loss on the first
  `test_tokens` tokens of the test split;
* failure: NaN/inf, or a valid loss above `diverge_factor`·max(initial loss, ln V) → `RunFailed`; so do
  a checkpoint that does not match, and data too short for one window. Never a silently wrong number;
* pretraining saves the best model with the tokenizer under `run_dir/checkpoint` (`save_pretrained`);
* resume: `run_dir/resume.pt` is written at evaluations (at most every `resume_every_s` seconds) and
  deleted at the end; a run that finds a matching one continues from it and ends with the same numbers.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F

from . import device as devmod
from .model import ModelShape, build_model, get_shape, non_embedding_params, shape_of, total_params


class RunFailed(RuntimeError):
    """A run that cannot give a trustworthy number. `reason` says why (also str(exc))."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ----------------------------------------------------------------------------------------------
# Specs


@dataclass(frozen=True)
class TrainSettings:
    batch_size: int = 32               # sequences per step
    n_ctx: int | None = None           # context; None = the size's (128 on the CPU ladder)
    lr: float | None = None            # peak LR; None = Kaplan's rule by N, times lr_scale
    lr_scale: float = 1.0
    min_lr_ratio: float = 0.1          # cosine decays to this fraction of the peak
    warmup_frac: float = 0.05          # warm-up steps = this fraction of the expected steps ...
    warmup_max: int = 3000             # ... capped here (the paper's 3000)
    weight_decay: float = 0.1          # on matrices only
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0             # 0 = off
    max_epochs: float = 20.0           # scratch/fine-tune: epochs over the fraction ...
    min_steps: int = 200               # ... clamped to [min_steps, max_steps]
    max_steps: int = 5000
    evals_per_run: int = 20            # evaluation interval = expected steps / this
    patience: int = 4                  # evaluations without improvement before stopping
    eval_tokens: int = 65536           # leading tokens of valid used for early stopping
    test_tokens: int = 131072          # leading tokens of test used for the reported loss
    eval_batch_size: int = 16
    pretrain_stop_on: Literal["target", "budget"] = "target"  # early-stop pretraining on target valid?
    diverge_factor: float = 1.5
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: Literal["auto", "on", "off"] = "auto"
    compile_min_steps: int = 1000      # "auto" compiles runs at least this long (see _should_compile)
    resume_every_s: float = 60.0       # write resume.pt at an evaluation at most this often

    def __post_init__(self) -> None:
        checks = [
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.n_ctx is None or self.n_ctx >= 2, "n_ctx must be >= 2"),
            (self.lr is None or self.lr > 0, "lr must be > 0"),
            (self.lr_scale > 0, "lr_scale must be > 0"),
            (0 <= self.min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1]"),
            (0 <= self.warmup_frac < 1, "warmup_frac must be in [0, 1)"),
            (self.max_epochs > 0, "max_epochs must be > 0"),
            (1 <= self.min_steps <= self.max_steps, "need 1 <= min_steps <= max_steps"),
            (self.evals_per_run >= 1, "evals_per_run must be >= 1"),
            (self.patience >= 1, "patience must be >= 1"),
            (self.eval_tokens >= 2 and self.test_tokens >= 2, "eval_tokens and test_tokens must be >= 2"),
            (self.pretrain_stop_on in ("target", "budget"), "pretrain_stop_on must be 'target' or 'budget'"),
            (self.precision in ("auto", "fp32", "bf16"), "precision must be 'auto', 'fp32' or 'bf16'"),
            (self.compile in ("auto", "on", "off"), "compile must be 'auto', 'on' or 'off'"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"TrainSettings: {msg}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainSettings":
        d = dict(d or {})
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"TrainSettings: unknown settings {sorted(unknown)}")
        return cls(**d)


@dataclass(frozen=True)
class RunSpec:
    mode: Literal["pretrain", "scratch", "finetune"]
    size: str                          # ladder name (effdata.model.get_shape)
    seed: int
    corpus: str                        # pretrain: pretraining corpus/mixture; scratch/finetune: the target
    target: str = "python"             # held-out target for early stopping and the test loss
    data_chars: int | None = None      # scratch/finetune: target fraction in characters
    data_tokens: int | None = None     # ... or in tokens (neither: the whole train split)
    token_budget: int | None = None    # pretrain: tokens to train on at most
    init_from: str | None = None       # finetune: checkpoint directory (checked by train_run)
    settings: TrainSettings = field(default_factory=TrainSettings)

    def __post_init__(self) -> None:
        if self.mode not in ("pretrain", "scratch", "finetune"):
            raise ValueError(f"RunSpec: mode must be pretrain, scratch or finetune, got {self.mode!r}")
        get_shape(self.size)  # raises a clear error for an unknown size
        if self.mode == "pretrain" and not (self.token_budget and self.token_budget > 0):
            raise ValueError("RunSpec: a pretrain run needs token_budget > 0")
        for name in ("data_chars", "data_tokens"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ValueError(f"RunSpec: {name} must be > 0, got {v}")
        if isinstance(self.settings, dict):  # tolerate a dict from JSON
            object.__setattr__(self, "settings", TrainSettings.from_dict(self.settings))

    @property
    def shape(self) -> ModelShape:
        s = get_shape(self.size)
        if self.settings.n_ctx is not None and self.settings.n_ctx != s.n_ctx:
            s = dataclasses.replace(s, n_ctx=self.settings.n_ctx)
        return s

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["settings"] = self.settings.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        d = dict(d)
        d["settings"] = TrainSettings.from_dict(d.get("settings"))
        return cls(**d)


@dataclass
class RunData:
    train: np.ndarray                  # 1-D token ids (target prefix, or the pretraining corpus)
    train_chars: int                   # characters those tokens came from
    valid: np.ndarray                  # held-out target valid tokens (early stopping)
    test: np.ndarray                   # held-out target test tokens (reported loss)
    vocab_size: int
    tokenizer_dir: Path | None = None  # saved beside a pretraining checkpoint
    pretrain_valid: np.ndarray | None = None  # optional: held-out pretraining-distribution tokens


# ----------------------------------------------------------------------------------------------
# Schedule


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
class Plan:
    total_steps: int
    warmup_steps: int
    eval_interval: int
    peak_lr: float
    tokens_per_step: int


def plan_run(spec: RunSpec, n_train_tokens: int, n_params: int) -> Plan:
    """Expected length, warm-up, evaluation interval and peak LR of a run (pure)."""
    s = spec.settings
    n_ctx = spec.shape.n_ctx
    tps = s.batch_size * n_ctx
    if spec.mode == "pretrain":
        total = max(1, math.ceil(spec.token_budget / tps))
    else:
        total = math.ceil(s.max_epochs * n_train_tokens / tps)
        total = min(s.max_steps, max(s.min_steps, total))
    warmup = max(1, min(s.warmup_max, round(s.warmup_frac * total)))
    interval = max(1, total // s.evals_per_run)
    peak = s.lr if s.lr is not None else kaplan_lr(n_params) * s.lr_scale
    return Plan(total, warmup, interval, peak, tps)


# ----------------------------------------------------------------------------------------------
# Data


class Batches:
    """Shuffled non-overlapping windows of n_ctx+1 tokens; the batch at step s is a pure function of
    (seed, s). Each epoch is a fresh permutation with a random start offset."""

    def __init__(self, tokens: np.ndarray, n_ctx: int, batch_size: int, seed: int):
        n = len(tokens)
        if n < n_ctx + 1:
            raise RunFailed(f"training data has {n} tokens; at least n_ctx+1 = {n_ctx + 1} needed for one window")
        k = (n - 1) // n_ctx
        if k >= 2:
            k -= 1  # leave a full window of slack so every epoch can start at a random offset
        self.tokens, self.n_ctx, self.batch_size, self.seed = tokens, n_ctx, batch_size, seed
        self.windows_per_epoch = k
        self.max_offset = min(n_ctx - 1, n - 1 - k * n_ctx)
        self._cache: dict[int, tuple[int, np.ndarray]] = {}
        self._ar = np.arange(n_ctx + 1)

    def _epoch(self, e: int) -> tuple[int, np.ndarray]:
        if e not in self._cache:
            rng = np.random.default_rng([self.seed, e, 0xEFF])
            off = int(rng.integers(0, self.max_offset + 1))
            perm = rng.permutation(self.windows_per_epoch)
            if len(self._cache) > 2:
                self._cache.pop(min(self._cache))
            self._cache[e] = (off, perm)
        return self._cache[e]

    def starts(self, step: int) -> np.ndarray:
        i = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
        epochs, pos = np.divmod(i, self.windows_per_epoch)
        out = np.empty(self.batch_size, dtype=np.int64)
        for e in np.unique(epochs):
            off, perm = self._epoch(int(e))
            m = epochs == e
            out[m] = off + perm[pos[m]] * self.n_ctx
        return out

    def get(self, step: int) -> torch.Tensor:
        """(batch, n_ctx+1) int64 token windows on CPU."""
        idx = self.starts(step)[:, None] + self._ar
        return torch.from_numpy(self.tokens[idx].astype(np.int64))


def _check_tokens(name: str, arr: np.ndarray, vocab_size: int, min_len: int) -> None:
    if arr is None or arr.ndim != 1:
        raise RunFailed(f"{name} tokens must be a 1-D array")
    if len(arr) < min_len:
        raise RunFailed(f"{name} split has {len(arr)} tokens; at least {min_len} needed (n_ctx+1)")
    hi = int(arr.max())
    if hi >= vocab_size or (arr.dtype.kind == "i" and int(arr.min()) < 0):
        raise RunFailed(f"{name} tokens hold id {hi}, outside the vocabulary of {vocab_size}")


# ----------------------------------------------------------------------------------------------
# Model pieces shared with effdata.bench


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


def ce_chunk_rows(vocab_size: int, dev: torch.device) -> int:
    """Rows per chunk: about 1 MB of fp32 logits on CPU (stays in L2), 64 MB on GPU."""
    budget = (1 << 18) if dev.type == "cpu" else (1 << 24)
    return max(16, budget // vocab_size)


def make_loss_fn(model: torch.nn.Module, amp_dtype: torch.dtype | None, dev: torch.device,
                 compile: bool = False, head_dtype: torch.dtype | None = None) -> Callable:
    """loss(windows) -> mean next-token cross-entropy: the transformer body (under autocast when
    amp_dtype, torch.compile'd when `compile`), then the fused chunked unembedding + cross-entropy."""
    body = model.transformer
    W = model.lm_head.weight
    chunk = ce_chunk_rows(W.shape[0], dev)

    def hidden(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(dev.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            return body(input_ids=x).last_hidden_state

    hidden_fn = torch.compile(hidden) if compile else hidden

    def loss_fn(w: torch.Tensor) -> torch.Tensor:
        h = hidden_fn(w[:, :-1])
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
            loss = self.loss_fn(windows)
        except Exception as exc:  # noqa: BLE001 - a compiler failure must not kill the run
            if not self.compiled:
                raise
            self.log(f"torch.compile failed ({type(exc).__name__}: {exc}); falling back to eager")
            self.loss_fn, self.compiled = self.eager_loss, False
            loss = self.loss_fn(windows)
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=True)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.detach()


@torch.inference_mode()
def evaluate(model: torch.nn.Module, tokens: np.ndarray, n_ctx: int, max_tokens: int,
             batch_size: int, dev: torch.device) -> float:
    """Mean next-token loss (nats/token) over the leading `max_tokens` tokens in non-overlapping
    n_ctx windows, fp32, eval mode."""
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


def flops_per_token(shape: ModelShape, n_params: int, vocab_size: int) -> tuple[float, float]:
    """Training FLOPs per token: (full, 6N).

    full = 6·(N + d_model·V) + 6·n_layer·n_ctx·d_model: Kaplan's 6N plus the unembedding matmul
    (which dominates at the smallest sizes) plus attention (2·n_layer·n_ctx·d_model forward, ×3 with
    backward). 6N uses non-embedding N only, the paper's convention. Evaluation is not counted.
    """
    full = 6 * (n_params + shape.d_model * vocab_size) + 6 * shape.n_layer * shape.n_ctx * shape.d_model
    return float(full), float(6 * n_params)


# ----------------------------------------------------------------------------------------------
# The run


def _load_checkpoint(spec: RunSpec, vocab_size: int, dev: torch.device):
    import transformers

    path = Path(spec.init_from)
    if not (path / "config.json").exists():
        raise RunFailed(f"checkpoint {path} not found (no config.json): run its pretraining first")
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa")
    except Exception as exc:  # noqa: BLE001
        raise RunFailed(f"checkpoint {path} could not be loaded: {type(exc).__name__}: {exc}") from exc
    model = model.float()
    want = spec.shape
    if not hasattr(model.config, "n_layer"):
        raise RunFailed(f"checkpoint {path} is a {type(model).__name__}, not a GPT-2 model")
    have = shape_of(model)
    expect = (want.n_layer, want.d_model, want.n_head, want.n_ctx, vocab_size)
    if have[4] != vocab_size:
        raise RunFailed(f"checkpoint {path} has vocabulary {have[4]}, the data has {vocab_size}: "
                        "pretrain with the same tokenizer")
    if have != expect:
        raise RunFailed(f"checkpoint {path} has shape (n_layer, d_model, n_head, n_ctx) = {have[:4]}, "
                        f"size {spec.size!r} needs {expect[:4]}")
    model.config.use_cache = False
    return model


def _fingerprint(spec: RunSpec, data: RunData) -> str:
    return json.dumps({"spec": spec.to_dict(), "train": int(len(data.train)), "valid": int(len(data.valid)),
                       "test": int(len(data.test)), "vocab": int(data.vocab_size)}, sort_keys=True, default=str)


def _save_resume(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _clone_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_run(spec: RunSpec, data: RunData, run_dir: Path | str,
              progress: Callable[[dict], None] | None = None, *,
              threads: int | None = None, device: str | None = None) -> dict[str, Any]:
    """Execute one run; return its flat, JSON-serialisable metrics. Raises RunFailed(reason).

    `threads`: torch CPU threads (default: every available core; the runner passes cores/workers).
    `device`: "cpu"/"cuda" (default: CUDA when present). `progress(dict)` is called at each evaluation
    with step, total_steps, train_loss, valid_loss, best_valid_loss, lr, tokens_per_s, elapsed.
    """
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    s = spec.settings
    shape = spec.shape
    n_ctx = shape.n_ctx
    dev = devmod.pick_device(device)
    n_threads = devmod.set_threads(threads)
    log_path = run_dir / "log.txt"

    def log(msg: str) -> None:
        with open(log_path, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")

    # --- input checks: fail clearly, never train on something wrong
    if spec.mode == "finetune" and not spec.init_from:
        raise RunFailed("a finetune run needs init_from (a pretrained checkpoint directory)")
    V = int(data.vocab_size)
    _check_tokens("train", np.asarray(data.train), V, n_ctx + 1)
    _check_tokens("valid", np.asarray(data.valid), V, n_ctx + 1)
    _check_tokens("test", np.asarray(data.test), V, n_ctx + 1)
    if data.train_chars <= 0:
        raise RunFailed(f"train_chars must be > 0, got {data.train_chars}")

    # --- model
    torch.manual_seed(spec.seed)
    np.random.seed(spec.seed % 2**32)
    if dev.type == "cuda":
        torch.cuda.manual_seed_all(spec.seed)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if spec.mode == "finetune":
        model = _load_checkpoint(spec, V, dev)
    else:
        eos = _tokenizer_eos(data.tokenizer_dir)
        model = build_model(shape, V, eos_token_id=eos)
    model.to(dev).train()
    n_params = non_embedding_params(model)
    plan = plan_run(spec, len(data.train), n_params)
    amp_dtype, head_dtype = devmod.precision_plan(s.precision, dev, shape.d_model)
    attn = devmod.attention_impl(dev, amp_dtype)
    model.config._attn_implementation = attn
    use_compile = _should_compile(s, dev, amp_dtype, shape, plan.total_steps)
    opt = make_optimizer(model, s, plan.peak_lr, dev)
    stepper = Stepper(model, opt, s, dev, amp_dtype, use_compile, log, head_dtype=head_dtype)
    batches = Batches(data.train, n_ctx, s.batch_size, spec.seed)

    def eval_valid() -> float:
        return evaluate(model, data.valid, n_ctx, s.eval_tokens, s.eval_batch_size, dev)

    # --- state (possibly resumed)
    resume_path = run_dir / "resume.pt"
    fp = _fingerprint(spec, data)
    step = 0
    best_loss, best_step, best_state, bad = math.inf, -1, None, 0
    evals: list[list] = []
    prior_wall = 0.0
    init_loss = None
    stopped = "budget"
    if resume_path.exists():
        try:
            st = torch.load(resume_path, map_location=dev, weights_only=False)
        except Exception as exc:  # noqa: BLE001
            st = None
            log(f"ignoring unreadable {resume_path.name}: {exc!r}")
        if st is not None and st.get("fingerprint") == fp:
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            step, best_loss, best_step, bad = st["step"], st["best_loss"], st["best_step"], st["bad"]
            best_state, evals, prior_wall, init_loss = st["best_state"], st["evals"], st["wall"], st["init_loss"]
            log(f"resumed at step {step} (best {best_loss:.4f} at step {best_step})")
        elif st is not None:
            log(f"ignoring {resume_path.name}: it belongs to a different spec or data")
    else:
        log(f"start {spec.mode} size={spec.size} N={n_params} seed={spec.seed} device={dev} threads={n_threads} "
            f"precision={devmod.precision_name(amp_dtype, head_dtype)} attention={attn} compile={stepper.compiled} steps={plan.total_steps} warmup={plan.warmup_steps} "
            f"eval_every={plan.eval_interval} peak_lr={plan.peak_lr:.3g} train_tokens={len(data.train)}")

    early_stop = spec.mode != "pretrain" or s.pretrain_stop_on == "target"
    loss_acc = torch.zeros((), dtype=torch.float32, device=dev)
    n_acc = 0
    seg_t0 = time.perf_counter()
    seg_step0 = step
    last_save = time.perf_counter()

    def do_eval(at: int) -> bool:
        """Evaluate after `at` steps; return True to stop."""
        nonlocal best_loss, best_step, best_state, bad, init_loss, loss_acc, n_acc, last_save, stopped
        train_loss = float(loss_acc) / n_acc if n_acc else float("nan")
        if n_acc and not math.isfinite(train_loss):
            raise RunFailed(f"diverged at step {at}: training loss is {train_loss}")
        vl = eval_valid()
        if init_loss is None:
            init_loss = vl
        limit = s.diverge_factor * max(init_loss, math.log(V))
        # Divergence is judged on the loss of what the run trains on: a pretraining run's loss on the
        # target may rightly rise (it learns another distribution), and that is not a divergence.
        watched, name = (train_loss, "training loss") if spec.mode == "pretrain" else (vl, "valid loss")
        if not math.isfinite(vl) or (math.isfinite(watched) and watched > limit):
            raise RunFailed(f"diverged at step {at}: {name} {watched:.4g} (limit {limit:.4g}, initial {init_loss:.4g})")
        evals.append([at, round(vl, 6)])
        if vl < best_loss or not early_stop:
            best_loss, best_step, bad = vl, at, 0
            best_state = _clone_state(model)
        else:
            bad += 1
        elapsed = time.perf_counter() - seg_t0
        tps = (at - seg_step0) * plan.tokens_per_step / elapsed if at > seg_step0 and elapsed > 0 else 0.0
        stop = early_stop and bad >= s.patience
        if stop:
            stopped = "early"
        lr = lr_at(max(at - 1, 0), plan.peak_lr, plan.warmup_steps, plan.total_steps, s.min_lr_ratio)
        log(f"step {at}/{plan.total_steps} train {train_loss:.4f} valid {vl:.4f} best {best_loss:.4f}@{best_step} "
            f"lr {lr:.3g} tok/s {tps:,.0f}")
        loss_acc.zero_()
        n_acc = 0
        if at < plan.total_steps and not stop and time.perf_counter() - last_save >= s.resume_every_s:
            _save_resume(resume_path, {
                "fingerprint": fp, "step": at, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "best_loss": best_loss, "best_step": best_step, "bad": bad, "best_state": best_state,
                "evals": evals, "init_loss": init_loss,
                "wall": prior_wall + time.perf_counter() - t_start,
            })
            last_save = time.perf_counter()
        if progress is not None:
            progress({"step": at, "total_steps": plan.total_steps, "train_loss": train_loss, "valid_loss": vl,
                      "best_valid_loss": best_loss, "lr": lr, "tokens_per_s": tps,
                      "elapsed": prior_wall + time.perf_counter() - t_start})
        return stop

    if step == 0 and not evals:
        do_eval(0)
    while step < plan.total_steps:
        lr = lr_at(step, plan.peak_lr, plan.warmup_steps, plan.total_steps, s.min_lr_ratio)
        loss_acc += stepper(batches.get(step), lr)
        n_acc += 1
        step += 1
        if step % plan.eval_interval == 0 or step == plan.total_steps:
            if do_eval(step):
                break

    # --- the best model: test loss, checkpoint
    model.load_state_dict(best_state)
    test_loss = evaluate(model, data.test, n_ctx, s.test_tokens, s.eval_batch_size, dev)
    if not math.isfinite(test_loss):
        raise RunFailed(f"test loss of the best model is {test_loss}")
    tokens_seen = step * plan.tokens_per_step
    chars_per_token = data.train_chars / len(data.train)
    f_full, f_6n = flops_per_token(shape, n_params, V)
    wall = prior_wall + time.perf_counter() - t_start
    metrics: dict[str, Any] = {
        "mode": spec.mode, "size": spec.size, "n_params": n_params, "n_params_total": total_params(model),
        "n_layer": shape.n_layer, "d_model": shape.d_model, "n_head": shape.n_head, "n_ctx": n_ctx,
        "vocab_size": V, "seed": spec.seed, "corpus": spec.corpus, "target": spec.target,
        "data_chars": int(data.train_chars), "data_tokens": int(len(data.train)),
        "valid_loss": best_loss, "loss": test_loss, "best_step": best_step, "steps": step,
        "total_steps": plan.total_steps, "stopped": stopped,
        "epochs": tokens_seen / len(data.train), "tokens_seen": tokens_seen,
        "chars_seen": tokens_seen * chars_per_token, "best_tokens_seen": best_step * plan.tokens_per_step,
        "flops": f_full * tokens_seen, "flops_6N": f_6n * tokens_seen,
        "wall_time": wall, "tokens_per_s": tokens_seen / wall if wall > 0 else 0.0,
        "device": str(dev), "threads": n_threads, "dtype": devmod.precision_name(amp_dtype, head_dtype), "attention": attn,
        "compiled": stepper.compiled, "peak_lr": plan.peak_lr, "warmup_steps": plan.warmup_steps,
        "eval_interval": plan.eval_interval, "batch_size": s.batch_size, "init_loss": init_loss,
        "evals": evals,
    }
    if spec.mode == "finetune":
        metrics["init_from"] = str(spec.init_from)
    if data.pretrain_valid is not None and len(data.pretrain_valid) > n_ctx:
        metrics["pretrain_valid_loss"] = evaluate(model, data.pretrain_valid, n_ctx, s.eval_tokens,
                                                  s.eval_batch_size, dev)
    if spec.mode == "pretrain":
        ckpt = run_dir / "checkpoint"
        _save_checkpoint(model, ckpt, data.tokenizer_dir)
        metrics["checkpoint"] = str(ckpt)
    log(f"done: best valid {best_loss:.4f} at step {best_step}, test {test_loss:.4f}, {step} steps, {wall:.1f}s")
    resume_path.unlink(missing_ok=True)
    return metrics


def _should_compile(s: TrainSettings, dev: torch.device, amp_dtype, shape: ModelShape, total_steps: int) -> bool:
    """compile="auto": only runs of >= compile_min_steps steps (compiling costs ~20-30 s on this CPU), and
    on CPU only bf16 steps with d_model >= 64: measured 1.5x faster there (break-even ~200 steps), while
    at d_model < 64 or in fp32 compiling gained nothing measurable (docs/notes/issue-3.md)."""
    if s.compile != "auto":
        return s.compile == "on"
    if total_steps < s.compile_min_steps:
        return False
    return dev.type == "cuda" or (amp_dtype is not None and shape.d_model >= 64)


def _tokenizer_eos(tokenizer_dir: Path | None) -> int | None:
    if not tokenizer_dir:
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(tokenizer_dir)).eos_token_id
    except Exception:  # noqa: BLE001 - only used for generation defaults
        return None


def _save_checkpoint(model, ckpt: Path, tokenizer_dir: Path | None) -> None:
    """save_pretrained the model (fp32 safetensors) and the tokenizer, atomically (tmp dir + rename)."""
    import shutil

    model.config._attn_implementation = "sdpa"  # what a loader gets; training may have used "eager"

    tmp = ckpt.with_name(ckpt.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    if tokenizer_dir:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(tmp)
    shutil.rmtree(ckpt, ignore_errors=True)
    os.replace(tmp, ckpt)
