"""Held-out loss in bf16 against fp32: how far apart, and does early stopping pick the same step?

    python benchmarks/eval_precision.py --sizes n25k,n50k,n100k,n200k,n500k,n1m --chars 3e4,3e5 \
        [--finetune n100k=runs/quick/runs/pretrain-text-n100k-.../checkpoint] --out /tmp/prec.jsonl

Each run trains as the quick study does ([train] of jobs/quick.toml, precision auto) but without early
stopping (patience 10^6), and at every evaluation point evaluates the same model in each precision
below and keeps a copy of it. Afterwards early stopping (patience 3, the quick study's, and 4, the
default) is replayed on each precision's series (the LR schedule does not depend on when a run stops,
so the replay is exactly what an early-stopped run would have done), and the test loss of the model
each series picks is evaluated in that precision: the reported loss each precision would give.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile

import torch

from effdata.spec import RunSpec, TrainSettings
from effdata.study.rundata import run_data
from effdata.study.study import load_study
from effdata.training import train as trainmod
from effdata.training.evaluate import evaluate

BF16 = torch.bfloat16
PRECISIONS = {"fp32": (None, None), "bf16": (BF16, BF16), "bf16 body": (BF16, None), "bf16 head": (None, BF16)}


def record_evaluations(store: list[dict]):
    """A `_Run.valid_loss` that evaluates every precision, keeps a copy of the model, returns fp32."""
    def valid_loss(run) -> float:
        s = run.spec.settings
        losses = {name: evaluate(run.model, run.data.valid, run.spec.shape.n_ctx, s.eval_tokens,
                                 s.eval_batch_size, run.dev, *dtypes) for name, dtypes in PRECISIONS.items()}
        store.append({"losses": losses, "state": {k: v.detach().clone() for k, v in run.model.state_dict().items()}})
        return losses["fp32"]
    return valid_loss


def replay(losses: list[float], patience: int) -> int:
    """Index of the evaluation early stopping keeps (strictly lower is better, as train.py)."""
    best, best_i, bad = float("inf"), -1, 0
    for i, loss in enumerate(losses):
        if loss < best:
            best, best_i, bad = loss, i, 0
        else:
            bad += 1
            if bad >= patience:
                break
    return best_i


def one_run(spec: RunSpec, out_dir: str) -> dict:
    store: list[dict] = []
    original = trainmod._Run.valid_loss
    trainmod._Run.valid_loss = record_evaluations(store)
    try:
        data = run_data(spec)
        metrics = trainmod.train_run(spec, data, out_dir, threads=1)
    finally:
        trainmod._Run.valid_loss = original
    steps = [step for step, _ in metrics["evals"]]
    model = _model_like(spec, metrics, out_dir, data)
    result = {"mode": spec.mode, "size": spec.size, "data_chars": spec.data_chars, "steps": steps,
              "series": {name: [e["losses"][name] for e in store] for name in PRECISIONS}, "picks": {}}
    for patience in (3, 4):
        for name, dtypes in PRECISIONS.items():
            i = replay(result["series"][name], patience)
            model.load_state_dict(store[i]["state"])
            test = evaluate(model, data.test, spec.shape.n_ctx, spec.settings.test_tokens,
                            spec.settings.eval_batch_size, torch.device("cpu"), *dtypes)
            result["picks"][f"{name} p{patience}"] = {"best_step": steps[i], "test": test}
    return result


def _model_like(spec, metrics, out_dir, data):
    from effdata.training.model import build_model
    model = build_model(spec.shape, int(data.vocab_size))
    model.config._attn_implementation = metrics["attention"]
    return model


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="n25k,n50k,n100k,n200k,n500k,n1m")
    p.add_argument("--chars", default="3e4,3e5")
    p.add_argument("--seeds", default="0")
    p.add_argument("--finetune", nargs="*", default=[], help="size=checkpoint dir (fine-tunes at --chars)")
    p.add_argument("--study", default="jobs/quick.toml", help="its [train] table is used")
    p.add_argument("--out", required=True, help="JSON lines, one per run (appended)")
    a = p.parse_args(argv)
    study = load_study(a.study)
    settings = dataclasses.replace(study.train, patience=10**6, compile="off")
    jobs = [("scratch", size, None) for size in a.sizes.split(",")]
    jobs += [("finetune", *item.split("=", 1)) for item in a.finetune]
    for seed in [int(x) for x in a.seeds.split(",")]:
        for mode, size, init in jobs:
            for chars in [int(float(c)) for c in a.chars.split(",")]:
                spec = RunSpec(mode, size, seed, "python", data_chars=chars, init_from=init, settings=settings)
                with tempfile.TemporaryDirectory() as tmp:
                    result = one_run(spec, tmp)
                result["seed"], result["load"] = seed, os.getloadavg()[0]
                with open(a.out, "a") as f:
                    f.write(json.dumps(result) + "\n")
                print(json.dumps({k: result[k] for k in ("mode", "size", "data_chars", "seed", "picks")}), flush=True)


if __name__ == "__main__":
    main()
