"""How long a GPU study takes on one GPU shared by W workers: an estimate to size a study by before a GPU
has measured anything (then `python -m effdata.bench --device cuda` replaces the assumptions).

    python benchmarks/gpu_estimate.py [--study jobs/gpu-h200.toml] [--workers 4] [--chars-per-token 2.976]

Three limits, the largest of which is the estimate (every run to the end of its schedule; early stopping
ends many sooner):
* the GPU: every run's FLOPs (training: `ModelShape.flops_per_token`, evaluation a third per token, as the
  dry run's `CostModel`) at `mfu` of the measured peak, all workers together;
* the workers: each step takes at least `step_floor_s` of a worker's CPU (eager PyTorch launches every kernel
  from Python), and each run `run_overhead_s` more (setup, evaluations, test loss, checkpoint), W at a time;
* the longest chain: a pretraining run, then its longest fine-tune.
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from effdata.spec import StudyRun
from effdata.study.cost import CostModel
from effdata.study.study import load_study, study_runs

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class GpuAssumptions:
    # bf16: 8192³ matmuls on the lent H200, 769-798 TFLOP/s (/work/.library/device/KINDS.md). fp32 without
    # TF32 (evaluation): the datasheet's 67 TFLOP/s, not measured.
    peak_bf16: float = 790e12
    peak_fp32: float = 67e12
    # Assumed: widths of 128-256 keep an H200 mostly idle; nanoGPT-style GPT-2 small reaches 30-50% with
    # compile, these models run eager at 1/10-1/40 of its FLOPs per token. The bf16 matmuls of a step are
    # not the problem (16,384 x 256 x 768 is ~8 µs at the peak); its many memory-bound elementwise kernels
    # and the gaps between launches are.
    mfu: float = 0.05
    # Evaluation is fp32 without TF32 (docs/notes/issue-16.md): its matmuls run on the CUDA cores, 12 times
    # slower per FLOP than the tensor cores, so they dominate its time and use more of their (lower) peak.
    eval_mfu: float = 0.20
    step_floor_s: float = 0.004    # ~300-400 eager kernel launches a step at ~10 µs each
    run_overhead_s: float = 5.0


def run_seconds(run: StudyRun, cost: CostModel, a: GpuAssumptions) -> tuple[float, float]:
    """(GPU seconds, worker seconds) of one run at the assumptions."""
    gpu = cost.train_flops(run) / (a.mfu * a.peak_bf16) + cost.eval_flops(run) / (a.eval_mfu * a.peak_fp32)
    schedule = cost.schedule(run)
    worker = (schedule.total_steps + schedule.branch_steps) * a.step_floor_s + a.run_overhead_s
    return gpu, max(gpu, worker)


def estimate(runs: list[StudyRun], cost: CostModel, workers: int, a: GpuAssumptions) -> dict:
    per_run = {r.run_id: run_seconds(r, cost, a) for r in runs}
    gpu = sum(g for g, _ in per_run.values())
    worker = sum(w for _, w in per_run.values())
    chain = max((per_run[p.run_id][1] + max((per_run[f.run_id][1] for f in runs if p.run_id in f.depends_on),
                                             default=0.0) for p in runs if p.mode == "pretrain"), default=0.0)
    by_size: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for r in runs:
        by_size[r.spec.size][0] += cost.train_flops(r) + cost.eval_flops(r)
        by_size[r.spec.size][1] += per_run[r.run_id][1]
        by_size[r.spec.size][2] += 1
    return {"runs": len(runs), "flops": sum(v[0] for v in by_size.values()), "gpu_s": gpu,
            "workers_s": worker / workers, "chain_s": chain, "wall_s": max(gpu, worker / workers, chain),
            "by_size": dict(by_size)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--study", type=Path, default=REPO / "jobs" / "gpu-h200.toml")
    p.add_argument("--pretrain", nargs="+")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--chars-per-token", type=float, default=2.976,
                   help="of the target's train split (python at V = 2,048: 8,919,852 / 2,997,237)")
    p.add_argument("--mfu", type=float, default=GpuAssumptions.mfu)
    p.add_argument("--step-floor-ms", type=float, default=1e3 * GpuAssumptions.step_floor_s)
    a = p.parse_args(argv)
    study = load_study(a.study)
    runs = study_runs(study, a.pretrain or study.pretrain.corpora)
    cost = CostModel(chars_per_token=a.chars_per_token, vocab_size=study.vocab_size or 2048)
    assume = GpuAssumptions(mfu=a.mfu, step_floor_s=a.step_floor_ms / 1e3)
    e = estimate(runs, cost, a.workers, assume)
    print(f"{study.name}: {e['runs']} runs, {e['flops']:.2e} FLOPs (training and evaluation, every run to its end)")
    print(f"assumed: {assume.mfu:.0%} of {assume.peak_bf16 / 1e12:.0f} TFLOP/s bf16 (training) and "
          f"{assume.eval_mfu:.0%} of {assume.peak_fp32 / 1e12:.0f} TFLOP/s fp32 (evaluation) for the whole GPU, "
          f"{assume.step_floor_s * 1e3:.1f} ms a step and {assume.run_overhead_s:.0f} s a run for each worker")
    print("| size | runs | FLOPs | worker-seconds |\n|---|---|---|---|")
    for size, (flops, seconds, n) in e["by_size"].items():
        print(f"| {size} | {n:.0f} | {flops:.2e} | {seconds:,.0f} |")
    print(f"GPU-bound {e['gpu_s']:,.0f} s; worker-bound {e['workers_s']:,.0f} s at {a.workers} workers; longest chain "
          f"{e['chain_s']:,.0f} s -> about {e['wall_s'] / 60:.1f} min")


if __name__ == "__main__":
    main()
