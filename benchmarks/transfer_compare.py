"""Measurement (not a test): the transfer laws of several analyses side by side, e.g. v4 and v4 with its
fine-tunes at a lower learning rate (jobs/cpu-ft-lr-*.toml, analysis/cpu-ft-lr):

    python benchmarks/transfer_compare.py analysis/cpu/fits.json=x1 analysis/cpu-ft-lr/quarter/fits.json=x0.25 \
        analysis/cpu-ft-lr/eighth/fits.json=x0.125 analysis/cpu-ft-lr/best/fits.json=best

For each pretraining name (`--pretrain`, default text and text+code) and each analysis: β and α with their
intervals, k, the points fitted (and how many of them were extrapolated or ossified), β by least squares,
the range of β with each N left out (Huber and least squares, from the audit) and the audit's warnings on it;
then each analysis's D_T over the first one's at every size and D_F (`effective.csv` beside each fits.json).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from effdata.fmt import sig


def law_row(label: str, fits: dict, pretrain: str) -> str:
    law = fits["transfer"].get(pretrain)
    if not law or not law.get("fitted"):
        return f"| {label} | not fitted: {(law or {}).get('reason', 'no such pretraining')} |||||||"
    ci = law["intervals"]
    audit = next((a for a in fits.get("audit", {}).get("laws", []) if a["law"] == f"transfer law '{pretrain}'"), {})
    out = [a for a in audit.get("left_out", []) if a["group"] == "N" and a["estimates"]["beta"] is not None]
    huber = [a["estimates"]["beta"] for a in out]
    squares = [a["other"]["beta"] for a in out if a["other"].get("beta") is not None]
    span = lambda xs: f"{sig(min(xs), 2)} to {sig(max(xs), 2)}" if xs else "—"  # noqa: E731
    other = audit.get("other_estimate", {}).get("beta")
    interval = lambda key: f"{sig(law[key], 2)} [{sig(ci[key][0], 2)}, {sig(ci[key][1], 2)}]"  # noqa: E731
    cells = [label, interval("beta"), interval("alpha"), sig(law["k"], 3),
             f"{law['n_points']} ({law['n_extrapolated']} extrapolated, {law['n_ossified']} ossified)",
             "—" if other is None else sig(other, 2), f"{span(huber)} / {span(squares)}",
             str(len(audit.get("warnings", [])))]
    return "| " + " | ".join(cells) + " |"


def dt_ratios(first: Path, other: Path, pretrain: str) -> pd.DataFrame:
    """D_T of `other`'s analysis over `first`'s, by D_F (rows) and size (columns, in order of N)."""
    key = ["pretrain", "size", "d_f"]
    a, b = (pd.read_csv(path.parent / "effective.csv") for path in (first, other))
    both = a.merge(b, on=key, suffixes=("_first", "_other"))
    both = both[both["pretrain"] == pretrain].sort_values("n_params_first")
    both["ratio"] = both["d_t_other"] / both["d_t_first"]
    sizes = list(dict.fromkeys(both["size"]))
    return both.pivot_table(index="d_f", columns="size", values="ratio")[sizes]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fits", nargs="+", help="FITS.json[=LABEL]")
    parser.add_argument("--pretrain", nargs="+", default=["text", "text+code"])
    args = parser.parse_args(argv)
    analyses = []   # (label, fits.json's path, its content), in the order given
    for given in args.fits:
        path, _, label = given.partition("=")
        analyses.append((label or path, Path(path), json.loads(Path(path).read_text())))
    for pretrain in args.pretrain:
        print(f"\n**{pretrain}**\n")
        print("| analysis | β [interval] | α [interval] | k | points | β least squares | β, each N out "
              "(Huber / least squares) | audit warnings |")
        print("|---|---|---|---|---|---|---|---|")
        for label, _, fits in analyses:
            print(law_row(label, fits, pretrain))
    (first_label, first_path, _), *others = analyses
    for pretrain in args.pretrain:
        for label, path, _ in others:
            print(f"\nD_T of {label} over {first_label}, {pretrain} (negative: one of the two ossified):\n")
            print(dt_ratios(first_path, path, pretrain).round(2).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
