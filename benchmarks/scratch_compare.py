"""Measurement (not a test): two studies' from-scratch points at the same shapes, side by side.

    python benchmarks/scratch_compare.py analysis/cpu-v2/results.csv analysis/cpu-v3/results.csv

Joins the seed-0 from-scratch rows of two results tables on (n_layer, d_model, data size in characters,
to 3 digits) and prints each point's loss, why it stopped (`stopped` in tables from before issue 23,
`stop_reason` after), best step, steps trained (branches included) and wall seconds; then the mean
relative loss difference by how the first table's run stopped, and the totals of steps and seconds.
"""
from __future__ import annotations

import argparse

import pandas as pd

KEY = ["n_layer", "d_model", "chars"]


def scratch_points(path: str) -> pd.DataFrame:
    t = pd.read_csv(path)
    t = t[(t["mode"] == "scratch") & (t["seed"] == 0) & (t["status"] == "ok")].copy()
    t["chars"] = t["data_chars"].round(-3)
    t["why"] = t["stop_reason"] if "stop_reason" in t else t["stopped"]
    t["trained"] = t["steps"] + (t["branch_steps"].fillna(0) if "branch_steps" in t else 0)
    return t[["size", *KEY, "loss", "why", "best_step", "trained", "wall_time"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first")
    parser.add_argument("second")
    args = parser.parse_args()
    j = scratch_points(args.first).merge(scratch_points(args.second), on=KEY, suffixes=("_1", "_2"))
    j["diff"] = j["loss_2"] / j["loss_1"] - 1
    pd.set_option("display.width", 200)
    print(j.sort_values(KEY).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print("\nmean relative loss difference (second / first - 1) by how the first run stopped:")
    print(j.groupby("why_1")["diff"].agg(["mean", "count"]).to_string(float_format=lambda x: f"{x:+.4f}"))
    print(f"\nsteps trained {j['trained_1'].sum():,.0f} / {j['trained_2'].sum():,.0f}; "
          f"seconds {j['wall_time_1'].sum():,.0f} / {j['wall_time_2'].sum():,.0f}")


if __name__ == "__main__":
    main()
