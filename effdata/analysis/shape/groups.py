"""Shapes at equal N: which runs are shapes of one N, and which shape the laws across N use. No torch.

Kaplan et al. (2020) found the loss of a language model to depend on N and hardly on its shape; Tay et al.
(2021) found the quality after fine-tuning to depend on shape a lot, deeper being better. When a results
table holds several shapes at one N (`table.shape_labels` names them from `n_layer`, `d_model`, `n_head`),
the analysis keeps them apart (docs/METHOD.md §3):

* `find_groups`: the sizes whose N lie within SAME_N_RATIO of each other and that hold >= 2 shapes, each
  with a reference shape (given, else the ladder's shape of that N, else the median depth);
* `ladder_keys`, `ladder_view`: the from-scratch curves and runs the size-ladder analysis (transfer law
  across N, from-scratch laws, pretraining section, advice, their figures) uses: one shape per N, the
  reference where there are several. A law across N fitted on shapes of one N would read shape as size.

`shape_compare.py` compares the shapes of each group.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from effdata.analysis.core.bootstrap import Resamples
from effdata.analysis.core.effective import CurveKey, EffectiveResult, curve_key
from effdata.analysis.core.table import ResultsTable
from effdata.fmt import compact
from effdata.spec import CPU_LADDER, GPU_LADDER

SAME_N_RATIO = 1.15     # sizes within 15% of a group's smallest are "one N" (ladder neighbours are >= 1.7x apart)


@dataclass(frozen=True)
class Shape:
    """One shape of a group: the table's label, N, layers and width (nan when the table lacks them)."""

    label: str
    n_params: float
    n_layer: float
    d_model: float
    name: str                   # the table's size name when it has one, else the label

    @property
    def key(self) -> CurveKey:
        return self.n_params, self.label

    def describe(self) -> str:
        if np.isfinite(self.n_layer) and np.isfinite(self.d_model):
            return f"{self.name} ({self.n_layer:.0f} × {self.d_model:.0f})"
        return self.name


@dataclass(frozen=True)
class ShapeGroup:
    """Shapes at about one N, shallow to deep, and the reference the second view of D_T reads off."""

    shapes: tuple[Shape, ...]
    reference: Shape
    reference_why: str

    @property
    def n_params(self) -> float:
        return float(np.exp(np.mean([np.log(s.n_params) for s in self.shapes])))

    @property
    def keys(self) -> set[CurveKey]:
        return {s.key for s in self.shapes}

    @property
    def title(self) -> str:
        return f"N ≈ {compact(self.n_params)}"


# --------------------------------------------------------------------------- which shapes, which reference

def _shapes_of(frames: Sequence[pd.DataFrame]) -> list[Shape]:
    """Every distinct (N, shape) of the frames (results rows), smallest N first."""
    seen: dict[CurveKey, Shape] = {}
    for frame in frames:
        if frame is None or frame.empty or "shape" not in frame:
            continue
        for _, row in frame.iterrows():
            key = curve_key(row)
            if key in seen:
                continue
            size = row.get("size")
            seen[key] = Shape(label=key[1], n_params=key[0], n_layer=float(row.get("n_layer", np.nan)),
                              d_model=float(row.get("d_model", np.nan)),
                              name=size if isinstance(size, str) and size else key[1] or compact(key[0]))
    return sorted(seen.values(), key=lambda s: (s.n_params, s.label))


def _ladder_match(shape: Shape) -> str | None:
    for name, ladder in {**CPU_LADDER, **GPU_LADDER}.items():
        if (ladder.n_layer, ladder.d_model, float(ladder.n_params)) == (shape.n_layer, shape.d_model, shape.n_params):
            return name
    return None


def _reference(shapes: tuple[Shape, ...], names: Sequence[str]) -> tuple[Shape, str]:
    """The given reference, else the shape the size ladder uses at this N, else the median depth."""
    for shape in shapes:
        if shape.name in names or shape.label in names:
            return shape, "given (--reference-shape)"
    for shape in shapes:
        match = _ladder_match(shape)
        if match:
            return shape, f"the shape of the ladder's {match}"
    return shapes[(len(shapes) - 1) // 2], "the median depth (no ladder size has this shape)"


def find_groups(frames: Sequence[pd.DataFrame], references: Sequence[str] = ()) -> tuple[list[ShapeGroup], list[str]]:
    """(groups of >= 2 shapes at one N, warnings): see the module docstring."""
    clusters: list[list[Shape]] = []
    for shape in _shapes_of(frames):
        if clusters and shape.n_params <= clusters[-1][0].n_params * SAME_N_RATIO:
            clusters[-1].append(shape)
        else:
            clusters.append([shape])
    groups = []
    for cluster in clusters:
        if len({s.label for s in cluster}) < 2:
            continue
        shapes = tuple(sorted(cluster, key=lambda s: (s.n_layer if np.isfinite(s.n_layer) else math.inf, s.name)))
        reference, why = _reference(shapes, references)
        groups.append(ShapeGroup(shapes=shapes, reference=reference, reference_why=why))
    used = {name for g in groups for s in g.shapes for name in (s.name, s.label) if g.reference == s}
    unknown = [name for name in references if name not in used]
    warnings = [f"--reference-shape {name}: no shape of that name in a group of shapes at one N" for name in unknown]
    return groups, warnings


def ladder_keys(keys, groups: list[ShapeGroup]) -> set[CurveKey]:
    """The curves of the size-ladder analysis: every curve outside a group, and each group's reference."""
    grouped = set().union(*(g.keys for g in groups)) if groups else set()
    return {k for k in keys if k not in grouped} | {g.reference.key for g in groups}


def row_keys(frame: pd.DataFrame) -> list[CurveKey]:
    return [curve_key(row) for _, row in frame.iterrows()]


def ladder_view(results: ResultsTable, effective: EffectiveResult, resamples: Resamples | None,
                groups: list[ShapeGroup]) -> tuple[ResultsTable, EffectiveResult, Resamples | None]:
    """The table, effective data and resamples of the size-ladder analysis (`ladder_keys`); unchanged
    without groups. The resamples keep only D_E and D_T (their `losses` are the full table's)."""
    if not groups:
        return results, effective, resamples
    ladder, keys = ladder_table(results, groups)
    points = np.array([k in keys for k in row_keys(effective.table)], bool)
    sliced = resamples.subset(points) if resamples is not None else None
    return ladder, effective.subset(keys), sliced


def ladder_table(results: ResultsTable, groups: list[ShapeGroup]) -> tuple[ResultsTable, set[CurveKey]]:
    """(the results table's runs of the size-ladder analysis only, its curve keys)."""
    frames = (results.runs, results.seed_runs, results.pretraining)
    keys = ladder_keys(set().union(*(row_keys(f) for f in frames)), groups)
    if not groups:
        return results, keys
    keep = lambda frame: frame[np.array([k in keys for k in row_keys(frame)], bool)].reset_index(drop=True)  # noqa: E731
    return dataclasses.replace(results, runs=keep(results.runs), seed_runs=keep(results.seed_runs),
                               pretraining=keep(results.pretraining)), keys


def ladder_note(groups: list[ShapeGroup]) -> str:
    """The Input section's line on what the size-ladder parts of the report use."""
    parts = [f"{g.title}: {len(g.shapes)} shapes ({', '.join(s.name for s in g.shapes)}), reference "
             f"{g.reference.name}" for g in groups]
    return ("Several shapes at one N (" + "; ".join(parts) + "): the laws across N, the pretraining runs, the "
            "advice and the figures before section *Shape* use each N's reference shape only; section *Shape* "
            "compares the shapes, and the per-run table lists them all")
