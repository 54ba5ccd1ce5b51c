"""Shapes at one N (analysis/shape.py, shape_compare.py): kept apart, each fine-tune read off its own shape's curve, the
known ratio of D_T between two shapes recovered, the laws across N fitted on one shape per N, and the
comparison handed to the planner."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from synthetic import SHAPE_N, TWO_SHAPES, make_cpu_runs, make_shape_runs

from effdata.analysis.core.bootstrap import (
    attach_intervals,
    estimate_noise,
    resample_effective,
    seed_spread,
)
from effdata.analysis.core.effective import ScratchCurve, compute_effective
from effdata.analysis.core.table import load_results
from effdata.analysis.plan.planner import PlanRequest, load_laws, make_plan, read_fits
from effdata.analysis.shape.compare import DepthSeries, analyse_shapes, depth_effect
from effdata.analysis.shape.groups import Shape, find_groups, ladder_view
from effdata.analyze import analyze
from effdata.plan import main as plan_main


def _measure(df: pd.DataFrame, n_bootstrap: int = 300, seed: int = 0, references=()):
    table = load_results(df, warnings=[])
    effective = compute_effective(table, [])
    resamples = resample_effective(table, effective, estimate_noise(table, effective), n_bootstrap, seed)
    attach_intervals(effective.table, resamples)
    groups, _ = find_groups([table.runs, table.pretraining], references)
    return table, effective, resamples, groups


def test_shapes_at_one_n_are_never_averaged_together():
    df = make_shape_runs(seeds=3)
    table = load_results(df, warnings=[])
    scratch = table.scratch
    assert set(table.runs["n_params"]) == {SHAPE_N}                 # one N, exactly ...
    assert sorted(scratch["shape"].unique()) == ["l2d92", "l8d44"]  # ... two shapes
    assert len(scratch) == 2 * 5 and set(scratch["n_seeds"]) == {3}  # 3 seeds per point, not 6
    effective = compute_effective(table, [])
    assert sorted(effective.curves) == [(SHAPE_N, "l2d92"), (SHAPE_N, "l8d44")]
    for shape, rows in scratch.groupby("shape"):   # each fine-tune's D_E is read off its own shape's curve
        own = ScratchCurve.from_points(SHAPE_N, rows["data_chars"], rows["loss"], rows["n_seeds"])
        tuned = effective.table[effective.table["shape"] == shape]
        assert np.allclose(tuned["d_e"], own.invert_many(tuned["loss"])[0])
    spread = seed_spread(table)
    assert len(spread[spread["mode"] == "scratch"]) == 2
    # The check can fail: with the shape columns removed the two shapes are one grid and get averaged.
    blind = load_results(df.drop(columns=["n_layer", "d_model", "size"]), warnings=[])
    assert set(blind.scratch["n_seeds"]) == {6}


@pytest.mark.parametrize("factor", [3.0, 0.5])
def test_two_shapes_d_t_series_recover_the_known_factor(factor):
    shapes = {"wide": TWO_SHAPES["wide"], "deep": {**TWO_SHAPES["deep"], "transfer": factor}}
    table, effective, resamples, groups = _measure(make_shape_runs(shapes, seeds=3, loss_noise=0.005, seed=4))
    assert len(groups) == 1 and groups[0].reference.name == "wide"    # no ladder shape: the median depth (lower)
    study = analyse_shapes(groups, table, effective, resamples, seed=0)
    own = [t for t in study.groups[0].transfer if t.view == "D_T"]
    deep = next(t for t in own if t.shape.name == "deep")
    wide = next(t for t in own if t.shape.name == "wide")
    assert wide.ratio == pytest.approx(1.0)
    assert deep.ratio == pytest.approx(factor, rel=0.15)
    assert deep.ratio_interval[0] < factor < deep.ratio_interval[1]
    # Both D_T series have the law's exponent (0.45) and the per-D_F values the factor too.
    assert deep.alpha == pytest.approx(0.45, abs=0.1) and wide.alpha == pytest.approx(0.45, abs=0.1)
    for series in study.groups[0].of("D_T", "text"):
        by_name = dict(zip((s.name for s in series.shapes), series.value))
        assert by_name["deep"] / by_name["wide"] == pytest.approx(factor, rel=0.25)


def test_verdicts_follow_the_synthetic_truth():
    table, effective, resamples, groups = _measure(make_shape_runs(seeds=3, loss_noise=0.003, seed=1))
    result = analyse_shapes(groups, table, effective, resamples).groups[0]
    upstream = result.effect("pretraining loss", "text")
    assert upstream.slope_interval[0] < 0 < upstream.slope_interval[1]     # the same pretraining loss
    assert upstream.direction.startswith("no clear effect")
    assert result.effect("fine-tuned loss", "text").direction == "deeper is better"
    d_t = result.effect("D_T", "text")
    assert d_t.direction == "deeper is better"
    per_doubling = math.sqrt(3.0)            # ×3 over two doublings (2 → 8 layers)
    assert math.exp(d_t.slope_interval[0]) < per_doubling < math.exp(d_t.slope_interval[1])
    # The reference view of the reference shape is its own view.
    ref = next(t for t in result.transfer if t.view == "D_T (reference curve)" and t.shape == result.group.reference)
    own = next(t for t in result.transfer if t.view == "D_T" and t.shape == result.group.reference)
    assert ref.d_t_mid == pytest.approx(own.d_t_mid, rel=1e-9)


def test_the_reference_shape_is_given_else_the_ladders_else_the_median_depth():
    df = make_shape_runs({"a": {**TWO_SHAPES["wide"]}, "b": {**TWO_SHAPES["deep"], "n_layer": 4, "d_model": 64},
                          "c": {**TWO_SHAPES["deep"], "n_layer": 16, "d_model": 32}}, seeds=1)
    table = load_results(df, warnings=[])
    frames = [table.runs, table.pretraining]
    (group,), _ = find_groups(frames)
    assert group.reference.name == "b" and "n200k" in group.reference_why   # 4 × 64 at N = 200,064: n200k
    (group,), warnings = find_groups(frames, ["c"])
    assert group.reference.name == "c" and not warnings
    _, warnings = find_groups(frames, ["nope"])
    assert "nope" in warnings[0]
    nearby = df.assign(n_params=np.where(df["size"] == "c", SHAPE_N * 1.1, SHAPE_N))   # within 15%: one N
    assert len(find_groups([load_results(nearby, warnings=[]).runs])[0][0].shapes) == 3
    apart = df.assign(n_params=np.where(df["size"] == "c", SHAPE_N * 2, SHAPE_N))     # a ladder step apart
    assert len(find_groups([load_results(apart, warnings=[]).runs])[0][0].shapes) == 2


def test_depth_effect_reads_a_known_slope():
    shapes = tuple(Shape(f"l{d}", 1e5, float(d), 8.0, f"l{d}") for d in (1, 2, 4, 8))
    value = 5.0 * (1 - 0.02 * np.log2([1, 2, 4, 8]))   # 2% lower per doubling (relative to 5.0, near the mean)
    draws = value * (1 + 0.001 * np.random.default_rng(0).standard_normal((200, 4)))
    effect = depth_effect([DepthSeries("fine-tuned loss", "text", 1e5, shapes, value, draws, np.ones(4))])
    assert effect.slope == pytest.approx(-0.02 * 5.0 / value.mean(), rel=1e-6)
    assert effect.direction == "deeper is better"
    flat = depth_effect([DepthSeries("fine-tuned loss", "text", 1e5, shapes, np.full(4, 5.0),
                                     5.0 * (1 + 0.01 * np.random.default_rng(1).standard_normal((200, 4))), np.ones(4))])
    assert flat.direction.startswith("no clear effect")


def _ladder_with_shapes(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The CPU-shaped ladder (200,064 is n200k's 4 × 64) and the same with two more shapes at that N."""
    ladder = make_cpu_runs(seeds=1, loss_noise=0.003, seed=seed)
    ladder["n_layer"] = ladder["n_params"].map({25472: 2, 56640: 2, 100096: 2, 200064: 4, 559392: 5})
    ladder["d_model"] = ladder["n_params"].map({25472: 32, 56640: 48, 100096: 64, 200064: 64, 559392: 96})
    ladder["size"] = ladder["n_params"].map({25472: "n25k", 56640: "n50k", 100096: "n100k", 200064: "n200k",
                                             559392: "n500k"})
    others = make_shape_runs({"s200k-l1": {**TWO_SHAPES["wide"], "n_layer": 1, "d_model": 128, "transfer": 0.5},
                              "s200k-l16": {**TWO_SHAPES["deep"], "n_layer": 16, "d_model": 32}}, seeds=1, seed=seed)
    others = others[others["mode"] != "pretrain"]
    return ladder, pd.concat([ladder, others], ignore_index=True)


def test_the_laws_across_n_use_one_shape_per_n(tmp_path):
    ladder, both = _ladder_with_shapes()
    alone = analyze(ladder, tmp_path / "ladder", n_bootstrap=0, figures=False)
    mixed = analyze(both, tmp_path / "mixed", n_bootstrap=50, figures=False)
    law, same = alone["transfer"]["text"], mixed["transfer"]["text"]
    assert same["n_distinct_n"] == law["n_distinct_n"] == 5
    for parameter in ("k", "alpha", "beta"):
        assert same[parameter] == pytest.approx(law[parameter], rel=1e-9)
    assert mixed["chinchilla"]["n_points"] == alone["chinchilla"]["n_points"]
    # All shapes are in the per-run table; the shape section names the reference.
    effective = pd.read_csv(tmp_path / "mixed" / "effective.csv")
    assert (effective["n_params"] == 200064).sum() == 4 + 2 * 3     # n200k at 4 D_F, the two others at 3
    report = (tmp_path / "mixed" / "REPORT.md").read_text()
    assert "## Shape: depth and width at equal N" in report and "Kaplan et al. 2020" in report
    assert mixed["shape_study"]["groups"][0]["reference"] == "n200k"


def test_the_shape_comparison_round_trips_into_the_planner(tmp_path):
    _, both = _ladder_with_shapes()
    result = analyze(both, tmp_path, n_bootstrap=100, figures=False)
    blocks = result["shape"]
    assert {b["quantity"] for b in blocks} == {"loss", "d_t"}
    assert len([b for b in blocks if b["quantity"] == "loss"]) == 3      # one per D_F the shapes share
    laws = load_laws(read_fits(tmp_path / "fits.json"))
    assert len(laws.shapes) == len(blocks)
    plan = make_plan(laws, PlanRequest(d_f=1e5))
    verdict = next(note for note in plan.notes if "shape comparison" in note)
    # s200k-l16 transfers 3x as much as n200k (on a from-scratch curve 2% higher), s200k-l1 half as much:
    # the loss comparison at D_F = 1e5 (the one nearest the request) favours the deep shape.
    assert "D_F = 1e+05 chars" in verdict and "favours s200k-l16 (16 layers × 32)" in verdict
    small = make_plan(laws, PlanRequest(d_f=1.2e4))
    assert "D_F = 3e+04" in next(note for note in small.notes if "shape comparison" in note)
    # --shape: another fits.json's comparison beside these laws.
    ladder_fits = tmp_path / "ladder"
    analyze(_ladder_with_shapes()[0], ladder_fits, n_bootstrap=0, figures=False)
    assert "No shape comparison" in "".join(make_plan(load_laws(read_fits(ladder_fits)), PlanRequest(d_f=1e5)).notes)
    assert plan_main([str(ladder_fits), "--d-f", "1e5", "--shape", str(tmp_path), "--out", str(tmp_path / "plan"),
                      "--no-figure"]) == 0
    assert plan_main([str(ladder_fits), "--d-f", "1e5", "--shape", str(ladder_fits), "--no-figure"]) == 2
    written = json.loads((tmp_path / "fits.json").read_text())
    assert written["shape"] == blocks


def test_ladder_view_without_shapes_is_the_table_itself():
    table = load_results(make_cpu_runs(seeds=1), warnings=[])
    effective = compute_effective(table, [])
    groups, _ = find_groups([table.runs, table.pretraining])
    assert groups == []
    ladder, same, resamples = ladder_view(table, effective, None, groups)
    assert ladder is table and same is effective and resamples is None


def test_shape_figures_and_report(tmp_path):
    result = analyze(make_shape_runs(seeds=2, seed=3), tmp_path, n_bootstrap=60)
    names = {f["name"] for f in result["figures"] if "png" in f}
    assert {"shape_pretraining", "shape_finetuned", "shape_dt"} <= names
    report = (tmp_path / "REPORT.md").read_text()
    for claim in ("Kaplan et al. 2020", "Tay et al. 2021", "**D_T**"):
        assert sum(claim in line and "[" in line for line in report.splitlines()) == 1   # one line, with intervals
