"""What else changes along the N ladder a law is fitted on: depth, width, the embedding's share.

β is an exponent of N. If depth changes with N as well, β mixes the two (the shape study measured D_T ×1.5–1.8
per doubling of depth at fixed N, analysis/shape), and if the embedding is most of a small model and little
of a large one, counting N without it is a choice the exponent depends on (the sensitivity row with N
counted with embeddings is in the transfer law's audit)."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from effdata.fmt import compact


@dataclass
class Ladder:
    """One row per N of the runs the laws are fitted on: depth, width, aspect ratio, embedding share."""

    rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    checked: bool = False

    @property
    def depth_changes(self) -> bool:
        return self.checked and self.rows["n_layer"].nunique() > 1


def ladder_shapes(runs: pd.DataFrame) -> Ladder:
    if not {"n_layer", "d_model"} <= set(runs.columns) or runs[["n_layer", "d_model"]].isna().all().any():
        return Ladder()
    columns = ["n_params", "n_layer", "d_model"] + [c for c in ("size", "n_params_total") if c in runs]
    rows = runs[columns].drop_duplicates("n_params").sort_values("n_params").reset_index(drop=True)
    rows["aspect_ratio"] = rows["d_model"] / rows["n_layer"]
    if "n_params_total" in rows:
        rows["embedding_share"] = 1 - rows["n_params"] / rows["n_params_total"]
    return Ladder(rows, True)


def confound_warnings(ladder: Ladder) -> list[str]:
    if not ladder.depth_changes:
        return []
    rows = ladder.rows
    names = rows["size"] if "size" in rows else rows["n_params"].map(compact)
    depths = ", ".join(f"{int(d)}" for d in rows["n_layer"])
    return [f"the N ladder changes depth with N ({depths} layers at {', '.join(map(str, names))}; aspect ratio "
            f"{rows['aspect_ratio'].min():.3g}–{rows['aspect_ratio'].max():.3g}): every exponent of N (β, the "
            f"from-scratch laws' N terms) mixes width and depth; a ladder at one depth or one aspect ratio separates them"]
