"""Pick the default vocabulary size: training speed in characters/second of tiny GPT-2 models.

For each vocabulary size: train (or load) the shared BPE, measure characters per token on the
``python`` valid split, then time a few AdamW training steps of tiny GPT-2 models (their unembedding,
d_model x vocab, dominates the cost). chars/s = tokens/s x chars/token: the speed at which a model
eats *target data*, which is what the from-scratch curves are measured in.

    .venv/bin/python benchmarks/bench_vocab.py [--vocab 512 1024 2048 4096 8192] [--steps 12]

The machine's cores may be shared: run it twice and compare if the numbers look noisy.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing



def chars_per_token(vocab: int, home=None) -> float:
    from tokenizers import Tokenizer

    from effdata.corpora import load_corpus
    from effdata.tokenizer import ensure_tokenizer

    d = ensure_tokenizer(vocab, home)
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    docs = load_corpus("python", home).split("valid")
    n_tok = sum(len(e.ids) for e in tok.encode_batch([x.text for x in docs], add_special_tokens=False))
    return sum(len(x.text) for x in docs) / n_tok


def tokens_per_second(vocab: int, n_layer: int, d_model: int, n_head: int, n_ctx: int, batch: int, steps: int) -> tuple[float, int]:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=vocab, n_positions=n_ctx, n_embd=d_model, n_layer=n_layer, n_head=n_head,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(cfg)
    n_params = 12 * n_layer * d_model**2
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, vocab, (batch, n_ctx))

    def step():
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = time.perf_counter() - t0
    return batch * n_ctx * steps / dt, n_params


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, nargs="+", default=[512, 1024, 2048, 4096, 8192])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the best is kept (contention)")
    ap.add_argument("--home", default=None)
    a = ap.parse_args()
    import torch

    shapes = {"tiny (2x64)": (2, 64, 2), "small (4x128)": (4, 128, 4)}
    print(f"torch threads {torch.get_num_threads()}; n_ctx 128, batch 16, AdamW, {a.steps} timed steps, "
          f"best of {a.repeats} interleaved repeats; chars/token on the python valid split")
    cpt = {v: chars_per_token(v, a.home) for v in a.vocab}
    best: dict[tuple[int, str], float] = {}
    for _ in range(a.repeats):  # interleaved, so that a burst of load from others hits all sizes alike
        for v in a.vocab:
            for name, (nl, d, nh) in shapes.items():
                tps, _ = tokens_per_second(v, nl, d, nh, 128, 16, a.steps)
                best[v, name] = max(best.get((v, name), 0.0), tps)
    print("| vocab | chars/token | " + " | ".join(f"{s} tok/s | {s} chars/s" for s in shapes) + " |")
    print("|---" * (2 + 2 * len(shapes)) + "|")
    for v in a.vocab:
        cells = []
        for name in shapes:
            cells += [f"{best[v, name]:,.0f}", f"{best[v, name] * cpt[v]:,.0f}"]
        print(f"| {v} | {cpt[v]:.3f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
