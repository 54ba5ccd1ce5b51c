"""Measurement (not a test): between two sizes, how much of the change in D_E comes from the fine-tuned loss and
how much from the from-scratch curve it is read on.

    .venv/bin/python benchmarks/decompose_dt.py TABLE --pretrain text+code [text ...] [--sizes w200k w500k ...]

D_E(ℓ, c) is the data a from-scratch run on curve c needs to reach loss ℓ, read as the analysis reads it
(core/effective.py: monotone PCHIP inside the measured range, the per-N law outside). Between consecutive sizes
a and b of `--sizes` (default: every size of the table, in order of N), at each D_F:

    ln D_E(ℓ_b, c_b) − ln D_E(ℓ_a, c_a) = [fine-tuned loss] + [from-scratch curve]

with [fine-tuned loss] = ln D_E(ℓ_b, c) − ln D_E(ℓ_a, c) averaged over c = c_a and c = c_b (the two orders of
the change, a Shapley split; their difference is in the last column), and [curve] the rest. A D_E read outside a
curve's measured range is marked `*` (extrapolated: biased low, docs/METHOD.md §3). D_T = D_E − D_F, so a
factor on D_E is a larger factor on D_T when D_T is small beside D_F.

Written for the question analysis/cpu-w1m/to-1e6 left open: text and text+code D_T jump between w200k and
w500k; is that the pretrained models fine-tuning better, or the from-scratch curves of the larger sizes being
flatter (data-limited) where the fine-tunes land?
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from effdata.analysis.core.effective import compute_effective  # noqa: E402
from effdata.analysis.core.markdown import markdown_table  # noqa: E402
from effdata.analysis.core.table import load_results  # noqa: E402
from effdata.fmt import sig  # noqa: E402


def decompose(effective, rows: pd.DataFrame, size_a: str, size_b: str) -> list[list[str]]:
    """One table row per D_F both sizes were fine-tuned at."""
    a, b = rows[rows["size"] == size_a], rows[rows["size"] == size_b]
    curve_a, curve_b = effective.curve_at(a["n_params"].iloc[0]), effective.curve_at(b["n_params"].iloc[0])
    out = []
    for d_f in sorted(set(a["d_f"]) & set(b["d_f"])):
        loss_a = float(a.loc[a["d_f"] == d_f, "loss"].iloc[0])
        loss_b = float(b.loc[b["d_f"] == d_f, "loss"].iloc[0])
        read = {(lk, ck): curve.invert(loss) for lk, loss in (("a", loss_a), ("b", loss_b))
                for ck, curve in (("a", curve_a), ("b", curve_b))}
        ln = {key: np.log(value) for key, (value, _) in read.items()}
        loss_on_a, loss_on_b = ln["b", "a"] - ln["a", "a"], ln["b", "b"] - ln["a", "b"]
        total = ln["b", "b"] - ln["a", "a"]
        from_loss = 0.5 * (loss_on_a + loss_on_b)
        mark = lambda key: sig(read[key][0]) + ("*" if read[key][1] else "")  # noqa: E731
        out.append([f"{size_a} → {size_b}", sig(d_f), f"{loss_a:.3f} → {loss_b:.3f}", mark(("a", "a")),
                    mark(("b", "b")), mark(("b", "a")), mark(("a", "b")), f"×{np.exp(total):.3g}",
                    f"×{np.exp(from_loss):.3g}", f"×{np.exp(total - from_loss):.3g}",
                    f"{loss_on_a - loss_on_b:+.2f}"])
    return out


HEADER = ["sizes", "D_F", "fine-tuned loss", "D_E a", "D_E b", "ℓ_b on c_a", "ℓ_a on c_b", "D_E b / a",
          "from the loss", "from the curve", "order gap (ln)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", type=Path)
    parser.add_argument("--pretrain", nargs="+", required=True)
    parser.add_argument("--sizes", nargs="+", help="sizes in order (default: every size of the table, by N)")
    args = parser.parse_args()
    effective = compute_effective(load_results(pd.read_csv(args.table)))
    table = effective.table
    for pretrain in args.pretrain:
        rows = table[(table["pretrain"] == pretrain)]
        sizes = args.sizes or list(rows.sort_values("n_params")["size"].drop_duplicates())
        body = [row for a, b in zip(sizes, sizes[1:]) for row in decompose(effective, rows, a, b)]
        print(f"\n{pretrain} ({args.table}): D_E of a → b split into the fine-tuned loss's part and the from-scratch "
              "curve's (* read outside the curve's measured range)\n")
        print(markdown_table(HEADER, body))


if __name__ == "__main__":
    main()
