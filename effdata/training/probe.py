"""What a trained model does with its context: two probes of a checkpoint (`python -m effdata.probe`).

* **Induction score** (Olsson et al. 2022, "In-context learning and induction heads"): sequences of random
  tokens, each followed by a copy of itself; the mean loss over the first copy's tokens minus the mean over
  the copy's, in nats. A model that has learnt to find the earlier occurrence of the current token and predict
  what followed it (an induction head, which needs two attention layers) predicts the copy: a large score. A
  model that only knows token statistics scores about zero, since random tokens give it nothing else. Copying
  any token seen earlier in the context (which one layer can do) also scores, less sharply; so the copy is
  also given shuffled (the same tokens in another order): what the model gains on the exact copy over the
  shuffled one (`order_gain`) only a lookup of what followed earlier gives, the rest (`copy_gain`) any copying.
* **Loss by context position** on a corpus's held-out split: the mean next-token loss at each position of
  non-overlapping n_ctx windows. The *in-context score* is the late positions' mean minus the early ones'
  (negative: the model uses its context; Olsson et al. read it at the 500th and 50th tokens of 2048).

Both in fp32, eval mode, under no gradient; the random tokens come from a fixed seed, so a checkpoint's
scores are the same on every run and comparable between checkpoints.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from effdata.training.device import exact_fp32



def early_positions(n_ctx: int) -> slice:
    """Positions 1 .. n_ctx/8 (1–16 of the CPU ladder's 128): little context before them (position 0 has none)."""
    return slice(1, 1 + n_ctx // 8)


def late_positions(n_ctx: int) -> slice:
    """The window's last quarter (96–127 of 128)."""
    return slice(n_ctx - n_ctx // 4, n_ctx)


@dataclass(frozen=True)
class Probe:
    """A checkpoint's two probes (nats per token)."""

    first_copy: float        # mean loss on a random sequence's tokens the first time
    second_copy: float       # ... and on its copy
    shuffled_copy: float     # ... and on a copy of it in another order
    held_out_loss: float     # mean loss over every position of the held-out windows
    early_loss: float        # ... at positions early_positions(n_ctx)
    late_loss: float         # ... at positions late_positions(n_ctx)

    @property
    def induction(self) -> float:
        return self.first_copy - self.second_copy

    @property
    def copy_gain(self) -> float:
        return self.first_copy - self.shuffled_copy

    @property
    def order_gain(self) -> float:
        return self.shuffled_copy - self.second_copy

    @property
    def in_context(self) -> float:
        return self.late_loss - self.early_loss


def _token_losses(model: torch.nn.Module, windows: torch.Tensor, batch: int) -> torch.Tensor:
    """Next-token loss at every position of each row of `windows` ([rows, length + 1] token ids):
    [rows, length]."""
    out = []
    for b in range(0, len(windows), batch):
        w = windows[b:b + batch]
        logits = model(input_ids=w[:, :-1]).logits.float()
        out.append(torch.nn.functional.cross_entropy(logits.transpose(1, 2), w[:, 1:], reduction="none"))
    return torch.cat(out)


def random_copies(vocab_size: int, n_seq: int, length: int, seed: int = 0, exclude: int | None = None,
                  shuffled: bool = False) -> torch.Tensor:
    """`n_seq` sequences of `length` tokens drawn uniformly from the vocabulary (without `exclude`, the
    end-of-text token), each followed by a copy of itself (`shuffled`: its tokens in another order, a fixed
    permutation per row): [n_seq, 2·length]. The same sequences either way."""
    ids = torch.tensor([i for i in range(vocab_size) if i != exclude])
    g = torch.Generator().manual_seed(seed)
    seq = ids[torch.randint(len(ids), (n_seq, length), generator=g)]
    order = torch.argsort(torch.rand(n_seq, length, generator=g), dim=1)
    return torch.cat([seq, torch.gather(seq, 1, order) if shuffled else seq], dim=1)


@torch.no_grad()
@exact_fp32()
def probe(model: torch.nn.Module, tokens: np.ndarray, n_windows: int = 256, n_seq: int = 64, seed: int = 0,
          batch: int = 32) -> Probe:
    """Both probes of `model` (a causal LM with `.config.n_positions` and `.config.vocab_size`): the induction
    score on `n_seq` random sequences of n_ctx/2 tokens and their copies, and the loss by position on the
    leading `n_windows` windows of n_ctx + 1 tokens of `tokens` (a held-out split)."""
    n_ctx, vocab = model.config.n_positions, model.config.vocab_size
    if len(tokens) < n_windows * n_ctx + 1:
        raise ValueError(f"the loss by position needs {n_windows * n_ctx + 1:,} tokens, the split has {len(tokens):,}")
    was_training = model.training
    model.eval()
    try:
        half = n_ctx // 2
        eos = model.config.eos_token_id
        copies = _token_losses(model, random_copies(vocab, n_seq, half, seed, eos), batch)
        shuffled = _token_losses(model, random_copies(vocab, n_seq, half, seed, eos, shuffled=True), batch)
        # loss index i predicts token i + 1: the first copy's tokens 1 .. half-1, the copy's tokens 1 .. half-1
        first, second, other = copies[:, :half - 1].mean(), copies[:, half:].mean(), shuffled[:, half:].mean()
        starts = np.arange(n_windows) * n_ctx
        windows = torch.from_numpy(np.asarray(tokens[starts[:, None] + np.arange(n_ctx + 1)]).astype(np.int64))
        by_position = _token_losses(model, windows, batch).double().mean(0)
    finally:
        model.train(was_training)
    return Probe(first_copy=float(first), second_copy=float(second), shuffled_copy=float(other),
                 held_out_loss=float(by_position.mean()),
                 early_loss=float(by_position[early_positions(n_ctx)].mean()),
                 late_loss=float(by_position[late_positions(n_ctx)].mean()))
