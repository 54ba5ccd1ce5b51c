"""Measurement (not a test): two studies' from-scratch points at the same shapes, side by side.

    python benchmarks/scratch_compare.py analysis/cpu-v2/results.csv analysis/cpu-v3/results.csv
    python benchmarks/scratch_compare.py analysis/cpu-v3/results.csv analysis/cpu/results.csv --all

`--all`: every row (pretraining and its mid-run checkpoints, fine-tunes), not only the from-scratch ones,
also keyed on mode and pretraining name, with the mean difference by mode and by pretraining name.

Joins the seed-0 from-scratch rows of two results tables on (n_layer, d_model, data size in characters,
to 3 digits) and prints each point's loss, why it stopped (`stopped` in tables from before issue 23,
`stop_reason` after), best step, steps trained (branches included) and wall seconds; then the mean
relative loss difference by how the first table's run stopped, and the totals of steps and seconds.
"""
from __future__ import annotations

import argparse

import pandas as pd

KEY = ["n_layer", "d_model", "chars"]
ALL_KEY = ["mode", "pretrain", *KEY]


def scratch_points(path: str, every_mode: bool = False) -> pd.DataFrame:
    t = pd.read_csv(path)
    modes = t["mode"].notna() if every_mode else t["mode"] == "scratch"
    t = t[modes & (t["seed"] == 0) & (t["status"] == "ok")].copy()
    t["chars"] = t["data_chars"].round(-3)
    t["why"] = t["stop_reason"] if "stop_reason" in t else t["stopped"]
    t["trained"] = t["steps"] + (t["branch_steps"].fillna(0) if "branch_steps" in t else 0)
    return t[["size", "mode", "pretrain", *KEY, "loss", "why", "best_step", "trained", "wall_time"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--all", action="store_true", help="fine-tunes too, keyed on mode and pretraining name")
    args = parser.parse_args()
    key = ALL_KEY if args.all else KEY
    j = scratch_points(args.first, args.all).merge(scratch_points(args.second, args.all), on=key, suffixes=("_1", "_2"))
    j["diff"] = j["loss_2"] / j["loss_1"] - 1
    pd.set_option("display.width", 200)
    print(j.sort_values(key).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    for by in (["why_1", "mode", "pretrain"] if args.all else ["why_1"]):
        print(f"\nmean relative loss difference (second / first - 1) by {by}:")
        print(j.groupby(by)["diff"].agg(["mean", "min", "max", "count"]).to_string(float_format=lambda x: f"{x:+.4f}"))
    print(f"\nsteps trained {j['trained_1'].sum():,.0f} / {j['trained_2'].sum():,.0f}; "
          f"seconds {j['wall_time_1'].sum():,.0f} / {j['wall_time_2'].sum():,.0f}")


if __name__ == "__main__":
    main()
