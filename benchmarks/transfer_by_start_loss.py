"""Measurement (not a test): is the data a pretraining transfers set by the loss it starts fine-tuning from?

    .venv/bin/python benchmarks/transfer_by_start_loss.py analysis/cpu-fixed-tokens analysis/cpu-w1m/to-1e6 \
        [--figure analysis/cpu-fixed-tokens/start_loss.png] [--resamples 2000]

Each folder is an analysis (its effective.csv: D_T per fine-tuned point; its results.csv: `init_loss`, the
fine-tune's held-out target loss before its first step, i.e. the pretrained model's zero-shot loss on the target).
A point read in two folders (the same checkpoint's fine-tune) is kept once, from the first. Per pretraining
distribution (text@10tpp counts as text: checkpoints of one run are models of the same pretraining at fewer tokens),
ln D_T is fitted by least squares three ways, on the points read inside the measured from-scratch range with D_T > 0:

    size and tokens:  ln D_T = a + β ln N + α ln D_F + γ ln P      (P: pretraining tokens per parameter)
    start loss:       ln D_T = a + b L0 + α ln D_F                   (L0: init_loss)
    both:             ln D_T = a + b L0 + α ln D_F + c ln N

with each law's RMSE in ln D_T, and c's 90 % interval from a bootstrap over checkpoints (a checkpoint's fine-tunes
share its L0 and its noise, so they are resampled together) and its range with each N left out. A check that can
fail: if N transferred data beyond what the start loss says, c's interval would exclude 0 and the start-loss law
would fit worse than size and tokens. Why ask: on v4's ladder a larger size gained more D_T per pretraining token
(analysis/cpu-fixed-tokens), and D_T against N at one token count keeps its slope; if the start loss carries it,
that is one statement (a larger model's zero-shot loss falls further per token) rather than two.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from effdata.analysis.core.markdown import markdown_table  # noqa: E402
from effdata.fmt import sig  # noqa: E402

LAWS = {"size and tokens": ["log_n", "log_d_f", "log_p"], "start loss": ["init_loss", "log_d_f"],
        "both": ["init_loss", "log_d_f", "log_n"]}
Z_PERCENTILES = (5, 95)


def points(folders: list[str]) -> pd.DataFrame:
    """One row per fine-tuned point with D_T > 0 read inside the measured range: its D_T, N, D_F, tokens per
    parameter, start loss and checkpoint (`cluster`)."""
    tables = []
    for folder in folders:
        effective = pd.read_csv(Path(folder) / "effective.csv")
        runs = pd.read_csv(Path(folder) / "results.csv")
        starts = (runs[(runs["mode"] == "finetune") & (runs["status"] == "ok")]
                  .groupby(["pretrain", "n_params", "data_chars"], as_index=False)["init_loss"].mean()
                  .rename(columns={"data_chars": "d_f"}))
        tables.append(effective.merge(starts, on=["pretrain", "n_params", "d_f"], how="left").assign(folder=folder))
    table = pd.concat(tables, ignore_index=True).drop_duplicates(["pretrain", "n_params", "d_f"])
    table = table[(table["d_t"] > 0) & ~table["extrapolated"].astype(bool) & table["init_loss"].notna()]
    return table.assign(root=table["pretrain"].str.split("@").str[0], log_d_t=np.log(table["d_t"]),
                        log_n=np.log(table["n_params"]), log_d_f=np.log(table["d_f"]),
                        log_p=np.log(table["pretrain_tokens_per_param"]),
                        cluster=table["pretrain"] + "/" + table["size"]).reset_index(drop=True)


def least_squares(rows: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, float]:
    """(coefficients: intercept then `columns`, RMSE in ln D_T with the degrees of freedom the fit used)."""
    x = np.column_stack([np.ones(len(rows)), rows[columns].to_numpy(float)])
    coef, *_ = np.linalg.lstsq(x, rows["log_d_t"].to_numpy(float), rcond=None)
    residual = rows["log_d_t"].to_numpy(float) - x @ coef
    return coef, float(np.sqrt(np.sum(residual ** 2) / max(1, len(rows) - x.shape[1])))


def cluster_bootstrap(rows: pd.DataFrame, columns: list[str], resamples: int, seed: int = 0) -> np.ndarray:
    """(resamples, 1 + len(columns)) coefficients, each fit on checkpoints drawn with replacement."""
    rng = np.random.default_rng(seed)
    groups = [g.index.to_numpy() for _, g in rows.groupby("cluster")]
    fits = []
    for _ in range(resamples):
        chosen = np.concatenate([groups[i] for i in rng.integers(len(groups), size=len(groups))])
        sample = rows.loc[chosen]
        if sample[columns].nunique().min() > 1:      # every regressor still varies
            fits.append(least_squares(sample, columns)[0])
    return np.array(fits)


def n_term(rows: pd.DataFrame, resamples: int) -> dict:
    """The 'both' law's N coefficient c: its value, 90 % cluster-bootstrap interval, range with each N left out."""
    columns = LAWS["both"]
    coef, _ = least_squares(rows, columns)
    draws = cluster_bootstrap(rows, columns, resamples)[:, -1]
    left = [least_squares(rows[rows["n_params"] != n], columns)[0][-1] for n in sorted(rows["n_params"].unique())]
    return {"c": float(coef[-1]), "interval": np.percentile(draws, Z_PERCENTILES).tolist(),
            "left_out": (float(min(left)), float(max(left)))}


def summary(rows: pd.DataFrame, resamples: int) -> str:
    """One markdown row per (pretraining distribution, law)."""
    lines = []
    for root, group in rows.groupby("root"):
        for name, columns in LAWS.items():
            coef, rmse = least_squares(group, columns)
            terms = ", ".join(f"{c} {sig(v)}" for c, v in zip(columns, coef[1:]))
            extra = ""
            if name == "both":
                n = n_term(group, resamples)
                extra = (f"c = {sig(n['c'])} [{sig(n['interval'][0])}, {sig(n['interval'][1])}], each N left out "
                         f"{sig(n['left_out'][0])} to {sig(n['left_out'][1])}")
            lines.append([root, name, str(len(group)), str(group["cluster"].nunique()), terms, sig(rmse), extra])
    return markdown_table(["pretraining", "law", "points", "checkpoints", "coefficients", "RMSE (ln D_T)",
                           "N beyond the start loss"], lines)


def draw(rows: pd.DataFrame, path: Path) -> None:
    """ln D_T against the start loss, one panel per pretraining distribution, colour by tokens per parameter,
    marker by D_F: points on one line whatever N is are what 'set by the start loss' looks like."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    roots = sorted(rows["root"].unique())
    fig, axes = plt.subplots(1, len(roots), figsize=(5.5 * len(roots), 4.2), squeeze=False, layout="constrained")
    for ax, root in zip(axes[0], roots):
        group = rows[rows["root"] == root]
        for d_f, marker in zip(sorted(group["d_f"].unique()), "os^D"):
            at = group[group["d_f"] == d_f]
            shown = ax.scatter(at["init_loss"], at["d_t"], c=np.log10(at["pretrain_tokens_per_param"]), marker=marker,
                               cmap="viridis", vmin=0.4, vmax=3.4, label=f"D_F = {sig(d_f)}", edgecolors="k")
            for _, p in at.iterrows():
                ax.annotate(p["size"], (p["init_loss"], p["d_t"]), fontsize=6, xytext=(3, 2), textcoords="offset points")
        ax.set(yscale="log", xlabel="start loss (zero-shot on the target, nats/token)", ylabel="D_T (characters)",
               title=root)
        ax.invert_xaxis()
        legend = ax.legend(fontsize=7)
        for handle in getattr(legend, "legend_handles", None) or legend.legendHandles:
            handle.set_facecolor("lightgray")      # the marker says D_F; the colour is the points' own
    fig.colorbar(shown, ax=axes[0].tolist(), label="log10 pretraining tokens per parameter")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="analysis folders (effective.csv and results.csv)")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args(argv)
    rows = points(args.folders)
    print(summary(rows, args.resamples))
    if args.figure:
        draw(rows, args.figure)
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
