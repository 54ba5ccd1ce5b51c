"""Measurement (not a test): what the length search costs against a v2-style run, on real data.

    python benchmarks/search_cost.py --sizes w25k w100k --data-chars 1e5 1e6 --threads 1 --out /tmp/search-cost

For each size and data size, one from-scratch run under v2's rule (jobs/cpu-v2.toml's [train]: cosine, 20
epochs clamped to [100, 1000] steps, early stopping with patience 3 of 20 evaluations) and one under v3's
(jobs/cpu-v3.toml's [train]: the wsd length search from 25 steps, ×1.5, two worse lengths stop it, cap 3,000),
both with the tuned learning rate. Prints each run's test loss, best length, steps trained (trunk and
branches), evaluations, wall seconds and where they went, and the ratios v3 / v2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from effdata.spec import RunSpec  # noqa: E402
from effdata.study.study import load_study  # noqa: E402
from effdata.study.rundata import run_data  # noqa: E402
from effdata.training.train import train_run  # noqa: E402

JOBS = Path(__file__).resolve().parents[1] / "jobs"
KEEP = ("loss", "best_step", "steps", "branch_steps", "stop_reason", "best_is_last", "wall_time", "time_steps",
        "time_branches", "time_evals", "time_test", "time_setup")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["w25k"])
    parser.add_argument("--data-chars", nargs="+", type=float, default=[1e5])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rules = {"v2": load_study(JOBS / "cpu-v2.toml").train, "v3": load_study(JOBS / "cpu-v3.toml").train}
    rows = []
    for size in args.sizes:
        for chars in args.data_chars:
            got = {}
            for name, settings in rules.items():
                spec = RunSpec("scratch", size, 0, "python", data_chars=int(chars), settings=settings)
                m = train_run(spec, run_data(spec), args.out / f"{name}-{size}-{chars:g}", threads=args.threads)
                got[name] = {k: m.get(k, 0) for k in KEEP} | {"evaluations": len(m["evals"])}
                print(json.dumps({"rule": name, "size": size, "data_chars": chars, **got[name]}), flush=True)
            v2, v3 = got["v2"], got["v3"]
            rows.append(f"| {size} | {chars:.0e} | {v2['loss']:.4f} ({v2['stop_reason']}, best {v2['best_step']}) | "
                        f"{v3['loss']:.4f} ({v3['stop_reason']}, best {v3['best_step']}) | "
                        f"{v2['steps'] + v2['branch_steps']} / {v3['steps'] + v3['branch_steps']} | "
                        f"{v2['evaluations']} / {v3['evaluations']} | {v2['wall_time']:.0f} / {v3['wall_time']:.0f} | "
                        f"{v3['wall_time'] / v2['wall_time']:.2f} |")
    print("| size | D (chars) | v2 loss | v3 loss | steps v2 / v3 | evaluations v2 / v3 | seconds v2 / v3 | ×time |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
