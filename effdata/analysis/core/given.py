"""The run noise another study measured, given to this one (`--noise-from`).

A study that runs every point once cannot measure how noisy its fine-tunes are: their noise is mostly their
pretraining run's shift, shared by all of them (analysis/cpu-finetune-seeds), and the from-scratch grid's residuals
give one σ for every run. On v4 replicated six times (`analysis/cpu-replicates`, each seed's runs analysed as their
own one-seed study by `benchmarks/replicate_intervals.py`) that one σ gave per-point D_E intervals 1.01-1.19 times
the spread between the replicates at D_F = 1e4 characters and 0.78-0.81 at 3e4: about right on average, too wide
where the noise is small, too narrow where it is large. Given the noise that table measured, from scratch per data
size and a pretraining run's shift with its checkpoints' (what this module reads), the same ratios were 1.07-1.17
and 0.90-0.93; on synthetic one-seed studies with that noise, β's 90 % interval covered 94 % instead of 84.5 % and
per-point D_T 88.7 % instead of 76 % (docs/METHOD.md §6). So the measurement a replicated study of the same setup
made can stand in for the one a one-seed study cannot make; the report names the study it came from.

What is read from that study's fits.json: `noise_by_data`'s from-scratch row (σ per data size, where its seeds
measured one) as --loss-noise per data size, and `pretraining_noise`'s pooled row (pretrain "all"; a lone group's
row where there is one) as --pretraining-noise (its run's shared part) and --checkpoint-noise (its checkpoints'
part). Why not its fine-tunes' σ per data size: that includes the shared shifts, which the bootstrap draws once per
run; counted per point too, it would count them twice.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from effdata.analysis.core.table import TableError


@dataclass(frozen=True)
class GivenNoise:
    """The noise one study measured, in the terms of analyze()'s loss_noise, pretraining_noise, checkpoint_noise."""

    loss_noise: dict[float, float]          # from-scratch σ per data size, in `units`
    pretraining_noise: float | None         # a run's shift of all its fine-tunes (None: that study had none to measure)
    checkpoint_noise: float | None          # a checkpoint's shift of its own fine-tunes beyond the run's
    units: str
    source: str                             # the fits.json it came from, as given


def read_given_noise(path: str | Path) -> GivenNoise:
    """The noise measured by the study whose analysis is at `path` (its fits.json, or the folder holding it).
    TableError, in one line, when there is no such file or it measured no from-scratch noise per data size."""
    path = Path(path)
    fits_path = path / "fits.json" if path.is_dir() else path
    try:
        fits = json.loads(fits_path.read_text())
    except (OSError, ValueError) as exc:
        raise TableError(f"--noise-from {path}: cannot read an analysis's fits.json there ({exc})") from None
    if not isinstance(fits, dict):
        raise TableError(f"--noise-from {path}: {fits_path.name} is not an analysis's fits.json")
    scratch = [row for row in fits.get("noise_by_data") or [] if row.get("mode") == "scratch"]
    sizes = {float(s["data"]): float(s["sigma"]) for row in scratch for s in row.get("sizes", [])
             if _positive(s.get("sigma"))}
    if not sizes:
        raise TableError(f"--noise-from {path}: that analysis measured no from-scratch noise per data size (it needs "
                         f"from-scratch runs with two or more seeds; its report's Seeds section)")
    parts = fits.get("pretraining_noise") or []
    pooled = [row for row in parts if row.get("pretrain") == "all"] or (parts if len(parts) == 1 else [])
    shared = pooled[0].get("shared") if pooled else None
    checkpoint = pooled[0].get("checkpoint") if pooled else None
    return GivenNoise(loss_noise=sizes, pretraining_noise=float(shared) if _positive(shared) else None,
                      checkpoint_noise=float(checkpoint) if _positive(checkpoint) else None,
                      units=str(fits.get("units", "chars")), source=str(path))


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0
