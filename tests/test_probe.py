"""The checkpoint probes (effdata.training.probe) on models whose answers are known: one that knows nothing
scores zero on both, a perfect copier scores the whole first-copy loss, and a model that uses its context only at
late positions gives the in-context score its logits imply. The command (effdata.probe) on a tiny study is in
tests/test_runner.py; its refusals are here."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from effdata.probe import main
from effdata.study.store import Store
from effdata.study.study import study_from_dict, study_runs
from effdata.training.model import build_model
from effdata.training.probe import late_positions, probe, random_copies

V, CTX = 64, 32


class Fake(torch.nn.Module):
    """A causal LM made of a rule: logits(input_ids) -> [batch, length, V]."""

    def __init__(self, rule):
        super().__init__()
        self.config = SimpleNamespace(n_positions=CTX, vocab_size=V, eos_token_id=0)
        self.rule = rule

    def forward(self, input_ids):
        return SimpleNamespace(logits=self.rule(input_ids))


def counting(n: int) -> np.ndarray:
    """Held-out tokens whose next token is always the current one + 1 (mod V)."""
    return (np.arange(n) % V).astype(np.uint16)


def test_random_copies_repeat_a_seeded_sequence_without_the_end_of_text_token():
    x = random_copies(V, 50, 16, seed=3, exclude=0)
    assert x.shape == (50, 32) and torch.equal(x[:, :16], x[:, 16:])
    assert not (x == 0).any() and x.max() < V
    assert torch.equal(x, random_copies(V, 50, 16, seed=3, exclude=0))
    assert not torch.equal(x, random_copies(V, 50, 16, seed=4, exclude=0))
    s = random_copies(V, 50, 16, seed=3, exclude=0, shuffled=True)
    assert torch.equal(s[:, :16], x[:, :16]) and not torch.equal(s[:, 16:], x[:, 16:])
    assert torch.equal(s[:, 16:].sort(dim=1).values, x[:, 16:].sort(dim=1).values)   # the same tokens, reordered


def test_a_model_that_knows_nothing_scores_zero():
    p = probe(Fake(lambda x: torch.zeros(*x.shape, V)), counting(CTX * 8 + 1), n_windows=8)
    assert p.first_copy == p.second_copy == p.shuffled_copy == pytest.approx(math.log(V))
    assert p.induction == p.copy_gain == p.order_gain == 0 and p.in_context == pytest.approx(0, abs=1e-12)
    assert p.held_out_loss == pytest.approx(math.log(V))


def test_a_perfect_copier_scores_the_first_copys_whole_loss():
    """Position t of a sequence and its copy predicts token t + 1, which the copy repeats from t + 1 − half:
    a copier that looks there (logit 30) has near-zero loss on the copy; off by one, it would score about 0."""
    half = CTX // 2

    def copier(x):
        logits = torch.zeros(*x.shape, V)
        for t in range(half - 1, x.shape[1]):
            logits[torch.arange(len(x)), t, x[:, t + 1 - half]] = 30.0
        return logits

    p = probe(Fake(copier), counting(CTX * 4 + 1), n_windows=4, n_seq=40)
    assert p.first_copy == pytest.approx(math.log(V))
    assert p.second_copy == pytest.approx(0, abs=1e-9)
    assert p.induction == pytest.approx(math.log(V))
    # shuffled, what it looks up is mostly the wrong token (at logit 30): all of its gain is the order's
    assert p.shuffled_copy > 20 and p.order_gain > 20 and p.copy_gain < -15
    assert p.copy_gain + p.order_gain == pytest.approx(p.induction)


def test_the_in_context_score_is_the_late_positions_gain():
    """Logit c on the right next token at the window's last quarter, uniform elsewhere: late loss
    ln(e^c + V − 1) − c, early ln V."""
    c = 3.0

    def late_only(x):
        logits = torch.zeros(*x.shape, V)
        late = torch.zeros(x.shape[1], dtype=torch.bool)
        late[late_positions(CTX)] = True
        rows, cols = torch.meshgrid(torch.arange(len(x)), torch.arange(x.shape[1]), indexing="ij")
        logits[rows[:, late], cols[:, late], (x[:, late] + 1) % V] = c
        return logits

    p = probe(Fake(late_only), counting(CTX * 8 + 1), n_windows=8)
    assert p.late_loss == pytest.approx(math.log(math.exp(c) + V - 1) - c)
    assert p.early_loss == pytest.approx(math.log(V))
    assert p.in_context == pytest.approx(p.late_loss - p.early_loss)
    assert p.held_out_loss == pytest.approx((CTX // 4 * p.late_loss + (CTX - CTX // 4) * math.log(V)) / CTX)


def test_a_real_model_is_left_as_it_was():
    torch.manual_seed(0)
    model = build_model("n25k", V)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    p = probe(model, counting(model.config.n_positions * 2 + 1), n_windows=2, n_seq=4)
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert math.isfinite(p.induction) and math.isfinite(p.in_context)
    with pytest.raises(ValueError, match="needs 257 tokens"):
        probe(model, counting(100), n_windows=2)


def test_the_command_refuses_what_it_cannot_probe_writing_nothing(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no ended pretraining run" in capsys.readouterr().err
    study = study_from_dict({"name": "t", "sizes": ["n25k"], "scratch": {"data_chars": []},
                             "finetune": {"data_chars": [1e4]}, "pretrain": {"token_budget": 20000}})
    pre = next(r for r in study_runs(study) if r.mode == "pretrain")
    store = Store(tmp_path)
    store.write_run(pre)
    store.write_record(pre, "ok", {"tokens_seen": 20480, "valid_loss": 5.0, "checkpoints": []})
    assert main([str(tmp_path), "--figure", str(tmp_path / "f.png")]) == 2
    assert "no checkpoint there" in capsys.readouterr().err
    assert main([str(tmp_path), "--windows", "0"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
