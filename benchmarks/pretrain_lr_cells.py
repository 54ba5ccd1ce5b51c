"""The pretraining-LR cells of the 15 M-token studies, read from their results tables (not a test): per size, seed and
multiple of the rule's LR (`[pretrain] lr_scale`), the final pretraining's zero-shot Python loss (its `valid_loss`),
its own held-out loss on its corpus (`loss`) and its fine-tune on `--finetune-chars` characters (`loss`), then each
seed's paired differences between two multiples (`--pair A B`: B − A; a seed fixes the initial weights and the
batches, so the difference at one seed holds the LR alone).

    .venv/bin/python benchmarks/pretrain_lr_cells.py analysis/cpu-fixed-tokens/series/study/results.csv \
        analysis/cpu-fixed-tokens/series/seed1/study/results.csv analysis/cpu-fixed-tokens/four-layer/lr/*/results.csv \
        --sizes w200k w500k --pair 2 3 --figure lr.png

Each cell shows its warm-up in steps (`warmup_steps`), and a pair whose two runs warmed up differently is marked: a
wsd pretraining with mid-run checkpoints warms up over 5 % of its shortest checkpoint's steps, one without over 5 %
of its own, so two tables at two multiples can differ in the warm-up too (the ladder's ×1 over 1–76 steps, its
×0.5–×3 over 16–368: analysis/cpu-fixed-tokens/four-layer/lr/PREDICTION18.md), and their difference is then not the
LR's alone. Each cell shows its precision too (`dtype`): precision "auto" is bf16 only on a CPU with fast bf16
matmul, so tables made on two machines can differ in it (the twenty-sixth session's runs ran fp32 beside the
ladder's bf16: PREDICTION21.md), and a pair across two precisions is marked the same way. `--best` prints each size's best multiple by each loss on the seeds' mean. `--relative` draws each size and seed's
losses less its own at ×1, so that sizes 2 nats apart share one scale.

The notes of analysis/cpu-fixed-tokens/four-layer quote these tables. One trunk in two tables (read by two studies)
is counted once. Refused, one line and exit 2, for a table that cannot be read or is not a results table, or a
size or corpus none holds.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

COLUMNS = ["size", "seed", "corpus", "lr_scale"]
NEEDED = {"run_id", "mode", "pretrain", "data_chars", "n_params", "peak_lr", "valid_loss", "loss", *COLUMNS}


def cells(table: pd.DataFrame, finetune_chars: float) -> pd.DataFrame:
    """A row per final pretraining (not a mid-run checkpoint) with its fine-tune on `finetune_chars` characters,
    joined within its own table (a table holds one multiple per size and seed); a renamed pretraining is skipped.
    One trunk read by two studies (two run ids when their checkpoints differ, the same numbers) is kept once, from
    the first table."""
    final = table[(table["mode"] == "pretrain") & ~table["run_id"].str.contains("@")]
    # a table that renamed its pretrainings by their LR (pretrain_lr_table.py: text+code-lr2) holds other tables'
    # runs under another name: left out, or its fine-tunes would join nothing
    final = final[final["pretrain"] == final["corpus"]]
    tuned = table[(table["mode"] == "finetune") & (table["data_chars"] == finetune_chars)]
    tuned = tuned[["source", "size", "seed", "pretrain", "loss"]].rename(columns={"pretrain": "corpus",
                                                                                   "loss": "finetuned"})
    out = final.rename(columns={"valid_loss": "zero_shot", "loss": "own"})
    # -1: a table without the column (older or another setup's); shown as "–"
    out = out.assign(warmup=out["warmup_steps"].fillna(-1).astype(int) if "warmup_steps" in out else -1,
                     dtype=out["dtype"].fillna("–") if "dtype" in out else "–")
    out = out[["run_id", "source", *COLUMNS, "n_params", "peak_lr", "zero_shot", "own", "warmup", "dtype"]]
    joined = out.merge(tuned, on=["source", "size", "seed", "corpus"], how="left")
    return joined.drop_duplicates([*COLUMNS, "zero_shot", "own"])


def _steps(warmup: int) -> str:
    return "–" if warmup < 0 else str(warmup)


def cell_table(rows: pd.DataFrame) -> str:
    lines = ["| size | seed | corpus | multiple | peak LR | warm-up | precision | zero-shot | fine-tuned | own loss | "
             "table |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows.sort_values(["n_params", "seed", "corpus", "lr_scale", "warmup", "dtype"]).itertuples():
        lines.append(f"| {r.size} | {r.seed} | {r.corpus} | ×{r.lr_scale:g} | {r.peak_lr:.3g} | {_steps(r.warmup)} | "
                     f"{r.dtype} | {r.zero_shot:.3f} | {r.finetuned:.3f} | {r.own:.3f} | {r.source} |")
    return "\n".join(lines)


def paired(rows: pd.DataFrame, low: float, high: float) -> str:
    """Per size, corpus and seed, each cell at `high` less each at `low` (negative: high is better), with the two
    warm-ups and precisions; a pair that differs in either is marked, and counted below the table."""
    lines = [f"| size | seed | corpus | zero-shot ×{high:g} − ×{low:g} | fine-tuned | own loss | warm-ups | "
             "precisions |", "|---|---|---|---|---|---|---|---|"]
    mixed = {"warm-up": 0, "precision": 0}
    for (_, size, seed, corpus), one in rows.groupby(["n_params", "size", "seed", "corpus"]):
        for _, a in one[one["lr_scale"] == low].iterrows():
            for _, b in one[one["lr_scale"] == high].iterrows():
                d = b[LOSSES] - a[LOSSES]
                warm, dtype = a["warmup"] != b["warmup"], a["dtype"] != b["dtype"]
                mixed["warm-up"] += warm
                mixed["precision"] += dtype
                lines.append(f"| {size} | {seed} | {corpus} | {d['zero_shot']:+.3f} | {d['finetuned']:+.3f} | "
                             f"{d['own']:+.3f} | {_steps(a['warmup'])} / {_steps(b['warmup'])}"
                             f"{' (differ)' if warm else ''} | {a['dtype']} / {b['dtype']}"
                             f"{' (differ)' if dtype else ''} |")
    lines += [f"\n{count} pair(s) compare two {what}s: their differences are not the LR's alone"
              for what, count in mixed.items() if count]
    return "\n".join(lines)


LOSSES = ["zero_shot", "finetuned", "own"]


def best_table(rows: pd.DataFrame) -> str:
    """Per size and corpus, the multiple with the lowest seeds' mean of each loss, and that mean; a multiple counts
    only where it has every seed the size has (a mean over fewer seeds is another sample). Where a size's cells
    warmed up differently or ran in two precisions, each multiple, warm-up and precision is its own candidate, named
    with what differs."""
    lines = ["| size | corpus | seeds | best by zero-shot | by fine-tuned | by own loss |", "|---|---|---|---|---|---|"]
    setup = ["lr_scale", "warmup", "dtype"]
    for (_, size, corpus), one in rows.groupby(["n_params", "size", "corpus"]):
        seeds = one["seed"].nunique()
        full = one.groupby(setup).filter(lambda m: m["seed"].nunique() == seeds)
        means = full.groupby(setup)[LOSSES].mean()
        warmups, dtypes = one["warmup"].nunique() > 1, one["dtype"].nunique() > 1

        def name(key: tuple[float, int, str]) -> str:
            return (f"×{key[0]:g}" + (f", warm-up {_steps(key[1])}" if warmups else "")
                    + (f", {key[2]}" if dtypes else ""))
        cells = [f"{name(means[c].idxmin())} ({means[c].min():.3f})" for c in LOSSES]
        lines.append(f"| {size} | {corpus} | {seeds} | {' | '.join(cells)} |")
    return "\n".join(lines)


def relative_to_rule(rows: pd.DataFrame) -> pd.DataFrame:
    """Each (size, seed, corpus)'s losses minus its own at ×1, the rule's LR; a line without a ×1 cell is left out.
    Sizes lie 2 nats apart and their best multiples within 0.1: on one scale each size's best shows."""
    keys = ["size", "seed", "corpus"]
    rule = rows[rows["lr_scale"] == 1.0].set_index(keys)[LOSSES]
    if rule.index.has_duplicates:
        size, seed, corpus = rule.index[rule.index.duplicated()][0]
        raise ValueError(f"--relative: {size} {corpus} at seed {seed} has two cells at ×1 "
                         "(two warm-ups or precisions?): "
                         "pass the tables of one")
    kept = rows[rows.set_index(keys).index.isin(rule.index)]
    base = rule.loc[pd.MultiIndex.from_frame(kept[keys])].to_numpy()
    return kept.assign(**{c: kept[c].to_numpy() - base[:, i] for i, c in enumerate(LOSSES)})


def draw(rows: pd.DataFrame, path: Path, relative: bool = False) -> None:
    """Zero-shot, fine-tuned and own loss against the multiple, a line per size (colour) and seed (dashes): where
    each size's lowest point lies is the question, and a table hides it. `relative`: each line less its ×1 value."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import seaborn as sns  # noqa: PLC0415

    rows = rows.sort_values("n_params").assign(line=lambda r: r["size"] + " " + r["corpus"])
    # dark to light with N: seven sizes in the default palette's unordered hues hide which way a trend runs
    palette = sns.color_palette("viridis", rows["line"].nunique())
    fig, axes = plt.subplots(1, 3, figsize=(15.5, 4))
    unit = " − ×1's (nats)" if relative else " (nats)"
    panels = [("zero_shot", "zero-shot Python loss" + unit), ("finetuned", "fine-tuned loss" + unit),
              ("own", "pretraining's own loss" + unit)]
    for ax, (column, label) in zip(axes, panels):
        if relative:
            ax.axhline(0.0, color="grey", linewidth=0.8)
        sns.lineplot(data=rows, x="lr_scale", y=column, hue="line", style="seed", marker="o", ax=ax,
                     legend=ax is axes[-1], errorbar=None, palette=palette)
        ax.set(xscale="log", xlabel="multiple of the rule's pretraining LR", ylabel=label)
        ax.set_xticks(sorted(rows["lr_scale"].unique()), [f"×{x:g}" for x in sorted(rows["lr_scale"].unique())])
        ax.minorticks_off()
    sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1))   # outside: the lines fill every corner
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tables", nargs="+", type=Path, help="results.csv files of pretraining studies")
    p.add_argument("--sizes", nargs="+", help="only these sizes (default: all)")
    p.add_argument("--corpora", nargs="+", help="only these pretraining corpora (default: all)")
    p.add_argument("--finetune-chars", type=float, default=3e4, help="the fine-tunes' characters (default 3e4)")
    p.add_argument("--pair", nargs=2, type=float, metavar=("A", "B"), help="print each seed's B − A")
    p.add_argument("--best", action="store_true",
                   help="print each size's best multiple by each loss, on the seeds' mean (every seed at it)")
    p.add_argument("--figure", type=Path, help="also draw the losses against the multiple here (PNG)")
    p.add_argument("--relative", action="store_true",
                   help="draw each size and seed's losses less its own at ×1 (lines without ×1 left out)")
    a = p.parse_args(argv)
    try:
        table = pd.concat([pd.read_csv(t).assign(source=str(t.parent)) for t in a.tables], ignore_index=True)
    except (OSError, pd.errors.ParserError) as exc:
        print(f"pretrain_lr_cells: error: {exc}", file=sys.stderr)
        return 2
    missing = sorted(NEEDED - set(table.columns))
    if missing:
        print(f"pretrain_lr_cells: error: not results tables (no {', '.join(missing)})", file=sys.stderr)
        return 2
    rows = cells(table, a.finetune_chars)
    missing = sorted(set(a.sizes or ()) - set(rows["size"]))
    if missing:
        print(f"pretrain_lr_cells: error: no pretraining of size {', '.join(missing)} in the tables", file=sys.stderr)
        return 2
    if a.sizes:
        rows = rows[rows["size"].isin(a.sizes)]
    if a.corpora:
        rows = rows[rows["corpus"].isin(a.corpora)]
    if rows.empty:
        what = f" of corpus {', '.join(a.corpora)}" if a.corpora else ""
        print(f"pretrain_lr_cells: error: no pretraining{what} in the tables", file=sys.stderr)
        return 2
    print(cell_table(rows))
    if a.pair:
        print()
        print(paired(rows, *a.pair))
    if a.best:
        print()
        print(best_table(rows))
    if a.figure:
        try:
            drawn = relative_to_rule(rows) if a.relative else rows
        except ValueError as exc:
            print(f"pretrain_lr_cells: error: {exc}", file=sys.stderr)
            return 2
        if drawn.empty:
            print("pretrain_lr_cells: error: --relative: no size and seed has a cell at ×1", file=sys.stderr)
            return 2
        draw(drawn, a.figure, a.relative)
    return 0


if __name__ == "__main__":
    sys.exit(main())
