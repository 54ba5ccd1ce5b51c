"""How close a study ran to the benchmark's step rate, where its time went, and whether its losses held.

    python benchmarks/bench_study.py runs/quick/results.csv --bench n25k=61900,n100k=39600,n500k=13900
    python benchmarks/bench_study.py runs/quick/results.csv --measure            # runs the bench itself
    python benchmarks/bench_study.py NEW.csv --bench ... --compare analysis/quick/results.csv --tolerance 0.002

End to end = sum over runs of tokens_seen / (the bench's eager tokens/s of the run's size) against the
sum of the runs' wall_time: 100% means every run ran, start to finish, at the bench's step rate (issue
13's figure). Printed per mode and over all runs, with the sums of the `time_*` columns when the table
has them. `--measure` times our eager step (`effdata.training.bench`, no compile, no Trainer) at the
table's batch size and thread count for each size in the table, interleaved as `python -m effdata.bench`
does; give `--bench` figures from `python -m effdata.bench --batch B --threads 1` instead to reuse a run.

`--compare` sets the table beside a reference table run by run (same run ids): the test loss (`loss`)
difference, whether the best step is the same, and the runs outside their tolerance or with another best
step. A run's tolerance is `--tolerance` (nats; default 5e-4, the evaluation change) when its training
ran the same eager step in both tables, and `--kernel-tolerance` (default 1e-2) when it or the pretraining
it started from was compiled in either table: another kernel's rounding makes bf16 training another
sample of the same run (docs/notes/issue-13.md measures both).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

TIME_COLUMNS = ["time_setup", "time_compile", "time_steps", "time_evals", "time_test", "time_checkpoint",
                "time_branches", "time_other"]


def parse_bench(text: str) -> dict[str, float]:
    """"n25k=61900,n100k=39600" -> {"n25k": 61900.0, ...}"""
    return {k.strip(): float(v) for k, v in (item.split("=") for item in text.split(",") if item.strip())}


def measure_bench(sizes: list[str], batch: int, threads: int, steps: int = 8, rounds: int = 5) -> dict[str, float]:
    """Our eager step's tokens/s per size, as `python -m effdata.bench --no-compile --no-trainer` measures it."""
    from effdata.data.tokenizer import DEFAULT_VOCAB_SIZE
    from effdata.spec import get_shape
    from effdata.training import device as devmod
    from effdata.training.bench import bench_size

    dev = devmod.pick_device("cpu")
    devmod.set_threads(threads)
    out = {}
    for size in sizes:
        r = bench_size(get_shape(size), DEFAULT_VOCAB_SIZE, batch, steps, rounds, dev, compile=False, trainer=False, eager=False)
        out[size] = r["ours"]
        print(f"bench {size}: {r['ours']:,.0f} tok/s (batch {batch}, threads {threads}, "
              f"load average {os.getloadavg()[0]:.2f})", flush=True)
    return out


def end_to_end(table: pd.DataFrame, bench: dict[str, float]) -> pd.DataFrame:
    """Per mode and 'all': runs, wall seconds, bench seconds, end-to-end % of the bench, time_* sums."""
    ok = table[table.get("status", "ok") == "ok"].copy()
    missing = sorted(set(ok["size"]) - set(bench))
    if missing:
        raise SystemExit(f"no bench figure for size(s) {missing}")
    ok["bench_s"] = ok["tokens_seen"] / ok["size"].map(bench)
    rows = []
    for mode, group in [*ok.groupby("mode"), ("all", ok)]:
        row = {"mode": mode, "runs": len(group), "wall_s": group["wall_time"].sum(), "bench_s": group["bench_s"].sum()}
        row["end_to_end_%"] = 100 * row["bench_s"] / row["wall_s"]
        row.update({c.removeprefix("time_") + "_s": group[c].sum() for c in TIME_COLUMNS if c in group})
        if "time_steps" in group:
            row["steps_%_of_bench"] = 100 * row["bench_s"] / group["time_steps"].sum()
        rows.append(row)
    return pd.DataFrame(rows)


def compare(table: pd.DataFrame, reference: pd.DataFrame, tolerance: float, kernel_tolerance: float) -> pd.DataFrame:
    """Runs in both tables: test loss then and now, the difference, best steps, and whether it holds."""
    cols = ["run_id", "loss", "best_step", "steps", "compiled", "init_from"]
    both = table[cols].merge(reference[cols], on="run_id", suffixes=("", "_ref"))
    compiled = set(table.loc[table["compiled"].astype(bool), "run_id"]) | set(
        reference.loc[reference["compiled"].astype(bool), "run_id"])
    pretrain = both["init_from"].fillna("").astype(str).map(lambda path: Path(path).parent.name)
    both["kernels"] = both["run_id"].isin(compiled) | pretrain.isin(compiled)
    both["diff"] = both["loss"] - both["loss_ref"]
    both["same_best_step"] = both["best_step"] == both["best_step_ref"]
    both["within"] = both["diff"].abs() <= both["kernels"].map({True: kernel_tolerance, False: tolerance})
    return both.drop(columns=["init_from", "init_from_ref"])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("table", help="results.csv of the study")
    p.add_argument("--bench", help="size=tokens/s,... (our eager step, from python -m effdata.bench)")
    p.add_argument("--measure", action="store_true", help="measure the bench rates here and now")
    p.add_argument("--threads", type=int, default=1, help="threads for --measure (the runner's: 1 per worker)")
    p.add_argument("--compare", help="reference results.csv (same run ids)")
    p.add_argument("--tolerance", type=float, default=5e-4, help="test-loss tolerance (nats), same eager step")
    p.add_argument("--kernel-tolerance", type=float, default=1e-2,
                   help="test-loss tolerance (nats) where the run or its pretraining was compiled in either table")
    a = p.parse_args(argv)
    table = pd.read_csv(a.table)
    if a.bench:
        bench = parse_bench(a.bench)
    elif a.measure:
        batch = int(table["batch_size"].dropna().iloc[0])
        bench = measure_bench(sorted(set(table["size"]), key=list(table["size"]).index), batch, a.threads)
    else:
        raise SystemExit("give --bench size=tok/s,... or --measure")
    pd.set_option("display.width", 200)
    print(end_to_end(table, bench).round(1).to_string(index=False))
    if a.compare:
        both = compare(table, pd.read_csv(a.compare), a.tolerance, a.kernel_tolerance)
        same = ~both["kernels"]
        print(f"\n{len(both)} runs in both tables, {int(same.sum())} on the same eager step: test loss within "
              f"tolerance in {int(both['within'].sum())} (max |diff| {both.loc[same, 'diff'].abs().max():.1e} on the "
              f"same step, {both.loc[~same, 'diff'].abs().max():.1e} where compiled); same best step in "
              f"{int(both['same_best_step'].sum())} ({100 * both['same_best_step'].mean():.0f}%); "
              f"bit-identical {int((both['diff'] == 0).sum())}")
        print(both.to_string(index=False))


if __name__ == "__main__":
    main()
