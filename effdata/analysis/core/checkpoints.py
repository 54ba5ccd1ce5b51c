"""Mid-run checkpoints at one token count read as one pretraining across sizes (`[pretrain] checkpoint_tokens`).

A study puts a checkpoint at the same token count in every size's run, but names it by its tokens per parameter at
that size (5.02 M tokens are `text+code@22.4099tpp` at w200k, `@10tpp` at w500k): in the table each such name is
one size, and no law can be fitted to it. `by_tokens` gives every pretraining and fine-tune row whose checkpoint was
trained on one of the counts (to within a step: a checkpoint's run is a whole number of steps) the name
`<corpus>@<count>` (`text+code@5.02M`, `effdata.fmt.si`). A name every pretrained size shares (the run's own model,
`@3tpp`, `@10tpp`) stays as it was, and a row of it at one of the counts (w500k's `@10tpp` is its 5.02 M tokens) is
also copied under the count's name (run id `<id>~<count>`); the other names' rows are renamed, or left out when at
none of the counts. The run ids keep their hashes (renaming at planning time would change them).
"""
from __future__ import annotations

import pandas as pd

from effdata.analysis.core.table import TableError
from effdata.fmt import si

SLACK = 0.005   # a checkpoint is the count's when within 0.5 % (a step of 2,048 tokens is 0.13 % of 1.6 M)
COLUMNS = ("run_id", "mode", "pretrain", "size", "n_params", "tokens_per_param", "pretrain_tokens_per_param")


def checkpoint_tokens(table: pd.DataFrame) -> pd.Series:
    """The tokens each row's pretrained model was trained on: a pretraining row's own, a fine-tune's
    checkpoint's (NaN for from-scratch rows)."""
    own = table["tokens_per_param"] * table["n_params"]
    started = table["pretrain_tokens_per_param"] * table["n_params"]
    return own.where(table["mode"] == "pretrain", started.where(table["mode"] == "finetune"))


def by_tokens(table: pd.DataFrame, counts: list[int] | tuple[int, ...]) -> pd.DataFrame:
    """The table with each checkpoint at one of `counts` named by the count (the module's docstring). TableError
    for a table without the columns it needs, no counts, or a count no checkpoint was trained on at some size."""
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise TableError(f"--checkpoints-by-tokens: no {', '.join(missing)} column (an effdata study's table has them)")
    if not counts:
        raise TableError("--checkpoints-by-tokens: no token counts given")
    pretrained = table[table["mode"] != "scratch"]
    sizes = set(pretrained["size"])
    shared = {name for name, rows in pretrained.groupby("pretrain") if set(rows["size"]) == sizes}
    tokens = checkpoint_tokens(table)
    keep = pd.concat([table[table["mode"] == "scratch"],
                      table[(table["mode"] != "scratch") & table["pretrain"].isin(shared)]])
    copies = []
    for count in counts:
        rows = table[(tokens - count).abs() <= SLACK * count].copy()
        absent = sizes - set(rows["size"])
        if absent:
            raise TableError(f"--checkpoints-by-tokens: no checkpoint trained on {count:,} tokens at "
                             f"{', '.join(sorted(absent))}")
        kept = rows["pretrain"].isin(shared)
        rows.loc[kept, "run_id"] = rows.loc[kept, "run_id"] + f"~{si(count)}"
        rows["pretrain"] = rows["pretrain"].str.split("@").str[0] + f"@{si(count)}"
        copies.append(rows)
    return pd.concat([keep, *copies], ignore_index=True)
