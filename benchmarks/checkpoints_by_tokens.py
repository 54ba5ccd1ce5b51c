"""A results table whose mid-run checkpoints at token counts are named by the count, so that the analysis reads
each count as one pretraining across sizes (not a test).

    .venv/bin/python benchmarks/checkpoints_by_tokens.py analysis/cpu-fixed-tokens/series/study/results.csv \
        --tokens 1600000 3010176 5016960 7525440 10033920 12542400 --out T.csv

`[pretrain] checkpoint_tokens` puts a checkpoint at the same token count in every size's run, but names it by its
tokens per parameter at that size (5.02 M tokens are `text+code@22.4099tpp` at w200k, `@10tpp` at w500k): in the
table each name is one size. Here every pretraining and fine-tune row whose checkpoint was trained on one of
`--tokens` (to within a step: a checkpoint's run is a whole number of steps) gets the name `<corpus>@<count>`
(`text+code@5.02M`, `effdata.fmt.si`). A name every pretrained size shares (the run's own model, `@3tpp`, `@10tpp`)
stays as it was, and a row of it at one of the counts (w500k's `@10tpp` is its 5.02 M tokens) is also copied under
the count's name (run id `<id>~<count>`); the other names' rows are renamed, or left out when at none of the counts.
Refused, one line and exit 2, for a count no checkpoint was trained on at some size, and for a table with nothing
to rename.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from effdata.fmt import si  # noqa: E402
from effdata.paths import atomic_write_text  # noqa: E402

SLACK = 0.005   # a checkpoint is the count's when within 0.5 % (a step of 2,048 tokens is 0.13 % of 1.6 M)


class Refused(ValueError):
    pass


def checkpoint_tokens(table: pd.DataFrame) -> pd.Series:
    """The tokens each row's pretrained model was trained on: a pretraining row's own, a fine-tune's
    checkpoint's (NaN for from-scratch rows)."""
    own = table["tokens_per_param"] * table["n_params"]
    started = table["pretrain_tokens_per_param"] * table["n_params"]
    return own.where(table["mode"] == "pretrain", started.where(table["mode"] == "finetune"))


def by_tokens(table: pd.DataFrame, counts: list[int]) -> pd.DataFrame:
    """The table with each checkpoint at one of `counts` named by the count (the module's docstring)."""
    pretrained = table[table["mode"] != "scratch"]
    sizes = set(pretrained["size"])
    shared = {name for name, rows in pretrained.groupby("pretrain") if set(rows["size"]) == sizes}
    tokens = checkpoint_tokens(table)
    keep, copies = table[table["mode"] == "scratch"].copy(), []
    keep = pd.concat([keep, table[(table["mode"] != "scratch") & table["pretrain"].isin(shared)]])
    for count in counts:
        near = (tokens - count).abs() <= SLACK * count
        rows = table[near].copy()
        missing = sizes - set(rows["size"])
        if missing:
            raise Refused(f"no checkpoint trained on {count:,} tokens at {', '.join(sorted(missing))}")
        kept = rows["pretrain"].isin(shared)
        rows.loc[kept, "run_id"] = rows.loc[kept, "run_id"] + f"~{si(count)}"
        rows["pretrain"] = rows["pretrain"].str.split("@").str[0] + f"@{si(count)}"
        copies.append(rows)
    if not copies:
        raise Refused("no --tokens given")
    return pd.concat([keep, *copies], ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path)
    p.add_argument("--tokens", type=float, nargs="+", required=True, help="the token counts of the checkpoints")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    try:
        out = by_tokens(pd.read_csv(a.results), [int(t) for t in a.tokens])
    except (Refused, OSError, KeyError) as exc:
        print(f"checkpoints_by_tokens: error: {exc}", file=sys.stderr)
        return 2
    a.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out, out.to_csv(index=False))
    print(f"{len(out)} rows ({sum(out['pretrain'].str.contains('@') & ~out['pretrain'].str.endswith('tpp'))} named "
          f"by token count): {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
