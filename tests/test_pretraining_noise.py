"""A pretraining run's seed noise, shared by all its fine-tunes: which runs a table names
(`table.pretraining_run_of`), the groups re-drawn together (`runnoise.pretraining_groups`; pooled by default,
`redraw_pooled`; or a run at a time, `redraw_by_pretraining`), the analysis of variance (`pretraining_noise`), a
given shift for lone runs (`shared_families`) and what the report and fits.json say."""
import numpy as np
import pandas as pd
import pytest
from synthetic import CHECKPOINT_LAWS, make_cpu_runs, nested_runs

from effdata.analysis.core.bootstrap import draw_losses, estimate_noise, shared_families
from effdata.analysis.core.runnoise import (one_pretraining_per_point, own_seed_noise, pretraining_groups,
                                           pretraining_interaction, pretraining_noise)
from effdata.analysis.core.effective import compute_effective
from effdata.analysis.core.table import load_results, pretraining_run_of
from effdata.analysis.pipeline import analyze


def test_the_pretraining_run_is_given_or_read_off_init_from():
    table = pd.DataFrame({
        "mode": ["finetune"] * 5 + ["scratch"],
        "init_from": ["/s/runs/pretrain-text-w7k-s1-ab/checkpoint", "/s/runs/pretrain-text-w7k-s1-ab/checkpoint@10tpp",
                      "gpt2", None, "/t/checkpoint", "/s/runs/x/checkpoint"],
        "pretrain_run": [None, "", None, "B", None, "C"]})
    # A mid-run checkpoint is its run; a label that is no effdata path is its own run; scratch rows have none.
    assert pretraining_run_of(table).tolist()[:5] == ["pretrain-text-w7k-s1-ab", "pretrain-text-w7k-s1-ab",
                                                       "gpt2", "B", "t"]
    assert pd.isna(pretraining_run_of(table).iloc[5])


def _analysed(df, redraw="pooled"):
    results = load_results(df)
    effective = compute_effective(results)
    return results, estimate_noise(results, effective, pretraining_redraw=redraw)


def test_fine_tunes_of_one_pretraining_run_are_redrawn_together():
    df = make_cpu_runs(seeds=2, loss_noise=0.005, pretraining_noise=0.02, seed=3)
    results, noise = _analysed(df, "runs")
    assert [(g.n_params, len(g.runs), len(g.columns)) for g in noise.pretraining] == [(n, 2, 4) for n in
                                                                                      sorted(df["n_params"].unique())]
    assert "a pretraining run at a time" in noise.describe_pretraining()
    losses = results.runs["loss"].to_numpy()
    for redraw, together in (("runs", 1.0), ("points", 0.5 ** 4 + 2 * 0.25 ** 4)):
        results, noise = _analysed(df, redraw)
        draws = draw_losses(results, noise, 400, np.random.default_rng(0))
        group = pretraining_groups(results)[0]
        # Two runs A, B: a resample is their mean, or A twice, or B twice: every point moved by the same multiple
        # (0, +sqrt 2 or -sqrt 2) of its (A - mean). Point by point, each of the 4 points draws its own multiple
        # (0 with chance 1/2, each of the others 1/4): the same for all on 7 % of resamples.
        multiple = (draws[:, group.columns] - losses[group.columns]) / (group.values[:, 0] - group.values.mean(1))
        same = np.ptp(np.round(multiple, 6), axis=1) == 0
        assert same.mean() == pytest.approx(together, abs=0.08)


def test_pooled_redraws_share_one_shift_per_size_with_the_pooled_sds():
    # Four runs per size, a 3 % shared shift and 0.5 % per run: a size's points move together (correlation
    # tau^2 / (tau^2 + sigma^2), about 0.97 with the estimated parts), sizes independently, each by sqrt(parts / m).
    df = make_cpu_runs(seeds=4, loss_noise=0.005, pretraining_noise=0.03, seed=7)
    results, noise = _analysed(df)
    shared, checkpoint, per_point = noise.pooled
    pooled = pretraining_noise(noise.pretraining).iloc[-1]
    assert (shared, per_point) == (pooled["shared"], pooled["per_point"])
    assert checkpoint == 0 and np.isnan(pooled["checkpoint"])        # no checkpoints: nothing to split
    assert "one shift per pair" in noise.describe_pretraining()
    ratio = draw_losses(results, noise, 20_000, np.random.default_rng(1)) / results.runs["loss"].to_numpy()
    first, second = noise.pretraining[0].columns, noise.pretraining[1].columns
    within = np.corrcoef(ratio[:, first[0]], ratio[:, first[1]])[0, 1]
    assert within == pytest.approx(shared ** 2 / (shared ** 2 + per_point ** 2), abs=0.01)
    assert abs(np.corrcoef(ratio[:, first[0]], ratio[:, second[0]])[0, 1]) < 0.03
    assert ratio[:, first[0]].std() == pytest.approx(np.sqrt((shared ** 2 + per_point ** 2) / 4), rel=0.03)
    with pytest.raises(ValueError, match="pretraining_redraw"):
        _analysed(df, "sizes")


def test_a_checkpoints_own_shift_is_told_from_its_runs_and_drawn_once_for_its_points():
    # Four runs per size, each fine-tuned from its final model and a mid-run checkpoint: 1 % shared by the run,
    # 2 % more by each checkpoint's fine-tunes, 0.3 % per fine-tune.
    df = make_cpu_runs(CHECKPOINT_LAWS, seeds=4, loss_noise=0.003, pretraining_noise=0.01, checkpoint_noise=0.02, seed=3)
    results, noise = _analysed(df)
    pooled = pretraining_noise(noise.pretraining).iloc[-1]
    assert 0.013 < pooled["checkpoint"] < 0.03 and pooled["checkpoint_p"] < 1e-3 and pooled["per_point"] < 0.005
    assert noise.pooled == (pooled["shared"], pooled["checkpoint"], pooled["per_point"])
    assert "one per checkpoint of a run" in noise.describe_pretraining()
    ratio = draw_losses(results, noise, 20_000, np.random.default_rng(2)) / results.runs["loss"].to_numpy()
    group = noise.pretraining[0]
    final, mid = group.columns[group.starts == ""], group.columns[group.starts == "10tpp"]
    shared, checkpoint, per_point = noise.pooled
    total = shared ** 2 + checkpoint ** 2 + per_point ** 2
    assert np.corrcoef(ratio[:, final[0]], ratio[:, final[1]])[0, 1] == pytest.approx(
        (shared ** 2 + checkpoint ** 2) / total, abs=0.02)
    assert np.corrcoef(ratio[:, final[0]], ratio[:, mid[0]])[0, 1] == pytest.approx(shared ** 2 / total, abs=0.02)


def test_the_checkpoint_part_is_seldom_found_where_there_is_none():
    alarms = []
    for seed in range(60):
        df = make_cpu_runs(CHECKPOINT_LAWS, seeds=3, loss_noise=0.005, pretraining_noise=0.01, checkpoint_noise=0.0,
                           seed=200 + seed)
        alarms.append(pretraining_noise(pretraining_groups(load_results(df))).iloc[-1]["checkpoint_p"] < 0.05)
    assert np.mean(alarms) <= 0.12          # nominal 5 %; 60 tables give it a standard error of 2.8 %


def test_a_given_checkpoint_noise_shifts_each_checkpoints_fine_tunes_beyond_the_runs():
    # One run per size fine-tuned from its final model and a mid-run checkpoint: --pretraining-noise 1 % for the
    # run, --checkpoint-noise 2 % more for each checkpoint's own fine-tunes.
    results = load_results(make_cpu_runs(CHECKPOINT_LAWS, seeds=1, loss_noise=0.0, pretraining_noise=0.0,
                                         checkpoint_noise=0.0, seed=2))
    noise = estimate_noise(results, compute_effective(results), loss_noise=0.0, shared_noise=0.01, checkpoint_noise=0.02)
    assert [len(c) for c in noise.shared_families] == [8] * 5      # a run: 4 D_F from each of its two checkpoints
    assert "those of each of its checkpoints by 2% more" in noise.describe_pretraining()
    ratio = draw_losses(results, noise, 20_000, np.random.default_rng(5)) / results.runs["loss"].to_numpy()
    names = results.runs["pretrain"].to_numpy()
    columns = noise.shared_families[0]
    final, mid = columns[names[columns] == "text"], columns[names[columns] == "text@10tpp"]
    np.testing.assert_allclose(ratio[:, final], ratio[:, final[:1]].repeat(len(final), 1))
    assert ratio[:, final[0]].std() == pytest.approx(np.sqrt(0.01 ** 2 + 0.02 ** 2), rel=0.03)
    assert np.corrcoef(ratio[:, final[0]], ratio[:, mid[0]])[0, 1] == pytest.approx(0.2, abs=0.03)   # 1 / (1 + 4)
    # The checkpoints' part alone is a shift per checkpoint, none shared by the run.
    alone = estimate_noise(results, compute_effective(results), loss_noise=0.0, checkpoint_noise=0.02)
    ratio = draw_losses(results, alone, 20_000, np.random.default_rng(5)) / results.runs["loss"].to_numpy()
    assert abs(np.corrcoef(ratio[:, final[0]], ratio[:, mid[0]])[0, 1]) < 0.03


def test_one_run_per_point_or_one_point_per_size_is_no_group():
    # One seed: one pretraining run per size. A single point with several runs: its seeds, re-drawn as before.
    assert pretraining_groups(load_results(make_cpu_runs(seeds=1, pretraining_noise=0.02))) == []
    df = make_cpu_runs(seeds=2, pretraining_noise=0.02, seed=1)
    one_point = df[(df["mode"] == "scratch") | (df["data_chars"] == 1e4) | (df["seed"] == 0)]
    assert pretraining_groups(load_results(one_point)) == []
    # Without a pretraining run named, fine-tune seeds are independent, as before.
    assert pretraining_groups(load_results(df.drop(columns="pretrain_run"))) == []


def test_the_analysis_of_variance_recovers_a_shared_shift():
    # Four runs per size at five N, four points each: 15 degrees of freedom for the shared part.
    table = pretraining_noise(pretraining_groups(load_results(
        make_cpu_runs(seeds=4, loss_noise=0.005, pretraining_noise=0.03, seed=7))))
    pooled = table[table["pretrain"] == "all"].iloc[0]
    assert (pooled["runs"], pooled["points"]) == (4, 20)
    assert pooled["shared"] == pytest.approx(0.03, rel=0.4)
    assert pooled["per_point"] == pytest.approx(0.005, rel=0.3)
    assert pooled["p_value"] < 1e-6


def test_the_shared_part_is_rarely_found_where_there_is_none():
    # p < 0.05 on tables with no shared shift: the F test's false-alarm rate, 5 % by construction (200 tables).
    alarms = [pretraining_noise(pretraining_groups(load_results(
        make_cpu_runs(seeds=2, loss_noise=0.01, pretraining_noise=0.0, seed=s)))).iloc[-1]["p_value"] < 0.05
        for s in range(200)]
    assert 0.02 <= np.mean(alarms) <= 0.09


def test_a_given_pretraining_noise_shifts_each_lone_runs_fine_tunes_together():
    # One pretraining run per size (as v4): --pretraining-noise 3 % moves all of a run's fine-tunes by one factor.
    df = make_cpu_runs(seeds=1, loss_noise=0.0, seed=2)
    results = load_results(df)
    effective = compute_effective(results)
    noise = estimate_noise(results, effective, loss_noise=0.0, shared_noise=0.03)
    n_values = sorted(df["n_params"].unique())
    assert [len(c) for c in noise.shared_families] == [4] * len(n_values)
    assert "shifted together by σ = 3%" in noise.describe_pretraining()
    draws = draw_losses(results, noise, 20_000, np.random.default_rng(4))
    ratio = draws / results.runs["loss"].to_numpy()
    for columns in noise.shared_families:
        np.testing.assert_allclose(ratio[:, columns], ratio[:, columns[:1]].repeat(len(columns), 1))
        assert ratio[:, columns[0]].std() == pytest.approx(0.03, rel=0.03)
    scratch = (results.runs["mode"] == "scratch").to_numpy()
    np.testing.assert_allclose(ratio[:, scratch], 1.0)
    # Without it, or for sizes pretrained twice (re-drawn a run at a time), no shared shift is added.
    assert estimate_noise(results, effective).shared_families == []
    two = load_results(make_cpu_runs(seeds=2, pretraining_noise=0.02, seed=1))
    assert shared_families(two, pretraining_groups(two)) == []


def test_the_report_says_which_fine_tunes_were_redrawn_together_or_warns_that_none_were(tmp_path):
    lone = "start from one pretraining run"
    # Two pretraining runs per size, the first fine-tuned three times at each point.
    twice = analyze(nested_runs(runs=2, replicates=3, shared=0.03, own=0.005, seed=5), tmp_path / "twice",
                    n_bootstrap=50, figures=False)
    report = (tmp_path / "twice" / "REPORT.md").read_text()
    assert "Pretraining runs: the fine-tunes of 5 (pretraining, N) pair(s) pretrained 2 times (text at N = " in report
    assert "A pretraining run's seed, shared by all its fine-tunes" in report
    pooled = twice["pretraining_noise"][-1]
    assert pooled["pretrain"] == "all" and pooled["p_value"] < 0.01
    assert "A fine-tune's own seed (fine-tunes of one pretraining run at one point" in report
    assert twice["own_seed_noise"][-1]["pretrain"] == "all" and twice["pretraining_interaction"]["p_value"] > 1e-3
    assert f"accounts for {100 * twice['pretraining_interaction']['own_in_per_point']:.2g}%" in report
    assert "re-drawn together (a shared shift per size, pooled)" in twice["interval"]["resample"]
    assert twice["interval"]["pretraining_noise_given"] is None and not any(lone in w for w in twice["warnings"])
    # The audit refits each law on each pretraining seed's runs alone (audit/replicates.py: tests/test_replicates.py).
    law = next(law for law in twice["audit"]["laws"] if law["law"] == "transfer law 'text'")
    alone = [f"seed {s}'s pretraining runs alone" for s in (0, 1)]
    assert list(law["alpha_per_decade_by_replicate"]) == alone and set(alone) <= set(law["sensitivity"])
    assert f"| {alone[1]} |" in report and "With each pretraining seed's runs alone" in report
    once = make_cpu_runs(seeds=1, loss_noise=0.005, seed=5)
    warned = analyze(once, tmp_path / "once", n_bootstrap=20, figures=False)
    assert warned["pretraining_noise"] == [] and sum(lone in w for w in warned["warnings"]) == 1
    assert "own_seed_noise" not in warned          # no (run, point) with two fine-tunes: fits.json as it was
    assert not any("alpha_per_decade_by_replicate" in law for law in warned["audit"]["laws"])
    given = analyze(once, tmp_path / "given", n_bootstrap=20, figures=False, pretraining_noise=0.015,
                    checkpoint_noise=0.01)
    assert given["interval"]["pretraining_noise_given"] == 0.015 and not any(lone in w for w in given["warnings"])
    assert given["interval"]["checkpoint_noise_given"] == 0.01 and "checkpoint_noise_given" not in warned["interval"]
    report = (tmp_path / "given" / "REPORT.md").read_text()
    assert "shifted together by σ = 1.5%" in report and "by 1% more (given: --checkpoint-noise)" in report
    with pytest.raises(ValueError, match="pretraining_noise"):
        analyze(once, tmp_path / "bad", n_bootstrap=0, figures=False, pretraining_noise=1.5)
    with pytest.raises(ValueError, match="checkpoint_noise"):
        analyze(once, tmp_path / "bad", n_bootstrap=0, figures=False, checkpoint_noise=-0.1)


def test_one_pretraining_per_point_is_told_from_the_runs_the_seeds_name():
    twice = make_cpu_runs(seeds=2, loss_noise=0.005, pretraining_noise=0.0, seed=6)
    same_run = twice.assign(pretrain_run=twice["pretrain_run"].str.replace("-s1", "-s0"))
    assert one_pretraining_per_point(load_results(make_cpu_runs(seeds=1)))
    assert one_pretraining_per_point(load_results(same_run))          # two fine-tune seeds of one pretraining
    assert not one_pretraining_per_point(load_results(twice))
    assert not one_pretraining_per_point(load_results(twice.drop(columns="pretrain_run")))  # seeds, runs unknown
    assert not one_pretraining_per_point(load_results(twice[twice["mode"] == "scratch"]))    # nothing fine-tuned


def test_groups_with_no_point_that_every_run_has_are_resampled_by_runs():
    # Three runs per size, each point missing a different one: nothing for the analysis of variance to pool.
    df = make_cpu_runs(seeds=3, loss_noise=0.005, pretraining_noise=0.02, seed=8)
    d_f = sorted(df.loc[df["mode"] == "finetune", "data_chars"].unique())
    missing = (df["mode"] == "finetune") & (df["seed"] == df["data_chars"].map({d: i % 3 for i, d in enumerate(d_f)}))
    results, noise = _analysed(df[~missing])
    assert noise.pretraining and noise.pooled is None and pretraining_noise(noise.pretraining).empty
    assert "a pretraining run at a time" in noise.describe_pretraining()


def test_a_fine_tunes_own_seed_noise_is_measured_within_a_run_and_point():
    table = load_results(nested_runs(own=0.01, seed=1))
    own = own_seed_noise(table)
    assert list(own["pretrain"]) == ["text"] * 5 + ["all"]          # five sizes, then pooled
    pooled = own.iloc[-1]
    assert pooled["cells"] == 5 * 4 and pooled["fine_tunes"] == 5 * 4 * 4 and pooled["dof"] == 5 * 4 * 3
    assert 0.008 < pooled["own"] < 0.012
    # One fine-tune per (run, point) measures nothing of it: the seeds of make_cpu_runs each have their own run.
    assert own_seed_noise(load_results(make_cpu_runs(seeds=2, pretraining_noise=0.01))).empty
    # Nor do rows of one seed at other settings (a sweep over batch size: analysis/lr/batch).
    one = make_cpu_runs(seeds=1, pretraining_noise=0.01)
    tuned = one[one["mode"] == "finetune"]
    swept = pd.concat([one, tuned.assign(loss=tuned["loss"] * 1.01, batch_size=32)], ignore_index=True)
    assert own_seed_noise(load_results(swept)).empty


def test_what_the_own_seed_leaves_of_the_per_point_part_is_found_where_it_is_and_seldom_where_it_is_not():
    found = []
    for seed in range(3):
        table = load_results(nested_runs(interaction=0.015, own=0.005, seed=seed))
        split = pretraining_interaction(pretraining_groups(table), own_seed_noise(table))
        found.append(split["p_value"] < 0.01 and 0.01 < split["interaction"] < 0.02)
    assert all(found)
    alarms = []
    for seed in range(60):
        table = load_results(nested_runs(interaction=0.0, own=0.01, seed=100 + seed))
        split = pretraining_interaction(pretraining_groups(table), own_seed_noise(table))
        alarms.append(split["p_value"] < 0.05)
    assert np.mean(alarms) <= 0.12          # nominal 5 %; 60 tables give it a standard error of 2.8 %


def test_fine_tune_seeds_of_a_lone_pretraining_are_said_to_measure_their_own_noise_alone():
    from effdata.analysis.pipeline import _lone_pretraining_warning

    lone = _analysed(nested_runs(runs=1, replicates=3, seed=4))           # one run per size, three fine-tunes a point
    [warning] = _lone_pretraining_warning(*lone)
    assert "start from one pretraining run" in warning and "a fine-tune's own seed alone" in warning
    [plain] = _lone_pretraining_warning(*_analysed(make_cpu_runs(seeds=1, loss_noise=0.005)))
    assert "own seed" not in plain and "from-scratch seeds" not in plain
    # Seeds of the from-scratch points alone (as cpu-seeds): their noise is lent to the fine-tunes, and the warning
    # says what that cost on v4's replicates.
    scratch_seeded = make_cpu_runs(seeds=3, loss_noise=0.005)
    scratch_seeded = scratch_seeded[(scratch_seeded["mode"] == "scratch") | (scratch_seeded["seed"] == 0)]
    [lent] = _lone_pretraining_warning(*_analysed(scratch_seeded))
    assert "re-drawn with the from-scratch seeds' noise" in lent and "about half the spread" in lent
    assert _lone_pretraining_warning(*_analysed(nested_runs(runs=2, replicates=2, seed=4))) == []
