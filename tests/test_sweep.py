"""A study's [sweep]: how it expands into runs (labels, ids, errors), how the results table marks the swept
value, and the sweep analysis on synthetic tables whose best value and rule are known. No training."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from effdata.analysis.sweep.sweep import analyze_sweep_table, refined_best
from effdata.study.store import Store
from effdata.study.study import StudyError, load_study, study_from_dict, study_runs

JOBS = Path(__file__).resolve().parent.parent / "jobs"
BASE = {
    "name": "t", "sizes": ["n25k", "n100k"], "scratch": {"data_chars": [1e5, 1e6]}, "finetune": {"data_chars": [1e5]},
    "pretrain": {"corpora": ["text"], "token_budget": 200_000}, "train": {"batch_size": 16},
}
SWEPT = {**BASE, "sweep": {"lr_scale": [0.5, 1, 2, 4, 8]}}


def test_a_sweep_repeats_scratch_and_finetune_runs_for_each_value_and_names_it():
    plain, swept = study_runs(study_from_dict(BASE)), study_runs(study_from_dict(SWEPT))
    count = lambda runs, mode: sum(r.mode == mode for r in runs)  # noqa: E731
    assert count(swept, "scratch") == 5 * count(plain, "scratch") == 20
    assert count(swept, "finetune") == 5 * count(plain, "finetune") == 10
    assert count(swept, "pretrain") == count(plain, "pretrain") == 2           # pretraining is not swept
    labels = {r.label for r in swept}
    assert "scratch-n25k-1e5c-lr2-s0" in labels and "scratch-n25k-1e5c-lr0.5-s0" in labels
    assert "finetune-text-n100k-1e5c-lr8-s0" in labels
    assert len({r.run_id for r in swept}) == len(swept)
    run = next(r for r in swept if r.label == "scratch-n25k-1e5c-lr2-s0")
    assert run.spec.settings.lr_scale == 2.0 and run.identity()["settings"] == {"batch_size": 16, "lr_scale": 2.0}
    assert run.sweep_keys == ("lr_scale",) and run.spec.settings.batch_size == 16
    pre = {r.run_id for r in plain if r.mode == "pretrain"}
    assert pre == {r.run_id for r in swept if r.mode == "pretrain"}            # the same pretraining runs
    assert all(r.depends_on[0] in pre for r in swept if r.mode == "finetune")


def test_two_swept_settings_give_every_combination():
    runs = study_runs(study_from_dict({**BASE, "sweep": {"lr_scale": [1, 2], "warmup_frac": [0.01, 0.1]}}))
    labels = {r.label for r in runs if r.mode == "scratch" and r.spec.size == "n25k" and r.spec.data_chars == 1e5}
    assert labels == {f"scratch-n25k-1e5c-lr{a}-warmupfrac{b}-s0" for a in (1, 2) for b in (0.01, 0.1)}


def test_a_study_without_a_sweep_keeps_its_labels():
    assert {r.label for r in study_runs(study_from_dict(BASE))} >= {"scratch-n25k-1e5c-s0", "finetune-text-n25k-1e5c-s0"}


@pytest.mark.parametrize("sweep, message", [
    ({"lr_scal": [1, 2]}, r"\[sweep\] \(the keys are \[train\] settings\): unknown key\(s\) lr_scal"),
    ({"lr_scale": [1, -2]}, r"\[sweep\] lr_scale must be > 0, got -2"),
    ({"lr_scale": [1, "two"]}, r"\[sweep\] lr_scale: expected a number"),
    ({"lr_scale": 2}, r"\[sweep\] lr_scale: expected a non-empty list"),
    ({"lr_scale": []}, r"\[sweep\] lr_scale: expected a non-empty list"),
    ({"lr_scale": [1, 1.0]}, r"\[sweep\] lr_scale: a value is repeated"),
    ({"batch_size": [8, 16]}, r"\[sweep\] batch_size is also set in \[train\]"),
    ({"schedule": ["cosine", "linear"]}, r"\[sweep\] schedule must be one of"),
    ({"max_steps": [10]}, r"\[sweep\] max_steps must be >= min_steps"),
])
def test_bad_sweeps_are_refused_naming_the_key(sweep, message):
    with pytest.raises(StudyError, match=message):
        study_from_dict({**BASE, "sweep": sweep})


def test_finetune_sizes_restrict_pretraining_and_fine_tunes():
    study = study_from_dict({**BASE, "finetune": {"data_chars": [1e5, 1e6], "sizes": ["n100k"]}})
    runs = study_runs(study)
    assert {r.spec.size for r in runs if r.mode in ("pretrain", "finetune")} == {"n100k"}
    assert {r.spec.size for r in runs if r.mode == "scratch"} == {"n25k", "n100k"}
    with pytest.raises(StudyError, match=r"\[finetune\] sizes: n1m not among the study's sizes"):
        study_from_dict({**BASE, "finetune": {"data_chars": [1e5], "sizes": ["n1m"]}})


def test_the_results_table_names_the_swept_setting_and_its_value(tmp_path):
    store = Store(tmp_path)
    runs = study_runs(study_from_dict(SWEPT))
    for run in runs:
        store.write_record(run, "ok", metrics={"n_params": run.spec.shape.n_params, "loss": 5.0,
                                               "data_chars": run.spec.data_chars, "lr_scale": run.spec.settings.lr_scale})
    table = pd.read_csv(store.write_table())
    swept = table[table["mode"] != "pretrain"]
    assert set(swept["sweep"]) == {"lr_scale"} and sorted(swept["lr_scale"].unique()) == [0.5, 1, 2, 4, 8]
    assert table.loc[table["mode"] == "pretrain", "sweep"].isna().all()


def test_jobs_lr_toml_is_the_sweep_the_issue_asks_for():
    study = load_study(JOBS / "lr.toml")
    values = dict(study.sweep)["lr_scale"]
    assert len(values) >= 5 and max(values) / min(values) >= 16
    assert len(study.sizes) >= 3 and len(study.scratch.values) >= 2
    runs = study_runs(study)
    finetune_points = {(r.spec.size, r.spec.data_chars) for r in runs if r.mode == "finetune"}
    assert len(finetune_points) >= 2
    assert all(sum(r.mode == "finetune" and (r.spec.size, r.spec.data_chars) == p for r in runs) == len(values)
               for p in finetune_points)


# ------------------------------------------------------------------ the analysis, on known answers

SIZES = {"n25k": 25_472, "n100k": 100_096, "n500k": 559_392}
GRID = [0.5, 1.0, 2.0, 4.0, 8.0]
TRUE = {"intercept": 1 + 0.8 * 5 - 0.9 * 5.5, "log10_n": -0.8, "log10_d": 0.9}


def true_best(n: float, d: float, mode: str = "scratch") -> float:
    log2 = TRUE["intercept"] + TRUE["log10_n"] * math.log10(n) + TRUE["log10_d"] * math.log10(d)
    return 2.0 ** (log2 - (1.0 if mode == "finetune" else 0.0))      # fine-tunes want half the LR here


def synthetic_table(noise: float = 0.0, seeds=(0,)) -> pd.DataFrame:
    """Loss = floor + 0.05·(log2 value − log2 best)², the best following TRUE; fine-tunes at two points."""
    rng = np.random.default_rng(0)
    rows = []
    points = [("scratch", "none", size, d) for size in SIZES for d in (1e5, 1e6)]
    points += [("finetune", "text", "n100k", d) for d in (1e5, 1e6)]
    for (mode, pretrain, size, d), value, seed in ((p, v, s) for p in points for v in GRID for s in seeds):
        n = SIZES[size]
        floor = 4.0 + 0.3 * math.log10(1e7 / d) - 0.2 * math.log10(n / 1e4)
        loss = floor + 0.05 * (math.log2(value) - math.log2(true_best(n, d, mode))) ** 2
        rows.append({"run_id": f"{mode}-{size}-{d:g}-{value:g}-{seed}", "status": "ok", "mode": mode,
                     "pretrain": pretrain, "size": size, "seed": seed, "n_params": n, "data_chars": d,
                     "loss": loss * (1 + noise * rng.standard_normal()), "sweep": "lr_scale", "lr_scale": value})
    rows.append({"run_id": "pre", "status": "ok", "mode": "pretrain", "pretrain": "text", "size": "n100k",
                 "n_params": 100_096, "loss": 6.0, "tokens_seen": 1e7})
    return pd.DataFrame(rows)


def test_the_parabola_finds_a_best_between_grid_values_and_flags_an_edge():
    values = np.array(GRID)
    loss = 3 + (np.log2(values) - np.log2(2.7)) ** 2
    best, at_best, edge = refined_best(values, loss)
    assert best == pytest.approx(2.7) and at_best == pytest.approx(3.0) and not edge
    best, _, edge = refined_best(values, 3 + (np.log2(values) - 5) ** 2)      # the best lies beyond 8
    assert best == 8.0 and edge


def test_the_sweep_analysis_recovers_the_best_values_and_the_rule():
    result = analyze_sweep_table(synthetic_table())
    assert result.key == "lr_scale" and len(result.best) == 8 and not result.best["edge"].any()
    for row in result.best.itertuples(index=False):
        assert row.best == pytest.approx(true_best(row.n_params, row.data_chars, row.mode), rel=1e-9)
    assert result.chosen.name == "N and D" and result.chosen.n_points == 6        # the fine-tunes are not fitted
    for key, want in TRUE.items():
        assert result.chosen.coefficients[key] == pytest.approx(want, abs=1e-9)
    others = {r.name: r.loo_rms for r in result.rules if r is not result.chosen}
    assert min(others.values()) > 0.1 > result.chosen.loo_rms
    finetune = result.best[result.best["mode"] == "finetune"]
    assert (finetune["best"] / finetune["rule"]).to_numpy() == pytest.approx([0.5, 0.5])


def test_a_rule_that_depends_on_d_alone_is_chosen_as_such():
    table = synthetic_table()
    table = table[table["mode"] == "scratch"].copy()
    n, d = table["n_params"].to_numpy(float), table["data_chars"].to_numpy(float)
    best = 2.0 ** (TRUE["log10_d"] * (np.log10(d) - 5.5))                      # no dependence on N
    table["loss"] = 4.0 - 0.1 * np.log10(n) + 0.05 * (np.log2(table["lr_scale"]) - np.log2(best)) ** 2
    result = analyze_sweep_table(table)
    assert result.chosen.name == "D"


def test_seeds_are_averaged_and_noise_keeps_the_best_near_the_truth():
    result = analyze_sweep_table(synthetic_table(noise=0.001, seeds=(0, 1, 2)))
    assert set(result.losses["n_seeds"]) == {3} and (result.losses["loss_std"] > 0).all()
    ratios = [row.best / true_best(row.n_params, row.data_chars, row.mode) for row in result.best.itertuples()]
    assert max(abs(math.log2(r)) for r in ratios) < 0.5


def test_analyze_writes_the_sweep_report_not_the_transfer_analysis(tmp_path):
    from effdata.analyze import main

    table = synthetic_table()
    table.loc[table["run_id"] == "scratch-n25k-100000-8-0", "status"] = "failed"
    table.to_csv(tmp_path / "results.csv", index=False)
    assert main([str(tmp_path / "results.csv"), "--out", str(tmp_path / "lr")]) == 0
    out = tmp_path / "lr"
    assert {"REPORT.md", "sweep.json", "sweep.csv", "best.csv", "sweep.png", "sweep.svg"} <= {p.name for p in out.iterdir()}
    assert not (out / "fits.json").exists()
    report = (out / "REPORT.md").read_text()
    assert "## Rule" in report and "**(chosen)**" in report and "1 run(s) not ok" in report
    saved = json.loads((out / "sweep.json").read_text())
    assert saved["chosen"]["name"] == "N and D" and len(saved["best"]) == 8
