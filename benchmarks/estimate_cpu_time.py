"""Estimate (not a test) the wall time of a study on this CPU machine, before running it; no torch.

    python benchmarks/estimate_cpu_time.py jobs/shape.toml --pretrain text --workers 2 \
        --speed s200k-l1=28037 s200k-l2=30817 s200k-l4=27431 s200k-l8=18453 s200k-l16=17150 \
        --calibrate analysis/quick/results.csv analysis/cpu-v2/results.csv \
        --calibration-speed n25k=60165 n50k=50245 n100k=40268 n200k=26518 n500k=15006

The dry run (`python -m effdata.run --dry-run`) gives each run's tokens and FLOPs from the cost model
(`effdata.study.cost.CostModel`, the same schedule the run uses), but FLOPs are a poor clock on a CPU: at
equal N a 16-layer model trains at ~0.6× the tokens per second of a 4-layer one (more, smaller matmuls
and more attention per token). So this script puts seconds on the cost model's numbers:

* `--speed SIZE=TOK/S`: training tokens per second of one step, one thread, batch 16, vocabulary 2,048,
  as `python -m effdata.bench --sizes ... --no-compile --no-trainer --threads 1 --batch 16 --vocab 2048`
  measures it (column `ours tok/s`), for every size of the study and of the calibration tables;
* `--calibrate TABLE ...`: committed results tables of studies that ran on this machine with 2 workers.
  Their runs fix three factors by least squares, wall = (a_pretrain or a_other) · tokens trained / speed +
  e · tokens evaluated / speed (a: what a run pays beyond the bench's step, e: what an evaluated token
  costs, in training tokens); and, per mode, the share of its planned schedule a run actually trains
  before early stopping ends it;
* the planned runs then get seconds from the cost model's tokens (trained, evaluated) × that share, and
  the runner's order (pretraining first, then the most FLOPs first, each run when its dependencies are
  done) is simulated on `--workers` workers.
* a run with `length_search = "branches"` has no share: its steps are simulated on its own schedule
  (`search_steps`), assuming its best length is `--best-epochs` epochs over its data (scratch and finetune;
  the defaults are the medians of v2's early-stopped runs, analysis/cpu-v2: 27 and 9) and that it stops
  `branch_patience` lengths later (or at its cap).

Prints the seconds per size and mode, the run-minutes and the simulated wall time.
"""
from __future__ import annotations

import argparse
import heapq
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from effdata.spec import StudyRun  # noqa: E402
from effdata.study.cost import CostModel  # noqa: E402
from effdata.study.study import load_study, study_runs  # noqa: E402

TEST_TOKENS = 131072     # TrainSettings.test_tokens: every committed study used the default


def _speeds(pairs: list[str]) -> dict[str, float]:
    return {name: float(value) for name, value in (pair.split("=", 1) for pair in pairs)}


def _evaluated_tokens(rows: pd.DataFrame, eval_tokens: int) -> np.ndarray:
    """Tokens a finished run evaluated: every evaluation it made, the test loss, a pretraining's own loss."""
    evaluations = rows["steps"] // rows["eval_interval"] + 1 + (rows["steps"] % rows["eval_interval"] > 0)
    own = np.where(rows["mode"] == "pretrain", eval_tokens, 0)
    return (evaluations * eval_tokens + TEST_TOKENS + own).to_numpy(float)


def calibrate(tables: list[Path], speeds: dict[str, float], eval_tokens: dict[Path, int]) -> dict:
    """Least-squares factors (a_pretrain, a_other, e) and the trained share of the schedule per mode."""
    frames = []
    for path in tables:
        rows = pd.read_csv(path)
        # a mid-run checkpoint's row (`<id>@10tpp`) has no time of its own: its run's row holds it
        rows = rows[(rows["status"] == "ok") & rows["wall_time"].notna()].copy()
        rows["evaluated"] = _evaluated_tokens(rows, eval_tokens[path])
        frames.append(rows)
    rows = pd.concat(frames, ignore_index=True)
    speed = rows["size"].map(speeds).to_numpy(float)
    pretrain = (rows["mode"] == "pretrain").to_numpy()
    design = np.column_stack([np.where(pretrain, rows["tokens_seen"], 0) / speed,
                              np.where(pretrain, 0, rows["tokens_seen"]) / speed, rows["evaluated"] / speed])
    factors, *_ = np.linalg.lstsq(design, rows["wall_time"].to_numpy(float), rcond=None)
    predicted = design @ factors
    share = (rows["steps"] / rows["total_steps"]).groupby(rows["mode"]).mean().to_dict()
    return {"a_pretrain": factors[0], "a_other": factors[1], "e": factors[2], "share": share,
            "runs": len(rows), "total_error": predicted.sum() / rows["wall_time"].sum() - 1,
            "median_abs_error": float(np.median(np.abs(predicted / rows["wall_time"] - 1)))}


def search_steps(run: StudyRun, cost: CostModel, best_epochs: dict[str, float]) -> tuple[int, int]:
    """A length search's (steps trained, evaluations), trunk and branches, if its best length is the first it
    tries at or past `best_epochs[mode]` epochs and it stops `branch_patience` lengths later or at its cap."""
    schedule, s = cost.schedule(run), run.spec.settings
    data_tokens = run.spec.data_tokens or (run.spec.data_chars or 0) / cost.chars_per_token
    best = best_epochs[run.mode] * data_tokens / schedule.tokens_per_step
    lengths = list(schedule.lengths)
    k = next((i for i, b in enumerate(lengths) if b.total_steps >= best), len(lengths))
    tried = lengths[:k + 1 + s.branch_patience]
    if len(tried) == len(lengths) and k + s.branch_patience >= len(lengths):   # the trunk reaches its cap
        return schedule.total_steps + sum(b.total_steps - schedule.branch_start(b) for b in tried), len(tried) + 2
    trunk = schedule.branch_start(tried[-1])
    return trunk + sum(b.total_steps - schedule.branch_start(b) for b in tried), len(tried) + 1


def run_seconds(run: StudyRun, cost: CostModel, factors: dict, speeds: dict[str, float],
                best_epochs: dict[str, float]) -> float:
    share = factors["share"].get(run.mode, 1.0)
    a = factors["a_pretrain"] if run.mode == "pretrain" else factors["a_other"]
    schedule = cost.schedule(run)
    every = schedule.eval_interval
    steps = max(1, round(share * schedule.total_steps))
    evaluations = 1 + steps // every + (1 if steps % every else 0)
    if schedule.lengths:
        steps, evaluations = search_steps(run, cost, best_epochs)
    s = run.spec.settings
    evaluated = evaluations * s.eval_tokens + s.test_tokens + (s.eval_tokens if run.mode == "pretrain" else 0)
    return (a * steps * schedule.tokens_per_step + factors["e"] * evaluated) / speeds[run.spec.size]


def simulate(runs: list[StudyRun], seconds: dict[str, float], flops: dict[str, float], workers: int) -> float:
    """The runner's order (study.runner.schedule) on `workers` workers: the wall time in seconds."""
    order = sorted(runs, key=lambda r: (r.mode != "pretrain", -flops[r.run_id]))
    done: set[str] = set()
    running: list[tuple[float, str]] = []
    now = 0.0
    while order or running:
        for run in list(order):
            if len(running) >= workers:
                break
            if all(d in done for d in run.depends_on):
                heapq.heappush(running, (now + seconds[run.run_id], run.run_id))
                order.remove(run)
        now, finished = heapq.heappop(running)
        done.add(finished)
    return now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--pretrain", nargs="+")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--speed", nargs="+", required=True, metavar="SIZE=TOK/S")
    parser.add_argument("--calibrate", nargs="+", type=Path, required=True, metavar="RESULTS_CSV")
    parser.add_argument("--calibration-speed", nargs="+", required=True, metavar="SIZE=TOK/S")
    parser.add_argument("--best-epochs", nargs=2, type=float, default=(27.0, 9.0), metavar=("SCRATCH", "FINETUNE"),
                        help="a length search's best length in epochs (default: v2's early-stopped medians)")
    parser.add_argument("--chars-per-token", type=float, default=None,
                        help="of the target's train split (default: the calibration tables' median)")
    args = parser.parse_args()

    study = load_study(args.study)
    runs = study_runs(study, args.pretrain)
    speeds = _speeds(args.speed) | _speeds(args.calibration_speed)
    eval_tokens = {p: _study_eval_tokens(p) for p in args.calibrate}
    factors = calibrate(args.calibrate, speeds, eval_tokens)
    tables = pd.concat([pd.read_csv(p) for p in args.calibrate])
    scratch = tables[(tables["mode"] != "pretrain") & tables["data_tokens"].notna()]
    cpt = args.chars_per_token or float((scratch["data_chars"] / scratch["data_tokens"]).median())
    cost = CostModel(chars_per_token=cpt, vocab_size=study.vocab_size or 2048)
    best_epochs = {"scratch": args.best_epochs[0], "finetune": args.best_epochs[1]}
    seconds = {r.run_id: run_seconds(r, cost, factors, speeds, best_epochs) for r in runs}
    flops = {r.run_id: cost.flops(r) for r in runs}
    print(f"calibration on {factors['runs']} runs: a_pretrain {factors['a_pretrain']:.2f}, a_other "
          f"{factors['a_other']:.2f}, e {factors['e']:.2f}; total off by {100 * factors['total_error']:+.1f}%, median "
          f"run off by {100 * factors['median_abs_error']:.0f}%; trained share of the schedule "
          + ", ".join(f"{mode} {share:.2f}" for mode, share in sorted(factors["share"].items())))
    table = pd.DataFrame({"size": [r.spec.size for r in runs], "mode": [r.mode for r in runs],
                          "seconds": [seconds[r.run_id] for r in runs]})
    per_size = table.pivot_table(index="size", columns="mode", values="seconds", aggfunc="sum").fillna(0)
    per_size["total"] = per_size.sum(axis=1)
    per_size = per_size.loc[[s for s in study.sizes if s in per_size.index]]
    print(f"\n{len(runs)} runs, chars/token {cpt:.2f}; run-seconds per size and mode:\n")
    print(per_size.round(0).to_string())
    total = table["seconds"].sum()
    wall = simulate(runs, seconds, flops, args.workers)
    print(f"\nrun-minutes {total / 60:.1f}; simulated wall time on {args.workers} workers: {wall / 60:.1f} min")


def _study_eval_tokens(path: Path) -> int:
    """A committed table's eval_tokens, from its study file: analysis/<folder> is jobs/<folder>.toml's
    (analysis/cpu is jobs/cpu.toml, named "cpu-v4"; the study names carry versions, the folders do not)."""
    job = REPO / "jobs" / f"{path.parent.name}.toml"
    if not job.is_file():
        raise SystemExit(f"no {job.relative_to(REPO)} for the table {path}")
    return load_study(job).train.eval_tokens

if __name__ == "__main__":
    main()
