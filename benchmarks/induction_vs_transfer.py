"""Measurement (not a test): a checkpoint series' probes beside its zero-shot loss and its D_T, per size.

    .venv/bin/python benchmarks/induction_vs_transfer.py --probe analysis/cpu-fixed-tokens/series/probe.csv \
        --results analysis/cpu-fixed-tokens/series/results.csv \
        --effective analysis/cpu-fixed-tokens/series/effective.csv [--d-f 3e4] [--threshold 0.5]

`--probe` is `python -m effdata.probe`'s table of one study's checkpoints, `--results` and `--effective` the
analysis of the same study's fine-tunes (each checkpoint's fine-tunes on `--d-f` characters: their `init_loss` is
the checkpoint's zero-shot loss on the target, effective.csv their D_T). Prints, per size, a row per checkpoint
(tokens, zero-shot loss, the induction score and its split, the in-context score, the early and late losses, D_T),
then per size the three intervals between consecutive checkpoints that say whether the fall in zero-shot loss is
the induction score's rise: where the score first passes `--threshold`, where the zero-shot loss falls most per
unit of ln(tokens), where ln D_T rises most per unit of ln(tokens); and over the first, how much the late and early
positions' losses fell (analysis/cpu-fixed-tokens/series/PREDICTION.md).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from effdata.analysis.core.markdown import markdown_table  # noqa: E402
from effdata.fmt import si, sig  # noqa: E402

SLACK = 0.005   # a fine-tune's checkpoint and a probed one are the same when their tokens agree within 0.5 %


def series(probe: pd.DataFrame, results: pd.DataFrame, effective: pd.DataFrame, d_f: float) -> pd.DataFrame:
    """A row per (size, checkpoint): the probe's row with its fine-tunes' zero-shot loss and D_T on `d_f`."""
    ft = results[(results["mode"] == "finetune") & np.isclose(results["data_chars"], d_f, rtol=0.01)]
    ft = ft.assign(tokens=ft["pretrain_tokens_per_param"] * ft["n_params"])
    eff = effective[np.isclose(effective["d_f"], d_f, rtol=0.01)]
    eff = eff.assign(tokens=eff["pretrain_tokens_per_param"] * eff["n_params"])
    rows = []
    for _, p in probe.iterrows():
        near = lambda t: ((t["size"] == p["size"]) & (t["pretrain"].str.split("@").str[0] == p["corpus"])  # noqa: E731
                          & ((t["tokens"] - p["tokens"]).abs() <= SLACK * p["tokens"]))
        zero_shot, d_t = ft.loc[near(ft), "init_loss"], eff.loc[near(eff), "d_t"]
        rows.append({**p.to_dict(), "zero_shot": zero_shot.iloc[0] if len(zero_shot) else math.nan,
                     "d_t": d_t.iloc[0] if len(d_t) else math.nan})
    return pd.DataFrame(rows).sort_values(["corpus", "n_params", "tokens"]).reset_index(drop=True)


def intervals(one: pd.DataFrame, threshold: float) -> dict[str, object]:
    """One size's checkpoints (sorted by tokens): the interval where the induction score first passes
    `threshold`, and those of the steepest fall in zero-shot loss and rise in ln D_T per unit of ln(tokens)."""
    t = one["tokens"].to_numpy(float)
    span = np.diff(np.log(t))
    label = lambda i: f"{si(t[i])}–{si(t[i + 1])}" if i is not None else "—"  # noqa: E731
    passed = np.flatnonzero(one["induction"].to_numpy() > threshold)
    first = int(passed[0]) - 1 if len(passed) and passed[0] > 0 else None
    fall = -np.diff(one["zero_shot"].to_numpy(float)) / span
    rise = np.diff(np.log(one["d_t"].clip(lower=1).to_numpy(float))) / span
    steepest = lambda x: int(np.nanargmax(x)) if np.isfinite(x).any() else None  # noqa: E731
    out = {"pretraining": one["corpus"].iloc[0], "size": one["size"].iloc[0], "induction passes": label(first),
           "steepest zero-shot fall": label(steepest(fall)), "steepest D_T rise": label(steepest(rise))}
    if first is not None:
        late = one["late_loss"].iloc[first] - one["late_loss"].iloc[first + 1]
        early = one["early_loss"].iloc[first] - one["early_loss"].iloc[first + 1]
        out["late fall / early fall there"] = f"{sig(late)} / {sig(early)}"
    return out


COLUMNS = [("tokens", si), ("zero_shot", sig), ("induction", sig), ("order_gain", sig), ("copy_gain", sig),
           ("in_context", sig), ("early_loss", sig), ("late_loss", sig), ("d_t", sig)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--probe", type=Path, required=True)
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--effective", type=Path, required=True)
    p.add_argument("--d-f", type=float, default=3e4)
    p.add_argument("--threshold", type=float, default=0.5)
    a = p.parse_args(argv)
    table = series(pd.read_csv(a.probe), pd.read_csv(a.results), pd.read_csv(a.effective), a.d_f)
    found = []
    for (corpus, size), one in table.groupby(["corpus", "size"], sort=False):
        print(f"\n{corpus}, {size} (N = {int(one['n_params'].iloc[0]):,})\n")
        names = [name for name, _ in COLUMNS]
        rows = [[f(v) for (_, f), v in zip(COLUMNS, row)] for row in one[names].itertuples(index=False)]
        print(markdown_table(names, rows))
        found.append(intervals(one, a.threshold))
    keys = list(dict.fromkeys(k for row in found for k in row))
    print("\n" + markdown_table(keys, [[row.get(k, "—") for k in keys] for row in found]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
