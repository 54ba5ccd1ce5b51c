"""Measurement (not a test): a transfer law's exponents with any set of sizes left out at once, both estimators.

    python benchmarks/leave_sizes_out.py analysis/cpu-w1m analysis/cpu-w1m/best-scratch-lr \
        --pretrain text text@10tpp --drop w1m w500k w500k,w1m

The audit leaves out one N at a time; this refits on the points of each report's shown law (its folder's
effective.csv, chosen by the same rule: core.fit.select_fit_points, then the interpolated D_E where the headline
was fitted) without every size
named in one `--drop` group (comma-separated), by Huber (δ = 0.1, the reports') and by least squares, and prints
α and β with the points left. With no group dropped it gives the report's headline and least-squares rows, and
with one size the audit's left-out rows: a check that it reads what the reports do. Used for analysis/cpu-w1m's
"the top two sizes together" (6 December). A second or less per table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from effdata.analysis.audit.transfer import least_squares, refit_exponents  # noqa: E402
from effdata.analysis.core.fit import DEFAULT_HUBER_DELTA, headline_points, select_fit_points  # noqa: E402

FLAGS = ("extrapolated", "beyond_reach", "no_scratch", "low_data", "ossified")


def headline(folder: Path, name: str) -> pd.DataFrame:
    """The points of `name`'s shown law in the report at `folder`: its headline's (interpolated D_E), else, where
    fits.json says the headline was not fitted, the row including extrapolated D_E (as core.fit.law_points)."""
    table = pd.read_csv(folder / "effective.csv")
    table[list(FLAGS)] = table[list(FLAGS)].astype(bool)
    points, _, reason = select_fit_points(table[table["pretrain"] == name], [], name)
    if reason is not None:
        raise SystemExit(f"{folder}: '{name}' has no law: {reason}")
    fitted = json.loads((folder / "fits.json").read_text())["transfer"][name]["fitted"]
    return headline_points(points)[0] if fitted else points


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", help="analysis folders (each with effective.csv)")
    parser.add_argument("--pretrain", nargs="+", default=["text"])
    parser.add_argument("--drop", nargs="+", default=[], help="size groups to leave out, e.g. w1m w500k,w1m")
    args = parser.parse_args(argv)
    for folder in args.folders:
        for name in args.pretrain:
            points = headline(folder, name)
            for group in ["", *args.drop]:
                keep = points[~points["size"].isin([s for s in group.split(",") if s])]
                xs = (keep["d_f"].to_numpy(float), keep["n_params"].to_numpy(float), keep["d_t"].to_numpy(float))
                huber, ls = refit_exponents(*xs, DEFAULT_HUBER_DELTA), least_squares(*xs)
                print(f"{folder}  {name:11s} without {group or '-':12s} {len(keep):2d} points   "
                      f"Huber α {huber['alpha']:6.3f} β {huber['beta']:6.3f}   least squares α {ls['alpha']:6.3f} "
                      f"β {ls['beta']:6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
