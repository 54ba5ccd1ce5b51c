"""What one run reads (`RunData`), how it is checked, and the batches drawn from it.

Batches are non-overlapping windows of n_ctx+1 tokens, reshuffled every epoch (with a random
offset); the batch at step s is a pure function of (seed, s), so a resumed run sees the same batches.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


class RunFailed(RuntimeError):
    """A run that cannot give a trustworthy number. `reason` says why (also str(exc)); `stop_reason` is
    "diverged" for a divergence (the failed record's `stop_reason`), else None."""

    def __init__(self, reason: str, stop_reason: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.stop_reason = stop_reason


@dataclass
class RunData:
    train: np.ndarray                  # 1-D token ids (target prefix, or the pretraining corpus)
    train_chars: int                   # characters those tokens came from
    valid: np.ndarray                  # held-out target valid tokens (early stopping)
    test: np.ndarray                   # held-out target test tokens (reported loss)
    vocab_size: int
    tokenizer_dir: Path | None = None  # saved beside a pretraining checkpoint
    pretrain_valid: np.ndarray | None = None  # optional: held-out pretraining-distribution tokens

    def check(self, n_ctx: int) -> None:
        """RunFailed unless every split holds one window of valid ids and train_chars is positive."""
        for name in ("train", "valid", "test"):
            check_tokens(name, np.asarray(getattr(self, name)), int(self.vocab_size), n_ctx + 1)
        if self.train_chars <= 0:
            raise RunFailed(f"train_chars must be > 0, got {self.train_chars}")


def check_tokens(name: str, arr: np.ndarray, vocab_size: int, min_len: int) -> None:
    if arr is None or arr.ndim != 1:
        raise RunFailed(f"{name} tokens must be a 1-D array")
    if len(arr) < min_len:
        raise RunFailed(f"{name} split has {len(arr)} tokens; at least {min_len} needed (n_ctx+1)")
    hi = int(arr.max())
    if hi >= vocab_size or (arr.dtype.kind == "i" and int(arr.min()) < 0):
        raise RunFailed(f"{name} tokens hold id {hi}, outside the vocabulary of {vocab_size}")


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
