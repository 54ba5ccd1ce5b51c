"""Measurement (not a test): is the data a pretraining transfers set by the loss it starts fine-tuning from?

    .venv/bin/python benchmarks/transfer_by_start_loss.py analysis/cpu-fixed-tokens analysis/cpu-w1m/to-1e6 \
        [--figure analysis/cpu-fixed-tokens/start_loss.png] [--resamples 2000]

Each folder is an analysis (its effective.csv: D_T per fine-tuned point; its results.csv: `init_loss`, the
fine-tune's held-out target loss before its first step, i.e. the pretrained model's zero-shot loss on the target).
A point read in two folders (the same checkpoint's fine-tune: name, N, D_F and pretraining tokens per parameter)
is kept once, from the first. Per pretraining
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

`--held-out TABLE ...`: a prediction the fit did not see. Each table's fine-tunes, each seed on its own (another
pretraining run), are read on `--scratch-from`'s from-scratch runs (the curves the folders' analyses used), points
the fit already holds are dropped, and the start-loss and size-and-tokens laws fitted on the folders predict each
point's ln D_T from its start loss, or from its N, D_F and tokens.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from effdata.analysis.core.effective import compute_effective  # noqa: E402
from effdata.analysis.core.fit import INTERVAL_PERCENTILES  # noqa: E402
from effdata.analysis.core.markdown import markdown_table  # noqa: E402
from effdata.analysis.core.table import load_results  # noqa: E402
from effdata.fmt import sig  # noqa: E402

LAWS = {"size and tokens": ["log_n", "log_d_f", "log_p"], "start loss": ["init_loss", "log_d_f"],
        "both": ["init_loss", "log_d_f", "log_n"]}


def points(folders: list[str]) -> pd.DataFrame:
    """One row per fine-tuned point with D_T > 0 read inside the measured range: its D_T, N, D_F, tokens per
    parameter, start loss and checkpoint (`cluster`)."""
    tables = [with_start_loss(pd.read_csv(Path(folder) / "effective.csv"), pd.read_csv(Path(folder) / "results.csv"),
                              folder) for folder in folders]
    table = pd.concat(tables, ignore_index=True)
    # One checkpoint is a name, N and pretraining length: "text+code" at w200k is another model at 15 M tokens.
    return usable(table.assign(p_key=table["pretrain_tokens_per_param"].round(6))
                  .drop_duplicates(["pretrain", "n_params", "p_key", "d_f"]).drop(columns="p_key"))


def with_start_loss(effective: pd.DataFrame, runs: pd.DataFrame, label: str) -> pd.DataFrame:
    """`effective` (effective.csv's columns) with each point's start loss, the mean `init_loss` of its fine-tunes."""
    starts = (runs[(runs["mode"] == "finetune") & (runs["status"] == "ok")]
              .groupby(["pretrain", "n_params", "data_chars"], as_index=False)["init_loss"].mean()
              .rename(columns={"data_chars": "d_f"}))
    return effective.merge(starts, on=["pretrain", "n_params", "d_f"], how="left").assign(folder=label)


def usable(table: pd.DataFrame) -> pd.DataFrame:
    """The points with D_T > 0, read inside the measured range, with a start loss; the regressors added."""
    table = table[(table["d_t"] > 0) & ~table["extrapolated"].astype(bool) & table["init_loss"].notna()]
    return table.assign(root=table["pretrain"].str.split("@").str[0], log_d_t=np.log(table["d_t"]),
                        log_n=np.log(table["n_params"]), log_d_f=np.log(table["d_f"]),
                        log_p=np.log(table["pretrain_tokens_per_param"]),
                        cluster=table["pretrain"] + "/" + table["size"] + "/"
                        + table["pretrain_tokens_per_param"].round(3).astype(str)).reset_index(drop=True)


def held_out(table: str, scratch_from: str) -> pd.DataFrame:
    """The fine-tuned points of another table, each seed on its own (another pretraining run), read as the analysis
    reads them (core/effective.py) on the from-scratch runs of `scratch_from`, the curves the laws were fitted on."""
    runs, scratch = pd.read_csv(table), pd.read_csv(scratch_from)
    scratch = scratch[scratch["mode"] == "scratch"]
    tables = []
    for seed in sorted(runs.loc[runs["mode"] == "finetune", "seed"].unique()):
        mine = runs[(runs["mode"] != "scratch") & (runs["seed"] == seed)]
        effective = compute_effective(load_results(pd.concat([mine, scratch], ignore_index=True))).table
        tables.append(with_start_loss(effective, mine, f"{table} seed {seed}"))
    return usable(pd.concat(tables, ignore_index=True))


def unseen(held: pd.DataFrame, fitted: pd.DataFrame) -> pd.DataFrame:
    """The held-out points that are not fitted ones (the same checkpoint's fine-tune: same name, N, D_F, pretraining
    length and start loss; a replicated table's seed 0 is often the fitted study itself)."""
    def key(t: pd.DataFrame) -> list[tuple]:
        return list(zip(t["pretrain"], t["n_params"], t["d_f"], t["pretrain_tokens_per_param"].round(6),
                        t["init_loss"].round(9)))
    return held[[k not in set(key(fitted)) for k in key(held)]]


def predictions(fitted: pd.DataFrame, held: pd.DataFrame) -> str:
    """Per held-out source and pretraining distribution: how far the start-loss law and the size-and-tokens law,
    fitted on `fitted` alone, miss each held-out point's ln D_T (RMSE, median |error|, the share within a factor
    of 2: a point whose D_T is near zero has a large error in ln D_T, which the RMSE shows and the others do not)."""
    lines = []
    for (source, root), group in held.groupby(["folder", "root"]):
        train = fitted[fitted["root"] == root]
        errors = {}
        for name in ("start loss", "size and tokens"):
            coef, _ = least_squares(train, LAWS[name])
            errors[name] = group["log_d_t"].to_numpy(float) - design(group, LAWS[name]) @ coef
        cells = [f"{sig(np.sqrt(np.mean(e ** 2)))}, {sig(np.median(np.abs(e)))}, {np.mean(np.abs(e) < np.log(2)):.0%}"
                 for e in errors.values()]
        lines.append([source, root, str(len(group)), *cells])
    return markdown_table(["held out", "pretraining", "points", "start loss: RMSE, median |error| of ln D_T, "
                           "share within ×2", "size and tokens: the same"], lines)


def design(rows: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The intercept and `columns` of `rows`, one row per point."""
    return np.column_stack([np.ones(len(rows)), rows[columns].to_numpy(float)])


def least_squares(rows: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, float]:
    """(coefficients: intercept then `columns`, RMSE in ln D_T with the degrees of freedom the fit used)."""
    x = design(rows, columns)
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
    return {"c": float(coef[-1]), "interval": np.percentile(draws, INTERVAL_PERCENTILES).tolist(),
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
    from matplotlib.lines import Line2D
    roots = sorted(rows["root"].unique())
    fig, axes = plt.subplots(1, len(roots), figsize=(5.5 * len(roots), 4.2), squeeze=False, layout="constrained")
    for ax, root in zip(axes[0], roots):
        group = rows[rows["root"] == root]
        for d_f, marker in zip(sorted(group["d_f"].unique()), "os^D"):
            at = group[group["d_f"] == d_f]
            shown = ax.scatter(at["init_loss"], at["d_t"], c=np.log10(at["pretrain_tokens_per_param"]), marker=marker,
                               cmap="viridis", vmin=0.4, vmax=3.4, edgecolors="k")
            for _, p in at.iterrows():
                ax.annotate(p["size"], (p["init_loss"], p["d_t"]), fontsize=6, xytext=(3, 2),
                            textcoords="offset points")
        ax.set(yscale="log", xlabel="start loss (zero-shot on the target, nats/token)", ylabel="D_T (characters)",
               title=root)
        ax.invert_xaxis()
        # The marker says D_F, the colour the pretraining length: legend entries in grey, not a point's colour.
        ax.legend(handles=[Line2D([], [], ls="", marker=m, color="grey", markeredgecolor="k", label=f"D_F = {sig(d)}")
                           for d, m in zip(sorted(group["d_f"].unique()), "os^D")], fontsize=7)
    fig.colorbar(shown, ax=axes[0].tolist(), label="log10 pretraining tokens per parameter")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="analysis folders (effective.csv and results.csv)")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--figure", type=Path)
    parser.add_argument("--held-out", nargs="+", default=[], metavar="TABLE",
                        help="results tables whose fine-tunes the laws fitted on FOLDERS predict from their start loss")
    parser.add_argument("--scratch-from", metavar="TABLE", help="the from-scratch runs the held-out points are read "
                        "on (those of the folders' analyses: e.g. analysis/cpu-w1m/to-1e6/results.csv)")
    args = parser.parse_args(argv)
    if args.held_out and not args.scratch_from:
        parser.error("--held-out needs --scratch-from")
    rows = points(args.folders)
    print(summary(rows, args.resamples))
    if args.held_out:
        held = pd.concat([held_out(t, args.scratch_from) for t in args.held_out], ignore_index=True)
        print("\n" + predictions(rows, unseen(held, rows)))
    if args.figure:
        draw(rows, args.figure)
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
