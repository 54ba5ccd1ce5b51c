"""Study files: checked before anything runs; expanded into runs with stable ids and dependencies."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from effdata.spec import TrainSettings, get_shape
from effdata.study.study import StudyError, load_study, study_from_dict, study_runs
from effdata.training.schedule import schedule_for

JOBS = Path(__file__).resolve().parent.parent / "jobs"

MINIMAL = {
    "name": "t",
    "sizes": ["n25k", "n50k"],
    "scratch": {"data_chars": [1e4, 3e4]},
    "finetune": {"data_chars": [1e4]},
    "pretrain": {"corpora": ["text"], "token_budget": 20000},
}


@pytest.mark.parametrize("path", sorted(JOBS.glob("*.toml")), ids=lambda p: p.name)
def test_every_job_file_loads(path):
    study = load_study(path)
    assert study.sizes and study.finetune.values and study_runs(study, list(study.pretrain.corpora))


def test_plan_has_dependencies_and_shared_scratch_runs():
    study = study_from_dict(MINIMAL)
    text = study_runs(study, ["text"])
    both = study_runs(study, ["text", "text+code"])
    modes = [r.mode for r in text]
    assert modes.count("scratch") == 4 and modes.count("pretrain") == 2 and modes.count("finetune") == 2
    ids = {r.run_id for r in text}
    for run in text:
        if run.mode == "finetune":
            assert len(run.depends_on) == 1 and run.depends_on[0] in ids
            assert run.init_from_run == run.depends_on[0]
    # Adding a pretraining corpus adds its pretraining and fine-tunes, and shares every scratch run.
    scratch = lambda runs: {r.run_id for r in runs if r.mode == "scratch"}  # noqa: E731
    assert scratch(text) == scratch(both)
    assert {r.run_id for r in both} > ids
    assert len(both) == len(text) + 4


@pytest.mark.parametrize("job, table", [("cpu", "cpu"), ("cpu-v3", "cpu-v3"), ("cpu-v2", "cpu-v2"), ("cpu-fixed-budget", "cpu-fixed-budget"), ("quick", "quick")])
def test_job_files_plan_the_run_ids_of_the_committed_tables(job, table):
    """Run ids name run directories and committed results: planning must keep making the same ones."""
    import pandas as pd

    # A mid-run checkpoint's row is its pretraining run's id + "@10tpp": the run is the planned one.
    committed = {re.sub(r"@[\d.]+tpp$", "", run_id)
                 for run_id in pd.read_csv(JOBS.parent / "analysis" / table / "results.csv")["run_id"]}
    planned = {r.run_id for r in study_runs(load_study(JOBS / f"{job}.toml"), ["text", "text+code"])}
    assert planned == committed


def test_run_ids_are_stable_and_follow_the_spec():
    first = {r.run_id for r in study_runs(study_from_dict(MINIMAL))}
    assert first == {r.run_id for r in study_runs(study_from_dict(MINIMAL))}
    changed = study_from_dict({**MINIMAL, "train": {"batch_size": 3}})
    assert first.isdisjoint({r.run_id for r in study_runs(changed)})


@pytest.mark.parametrize("change, message", [
    ({"sizez": ["n25k"]}, "unknown key"),
    ({"sizes": ["n999"]}, "unknown model size"),
    ({"sizes": "n25k", "seeds": ["a"]}, "seeds"),
    ({"scratch": {"data_chars": [1e4], "data_tokens": [5]}}, "exactly one"),
    ({"scratch": {"data_chars": [-5]}}, "positive"),
    ({"scratch": {"data_chars": ["many"]}}, "expected a number"),
    ({"finetune": {"data_chars": []}}, "non-empty list"),
    ({"scratch": {"data_chars": []}, "finetune": {"data_chars": [1e4], "sizes": []}}, "nothing to run"),
    ({"train": {"batch_sizes": 4}}, "unknown key"),
    ({"train": {"batch_size": "four"}}, "batch_size"),
    ({"train": {"lr_rule": "fast"}}, "lr_rule"),
    ({"pretrain": {"corpora": ["text"], "token_budget": {"n25k": 10}}}, "no entry for size"),
])
def test_bad_study_files_are_refused_with_a_clear_message(change, message):
    with pytest.raises(StudyError, match=message):
        study_from_dict({**MINIMAL, **change})


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(StudyError, match="not found"):
        load_study(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed")
    with pytest.raises(StudyError, match="not valid TOML"):
        load_study(bad)


def test_pretraining_budget_per_parameter_with_floor_and_ceiling():
    study = study_from_dict({**MINIMAL, "sizes": ["n25k", "n100k", "n500k"],
                             "pretrain": {"tokens_per_param": 100, "min_tokens": 5e6, "max_tokens": 3e7}})
    budgets = {r.spec.size: r.spec.token_budget for r in study_runs(study) if r.mode == "pretrain"}
    # n25k: 100 × 25,472 = 2.5 M, raised to the floor; n100k: 100 × 100,096; n500k: 55.9 M, cut to the ceiling
    assert budgets == {"n25k": 5_000_000, "n100k": 10_009_600, "n500k": 30_000_000}
    fixed = {r.run_id for r in study_runs(study_from_dict(MINIMAL)) if r.mode == "pretrain"}
    assert fixed.isdisjoint(r.run_id for r in study_runs(study) if r.mode == "pretrain")


@pytest.mark.parametrize("pretrain, message", [
    ({"tokens_per_param": 100, "token_budget": 1000}, "not both"),
    ({"tokens_per_param": -3}, "positive number"),
    ({"tokens_per_param": "lots"}, "positive number"),
    ({"token_budget": 1000, "min_tokens": 10}, "goes with tokens_per_param"),
    ({"tokens_per_param": 10, "min_tokens": 1e7, "max_tokens": 1e6}, "is above max_tokens"),
])
def test_bad_pretraining_budgets_are_refused(pretrain, message):
    with pytest.raises(StudyError, match=message):
        study_from_dict({**MINIMAL, "pretrain": pretrain})


WSD = {"corpora": ["text"], "token_budget": 2_000_000, "schedule": "wsd"}


@pytest.mark.parametrize("pretrain, train, message", [
    ({**WSD, "schedule": "cosine", "checkpoint_tokens_per_param": [10]}, {"pretrain_stop_on": "budget"},
     r'\[pretrain\] checkpoint_tokens_per_param needs schedule = "wsd"'),
    ({**WSD, "schedule": "cosine", "checkpoint_tokens": [1e6]}, {"pretrain_stop_on": "budget"},
     r'\[pretrain\] checkpoint_tokens needs schedule = "wsd"'),
    ({**WSD, "checkpoint_tokens": [1e6, 2e6]}, {"pretrain_stop_on": "budget"},
     r"\[pretrain\] checkpoint_tokens 2,000,000 at n25k is not below its budget of 2,000,000"),
    ({**WSD, "checkpoint_tokens": [1.5e6, 0]}, {"pretrain_stop_on": "budget"},
     r"\[pretrain\] checkpoint_tokens: expected a list of positive numbers"),
    ({**WSD, "checkpoint_tokens": [1.5e5 + 0.5]}, {"pretrain_stop_on": "budget"},
     r"\[pretrain\] checkpoint_tokens: expected a positive whole number"),
    ({**WSD, "checkpoint_tokens_per_param": [10]}, {},
     r'\[pretrain\] checkpoint_tokens_per_param needs pretrain_stop_on = "budget"'),
    ({**WSD, "checkpoint_tokens_per_param": [10, 50]}, {"pretrain_stop_on": "budget"},
     r"\[pretrain\] checkpoint_tokens_per_param 50 at n50k is 2,832,000 tokens, not below the run's budget"),
    ({**WSD, "checkpoint_tokens_per_param": 10}, {"pretrain_stop_on": "budget"}, "expected a list of positive numbers"),
    ({**WSD, "checkpoint_tokens_per_param": [10, 0]}, {"pretrain_stop_on": "budget"}, "expected a list of positive"),
    ({**WSD, "checkpoint_tokens_per_param": [10, 10]}, {"pretrain_stop_on": "budget"}, "repeated"),
    ({**WSD, "schedule": "linear"}, {}, r"\[pretrain\] schedule must be one of 'cosine', 'wsd', got 'linear'"),
    ({**WSD, "decay_frac": 1.5}, {}, r"\[pretrain\] decay_frac must be in \(0, 1\], got 1.5"),
    ({**WSD, "warmup_frac": 1.5}, {}, r"\[pretrain\] warmup_frac must be in \[0, 1\), got 1.5"),
    ({**WSD, "patience": 3}, {}, r"\[pretrain\]: unknown key\(s\) patience"),
])
def test_bad_mid_run_checkpoints_are_refused_naming_the_key(pretrain, train, message):
    with pytest.raises(StudyError, match=message):
        study_from_dict({**MINIMAL, "pretrain": pretrain, "train": train})


def test_checkpoint_tokens_give_every_size_a_checkpoint_at_those_tokens():
    """jobs/cpu-fixed-tokens-series.toml: a checkpoint at one token count for every size, named by its tokens per
    parameter at each; it takes exactly those tokens (so it is the final model of a run with that budget), and one
    that equals a checkpoint_tokens_per_param value is that checkpoint, not a second one."""
    n25k = get_shape("n25k").n_params
    pretrain = {**WSD, "checkpoint_tokens_per_param": [10], "checkpoint_tokens": [5e5, 10 * n25k]}
    runs = study_runs(study_from_dict({**MINIMAL, "pretrain": pretrain, "train": {"pretrain_stop_on": "budget"}}))
    pre = {r.spec.size: r for r in runs if r.mode == "pretrain"}
    for size, run in pre.items():
        n = get_shape(size).n_params
        tpp = run.spec.checkpoint_tokens_per_param
        assert {round(c * n) for c in tpp} == {10 * n, 500_000, 10 * n25k}
        assert len(tpp) == (2 if size == "n25k" else 3)
        starts = {r.init_from_checkpoint for r in runs if r.mode == "finetune" and r.depends_on == (run.run_id,)}
        assert len(starts) == len(tpp) + 1
    assert pre["n25k"].spec.checkpoint_tokens_per_param == (10.0, 500_000 / n25k)
    plain = study_runs(study_from_dict({**MINIMAL, "pretrain": {**WSD, "checkpoint_tokens_per_param": [10]},
                                        "train": {"pretrain_stop_on": "budget"}}))
    assert {r.run_id for r in plain if r.mode == "scratch"} == {r.run_id for r in runs if r.mode == "scratch"}


def test_pretrain_schedule_is_for_the_pretraining_runs_alone():
    study = study_from_dict({**MINIMAL, "pretrain": WSD})
    runs = study_runs(study)
    assert {r.spec.settings.schedule for r in runs if r.mode == "pretrain"} == {"wsd"}
    assert {r.spec.settings.schedule for r in runs if r.mode != "pretrain"} == {"cosine"}
    plain = study_runs(study_from_dict({**MINIMAL, "pretrain": {**WSD, "schedule": "cosine"}}))
    assert {r.run_id for r in runs if r.mode == "scratch"} == {r.run_id for r in plain if r.mode == "scratch"}
    warm = study_runs(study_from_dict({**MINIMAL, "pretrain": {**WSD, "warmup_frac": 0.01},
                                       "train": {"warmup_frac": 0.2}}))
    assert {r.spec.settings.warmup_frac for r in warm if r.mode == "pretrain"} == {0.01}   # jobs/cpu.toml v3
    assert {r.spec.settings.warmup_frac for r in warm if r.mode != "pretrain"} == {0.2}


def test_pretrain_batch_size_is_for_the_pretraining_runs_alone():
    study = study_from_dict({**MINIMAL, "pretrain": {**WSD, "batch_size": 128}, "train": {"batch_size": 16}})
    runs = study_runs(study)
    assert {r.spec.settings.batch_size for r in runs if r.mode == "pretrain"} == {128}
    assert {r.spec.settings.batch_size for r in runs if r.mode != "pretrain"} == {16}
    with pytest.raises(StudyError, match=r"\[pretrain\] batch_size must be >= 1, got 0"):
        study_from_dict({**MINIMAL, "pretrain": {**WSD, "batch_size": 0}})


def test_pretrain_lr_scale_changes_the_pretraining_and_its_fine_tunes_alone():
    """jobs/lr-pretrain-*.toml: the pretraining LR checked by a key that leaves the from-scratch ids alone."""
    base = study_runs(study_from_dict({**MINIMAL, "pretrain": WSD}))
    half = study_runs(study_from_dict({**MINIMAL, "pretrain": {**WSD, "lr_scale": 0.5}}))
    assert {r.spec.settings.lr_scale for r in half if r.mode == "pretrain"} == {0.5}
    assert {r.spec.settings.lr_scale for r in half if r.mode != "pretrain"} == {1.0}
    ids = lambda runs, mode: {r.run_id for r in runs if r.mode == mode}  # noqa: E731
    assert ids(half, "scratch") == ids(base, "scratch")
    assert not ids(half, "pretrain") & ids(base, "pretrain") and not ids(half, "finetune") & ids(base, "finetune")
    with pytest.raises(StudyError, match=r"\[pretrain\] lr_scale must be > 0, got 0"):
        study_from_dict({**MINIMAL, "pretrain": {**WSD, "lr_scale": 0}})


def test_pretrain_warmup_max_holds_a_pretrainings_warm_up_with_or_without_checkpoints():
    """Without checkpoints a pretraining warms up over 5 % of its own steps, with them over 5 % of the shortest
    checkpoint's (METHOD §5b); [pretrain] warmup_max caps both at one value, and leaves the other runs alone."""
    def warmups(pretrain):
        runs = study_runs(study_from_dict({**MINIMAL, "pretrain": pretrain, "train": {"pretrain_stop_on": "budget"}}))
        return {r.spec.size: schedule_for(r.spec, 0, get_shape(r.spec.size).n_params).warmup_steps
                for r in runs if r.mode == "pretrain"}, runs
    checkpointed, _ = warmups({**WSD, "checkpoint_tokens_per_param": [10]})
    alone, base = warmups(WSD)
    assert all(checkpointed[size] < alone[size] for size in alone)        # the two differ by default
    capped = {name: warmups({**pretrain, "warmup_max": 2}) for name, pretrain in
              (("checkpointed", {**WSD, "checkpoint_tokens_per_param": [10]}), ("alone", WSD))}
    assert capped["checkpointed"][0] == capped["alone"][0] == {size: 2 for size in alone}
    runs = capped["alone"][1]
    assert {r.spec.settings.warmup_max for r in runs if r.mode != "pretrain"} == {TrainSettings().warmup_max}
    ids = lambda runs, mode: {r.run_id for r in runs if r.mode == mode}  # noqa: E731
    assert ids(runs, "scratch") == ids(base, "scratch") and not ids(runs, "pretrain") & ids(base, "pretrain")


@pytest.mark.parametrize("key, value", [("lr_scale", 0.125), ("min_steps", 2)])
def test_finetune_settings_change_the_fine_tunes_alone(key, value):
    """jobs/cpu-ft-lr*.toml: the fine-tuning LR set for the fine-tunes alone; jobs/cpu-fixed-tokens-min-steps-*.toml
    their shortest length. The from-scratch runs and the pretraining keep their ids (so a study can reuse v4's), the
    fine-tunes get new ones."""
    base = study_runs(study_from_dict({**MINIMAL, "pretrain": WSD}))
    low = study_runs(study_from_dict({**MINIMAL, "pretrain": WSD,
                                      "finetune": {**MINIMAL["finetune"], key: value}}))
    default = getattr(TrainSettings(), key)
    assert {getattr(r.spec.settings, key) for r in low if r.mode == "finetune"} == {value} != {default}
    assert {getattr(r.spec.settings, key) for r in low if r.mode != "finetune"} == {default}
    ids = lambda runs, mode: {r.run_id for r in runs if r.mode == mode}  # noqa: E731
    assert ids(low, "scratch") == ids(base, "scratch") and ids(low, "pretrain") == ids(base, "pretrain")
    assert ids(low, "finetune") and not ids(low, "finetune") & ids(base, "finetune")
    assert all(r.depends_on[0] in ids(base, "pretrain") for r in low if r.mode == "finetune")


def test_scratch_max_steps_changes_the_scratch_runs_alone():
    """jobs/cpu-large-d.toml: a higher step cap for the from-scratch runs alone (larger data sizes need it); the
    pretraining and the fine-tunes keep their ids, the from-scratch runs get new ones with the new cap."""
    base = study_runs(study_from_dict({**MINIMAL, "pretrain": WSD}))
    capped = study_runs(study_from_dict({**MINIMAL, "pretrain": WSD,
                                         "scratch": {**MINIMAL["scratch"], "max_steps": 9000}}))
    assert {r.spec.settings.max_steps for r in capped if r.mode == "scratch"} == {9000}
    default = TrainSettings().max_steps
    assert {r.spec.settings.max_steps for r in capped if r.mode != "scratch"} == {default} != {9000}
    ids = lambda runs, mode: {r.run_id for r in runs if r.mode == mode}  # noqa: E731
    assert ids(capped, "finetune") == ids(base, "finetune") and ids(capped, "pretrain") == ids(base, "pretrain")
    assert ids(capped, "scratch") and not ids(capped, "scratch") & ids(base, "scratch")


@pytest.mark.parametrize("finetune, sweep, message", [
    ({"lr_scale": 0}, {}, r"\[finetune\] lr_scale must be > 0, got 0"),
    ({"lr_scale": "low"}, {}, r"\[finetune\] lr_scale"),
    ({"lr_scale": 0.5}, {"lr_scale": [0.5, 1]}, r"\[finetune\] lr_scale is also swept in \[sweep\]"),
    ({"batch_size": 8}, {}, r"\[finetune\]: unknown key\(s\) batch_size"),
    ({"max_steps": 0}, {}, r"\[finetune\] max_steps"),
    ({"min_steps": 0}, {}, r"\[finetune\] min_steps must be >= 1"),
])
def test_finetune_settings_are_checked_before_anything_runs(finetune, sweep, message):
    raw = {**MINIMAL, "finetune": {**MINIMAL["finetune"], **finetune}, **({"sweep": sweep} if sweep else {})}
    with pytest.raises(StudyError, match=message):
        study_from_dict(raw)


@pytest.mark.parametrize("scratch, message", [
    ({"max_steps": 4}, r"\[scratch\] max_steps must be >= min_steps"),
    ({"lr_scale": 0}, r"\[scratch\] lr_scale must be > 0"),
    ({"batch_size": 8}, r"\[scratch\]: unknown key\(s\) batch_size"),
])
def test_scratch_settings_are_checked_before_anything_runs(scratch, message):
    raw = {**MINIMAL, "train": {"min_steps": 8}, "scratch": {**MINIMAL["scratch"], **scratch}}
    with pytest.raises(StudyError, match=message):
        study_from_dict(raw)


def test_extra_seeds_cover_only_the_sizes_they_name():
    study = study_from_dict({**MINIMAL, "scratch": {"data_chars": [1e4, 3e4, 1e5]}, "finetune": {"data_chars": [1e4, 3e4]},
                             "extra_seeds": {"seeds": [1, 2], "scratch_data_chars": [1e4],
                                             "finetune_data_chars": [1e4]}})
    runs = study_runs(study, ["text"])
    by_seed = {seed: [r for r in runs if r.spec.seed == seed] for seed in (0, 1, 2)}
    assert len(by_seed[0]) == 2 * (3 + 1 + 2)          # two sizes: 3 scratch, a pretraining, 2 fine-tunes
    for seed in (1, 2):
        assert sorted((r.mode, r.spec.data_chars) for r in by_seed[seed] if r.spec.size == "n25k") == [
            ("finetune", 10_000), ("pretrain", None), ("scratch", 10_000)]
        for run in by_seed[seed]:
            if run.mode == "finetune":   # each extra seed fine-tunes its own pretraining run
                pre = next(r for r in runs if r.run_id == run.init_from_run)
                assert (pre.spec.seed, pre.spec.size) == (seed, run.spec.size)
    # The study's own runs keep their ids: extra seeds only add runs.
    plain = study_from_dict({**MINIMAL, "scratch": {"data_chars": [1e4, 3e4, 1e5]}, "finetune": {"data_chars": [1e4, 3e4]}})
    assert {r.run_id for r in study_runs(plain, ["text"])} == {r.run_id for r in by_seed[0]}
    only_scratch = study_from_dict({**MINIMAL, "extra_seeds": {"seeds": [5], "scratch_data_chars": [3e4]}})
    assert [(r.mode, r.spec.seed) for r in study_runs(only_scratch) if r.spec.seed == 5] == [("scratch", 5)] * 2


def test_a_study_that_fine_tunes_no_size_plans_its_from_scratch_runs_alone_under_the_same_ids():
    full = {r.run_id for r in study_runs(study_from_dict(MINIMAL), ["text", "text+code"]) if r.mode == "scratch"}
    alone = study_runs(study_from_dict({**MINIMAL, "finetune": {"data_chars": [1e4], "sizes": []}}), ["text"])
    assert {r.mode for r in alone} == {"scratch"} and {r.run_id for r in alone} == full
    cpu = study_runs(load_study(JOBS / "cpu.toml"), ["text"])
    seeds = study_runs(load_study(JOBS / "cpu-scratch-seeds.toml"))
    assert {r.mode for r in seeds} == {"scratch"} and len(seeds) == 60
    # Its runs are v4's from-scratch runs at other seeds: the same spec but the seed (so its table joins v4's).
    v4 = {(r.spec.size, r.spec.data_chars): r.spec for r in cpu if r.mode == "scratch"}
    assert all(r.spec == dataclasses.replace(v4[r.spec.size, r.spec.data_chars], seed=r.spec.seed) for r in seeds)


def test_a_study_without_from_scratch_sizes_plans_its_pretrainings_and_fine_tunes_alone_under_the_same_ids():
    full = {r.run_id for r in study_runs(study_from_dict(MINIMAL), ["text"]) if r.mode != "scratch"}
    alone = study_runs(study_from_dict({**MINIMAL, "scratch": {"data_chars": []}}), ["text"])
    assert {r.mode for r in alone} == {"pretrain", "finetune"} and {r.run_id for r in alone} == full
    # jobs/cpu-fixed-tokens-10m-text-seed1.toml is jobs/cpu-fixed-tokens-10m-text.toml's runs at seed 1, less its
    # from-scratch ones: the same specs but the seed.
    seed0 = {r.run_id: r for r in study_runs(load_study(JOBS / "cpu-fixed-tokens-10m-text.toml"), ["text"])}
    seed1 = study_runs(load_study(JOBS / "cpu-fixed-tokens-10m-text-seed1.toml"), ["text"])
    assert len(seed1) == len(seed0) - 24 == 30
    specs0 = {(r.mode, r.spec.size, r.spec.data_chars, r.label.split("-")[1]): r.spec for r in seed0.values()
              if r.mode != "scratch"}
    assert all(r.spec == dataclasses.replace(specs0[r.mode, r.spec.size, r.spec.data_chars, r.label.split("-")[1]],
                                             seed=1)
               for r in seed1)


def test_extra_seeds_of_a_shared_pretraining_fine_tune_the_first_seeds_runs_and_pretrain_nothing():
    grid = {**MINIMAL, "scratch": {"data_chars": [1e4, 3e4]}, "finetune": {"data_chars": [1e4, 3e4]}}
    extra = {"seeds": [1, 2], "scratch_data_chars": [1e4], "finetune_data_chars": [3e4]}
    own = study_runs(study_from_dict({**grid, "extra_seeds": extra}), ["text"])
    shared = study_runs(study_from_dict({**grid, "extra_seeds": {**extra, "pretraining": "shared"}}), ["text"])
    pretrainings = {r.run_id: r for r in shared if r.mode == "pretrain"}
    assert {r.spec.seed for r in pretrainings.values()} == {0}          # one pretraining per size: seed 0's
    extra_tunes = [r for r in shared if r.mode == "finetune" and r.spec.seed != 0]
    assert sorted((r.spec.size, r.spec.seed) for r in extra_tunes) == [("n25k", 1), ("n25k", 2), ("n50k", 1), ("n50k", 2)]
    for run in extra_tunes:
        pre = pretrainings[run.init_from_run]
        assert (pre.spec.seed, pre.spec.size, run.spec.data_chars) == (0, run.spec.size, 30_000)
        assert run.label.endswith(f"-s{run.spec.seed}-of-s0") and run.run_id != _own_twin(own, run).run_id
    assert len({r.run_id for r in shared}) == len(shared)
    # The study's own runs and the extra seeds' from-scratch runs are the same runs either way.
    assert {r.run_id for r in own if r.mode == "scratch" or r.spec.seed == 0} == {
        r.run_id for r in shared if r.mode == "scratch" or r.spec.seed == 0}
    assert all(pretrainings[r.init_from_run].spec.seed == 0 for r in shared if r.mode == "finetune")
    ordered = [r.run_id for r in shared]
    assert all(ordered.index(r.init_from_run) < ordered.index(r.run_id) for r in extra_tunes)


def _own_twin(runs, run):
    """The fine-tune with `run`'s size, seed and data size that starts from its own seed's pretraining."""
    return next(r for r in runs if r.mode == "finetune" and (r.spec.size, r.spec.seed, r.spec.data_chars)
                == (run.spec.size, run.spec.seed, run.spec.data_chars))


@pytest.mark.parametrize("extra, message", [
    ({"seeds": [0], "scratch_data_chars": [1e4]}, "already in `seeds`"),
    ({"seeds": [1], "finetune_data_chars": [1e4], "pretraining": "mine"}, "pretraining must be one of"),
    ({"seeds": [1], "scratch_data_chars": [1e4], "pretraining": "shared"}, "is about fine-tunes"),
    ({"seeds": [1], "scratch_data_chars": [5e4]}, "not among"),
    ({"seeds": [1], "finetune_data_tokens": [1e4]}, "use finetune_data_chars"),
    ({"seeds": [1]}, "names no data size"),
    ({"seeds": [], "scratch_data_chars": [1e4]}, "non-empty list"),
    ({"seeds": [1], "scratch_data_chars": [1e4], "sizes": ["n25k"]}, "unknown key"),
])
def test_bad_extra_seeds_are_refused(extra, message):
    with pytest.raises(StudyError, match=message):
        study_from_dict({**MINIMAL, "extra_seeds": extra})


def test_the_shape_study_plans_every_shape_with_seeds_at_the_smallest_fine_tuning_size():
    from effdata.spec import get_shape

    study = load_study(JOBS / "shape.toml")
    runs = study_runs(study, ["text"])
    groups = {}
    for size in study.sizes:
        groups.setdefault(size.split("-")[0], []).append(get_shape(size).n_layer)
    assert groups == {"s200k": [1, 2, 4, 8, 16], "s50k": [1, 2, 4, 8, 16]}
    smallest = min(study.finetune.values)
    for size in study.sizes:
        mine = [r for r in runs if r.spec.size == size]
        assert len([r for r in mine if r.mode == "scratch" and r.spec.seed == 0]) >= 4
        fine = {r.spec.data_chars for r in mine if r.mode == "finetune"}
        assert len(fine) >= 3
        assert {r.spec.seed for r in mine if r.mode == "finetune" and r.spec.data_chars == smallest} == {0, 1, 2}
        assert {r.spec.seed for r in mine if r.mode == "pretrain"} == {0, 1, 2}
    assert len(runs) == 170


def _study_file(folder: Path, name: str, seeds: str, pretrain: str, sizes: str = '["n25k", "n50k"]',
                finetune: str = "[1e4]") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f'name = "{name}"\nsizes = {sizes}\nseeds = {seeds}\n[scratch]\ndata_chars = []\n'
                    f'[finetune]\ndata_chars = {finetune}\n[pretrain]\n{pretrain}\n'
                    '[train]\nbatch_size = 16\npretrain_stop_on = "budget"\n')
    return path


def test_a_study_fine_tunes_other_files_pretrainings_under_their_ids_and_their_final_models_alone(tmp_path):
    # Two files pretrain the seeds apart, one with mid-run checkpoints; a third fine-tunes both on another D_F.
    with_checkpoints = 'corpora = ["text"]\ntoken_budget = 20000\ncheckpoint_tokens_per_param = [0.1]\nschedule = "wsd"'
    a = _study_file(tmp_path, "a", "[0]", with_checkpoints)
    b = _study_file(tmp_path, "b", "[1]", 'corpora = ["text"]\ntoken_budget = 30000\nlr_scale = 2.0')
    both = _study_file(tmp_path, "both", "[0, 1]", 'studies = ["a.toml", "b.toml"]', finetune="[1e4, 3e4]")
    sources = [r for path in (a, b) for r in study_runs(load_study(path))]
    runs = study_runs(load_study(both))
    assert load_study(both).pretrain.corpora == ("text",)
    pretrainings = [r for r in runs if r.mode == "pretrain"]
    assert {r.run_id for r in pretrainings} == {r.run_id for r in sources if r.mode == "pretrain"}
    assert {r.spec.token_budget for r in pretrainings if r.spec.seed == 1} == {30_000}
    tunes = [r for r in runs if r.mode == "finetune"]
    assert len(tunes) == 8 and all(r.init_from_checkpoint is None for r in tunes)   # not a's mid-run checkpoints
    # The fine-tunes on 1e4 are the source files' own (the same ids: `--reuse` copies them in), those on 3e4 new.
    own = {r.run_id for r in sources if r.mode == "finetune" and r.init_from_checkpoint is None}
    assert {r.run_id for r in tunes if r.spec.data_chars == 10_000} == own
    assert not own & {r.run_id for r in tunes if r.spec.data_chars == 30_000}


def test_a_corpus_the_source_files_do_not_list_gets_the_run_the_source_file_would_make_for_it(tmp_path):
    # `--pretrain text+code` on a study whose sources pretrain text alone: each pretraining is the run the source
    # file itself plans for text+code (its budget, its LR multiple, its id), trained in this study's folder.
    _study_file(tmp_path, "a", "[0]", 'corpora = ["text"]\ntoken_budget = 20000')
    b = _study_file(tmp_path, "b", "[1]", 'corpora = ["text"]\ntoken_budget = 30000\nlr_scale = 2.0')
    both = _study_file(tmp_path, "both", "[0, 1]", 'studies = ["a.toml", "b.toml"]')
    pretrainings = {(r.spec.size, r.spec.seed): r for r in study_runs(load_study(both), ["text+code"])
                    if r.mode == "pretrain"}
    assert {r.spec.corpus for r in pretrainings.values()} == {"text+code"}
    from_b = {r.spec.size: r.run_id for r in study_runs(load_study(b), ["text+code"]) if r.mode == "pretrain"}
    assert {size: pretrainings[size, 1].run_id for size in from_b} == from_b
    assert {r.spec.token_budget for (_, seed), r in pretrainings.items()} == {20_000, 30_000}
    assert {r.spec.settings.lr_scale for (_, seed), r in pretrainings.items() if seed == 1} == {2.0}


def test_a_pretraining_lr_scale_per_size_plans_the_runs_of_one_multiple_per_size(tmp_path):
    # Each size's pretraining is the run of a study giving its multiple to every size: the same id, so `--reuse`
    # copies both in; the fine-tunes follow their pretraining's id.
    budget = 'corpora = ["text"]\ntoken_budget = 20000\n'
    plans = {name: study_runs(load_study(_study_file(tmp_path, name, "[0]", budget + f"lr_scale = {scale}")))
             for name, scale in (("x1", "1.0"), ("x2", "2.0"), ("mixed", "{ n25k = 1.0, n50k = 2, n99k = 3 }"))}
    ids = {name: {(r.mode, r.spec.size): r.run_id for r in runs} for name, runs in plans.items()}
    assert ids["mixed"] == {key: ids["x1" if key[1] == "n25k" else "x2"][key] for key in ids["mixed"]}
    assert {r.spec.size: r.spec.settings.lr_scale for r in plans["mixed"] if r.mode == "pretrain"} == {
        "n25k": 1.0, "n50k": 2.0}
    assert {r.spec.settings.lr_scale for r in plans["mixed"] if r.mode == "finetune"} == {1.0}


@pytest.mark.parametrize("scale, message", [
    ("{ n25k = 1.0 }", "lr_scale has no entry for size 'n50k'"),
    ("{ n25k = 1.0, n50k = 0 }", "lr_scale.n50k: expected a positive number, got 0"),
    ('{ n25k = 1.0, n50k = "2" }', "lr_scale.n50k: expected a positive number"),
])
def test_a_bad_pretraining_lr_scale_per_size_is_refused(tmp_path, scale, message):
    with pytest.raises(StudyError, match=re.escape(message)):
        load_study(_study_file(tmp_path, "t", "[0]", f'corpora = ["text"]\ntoken_budget = 20000\nlr_scale = {scale}'))


@pytest.mark.parametrize("pretrain, seeds, message", [
    ('studies = ["a.toml"]\ntoken_budget = 20000', "[0]", "token_budget is theirs to set"),
    ('studies = ["a.toml"]', "[0, 1]", "none of a pretrains n25k at seed 1"),
    ('studies = ["a.toml", "a2.toml"]', "[0]", "a and a2 pretrain n25k at seed 0 differently"),
    ('studies = ["nested.toml"]', "[0]", "takes its pretraining from other files too"),
    ('studies = ["other-vocab.toml"]', "[0]", "vocab_size"),
    ('studies = ["missing.toml"]', "[0]", "study file not found"),
    ('studies = []', "[0]", "non-empty list"),
])
def test_bad_pretraining_sources_are_refused(tmp_path, pretrain, seeds, message):
    _study_file(tmp_path, "a", "[0]", 'corpora = ["text"]\ntoken_budget = 20000')
    _study_file(tmp_path, "a2", "[0]", 'corpora = ["text"]\ntoken_budget = 30000')
    _study_file(tmp_path, "nested", "[0]", 'studies = ["a.toml"]')
    (tmp_path / "other-vocab.toml").write_text(_study_file(tmp_path, "v", "[0]", 'token_budget = 20000')
                                               .read_text().replace('name = "v"', 'name = "v"\nvocab_size = 512'))
    with pytest.raises(StudyError, match=re.escape(message)):
        load_study(_study_file(tmp_path, "t", seeds, pretrain))


def test_the_ladders_lr_double_fine_tunes_are_its_source_files_runs():
    # jobs/cpu-fixed-tokens-ladder-lr-double-1e4.toml: its 3e4 fine-tunes and pretrainings are the committed ×2
    # tables' runs (so `--reuse` trains only the 1e4 fine-tunes), one per size and seed; its own table is left out.
    runs = study_runs(load_study(JOBS / "cpu-fixed-tokens-ladder-lr-double-1e4.toml"))
    committed = set()
    for table in (Path(__file__).resolve().parent.parent / "analysis/cpu-fixed-tokens/four-layer/lr").glob(
            "*double*/results.csv"):
        if table.parent.name != "ladder-double-1e4":
            committed |= {line.split(",")[0] for line in table.read_text().splitlines()[1:]}
    old = [r for r in runs if r.mode == "pretrain" or r.spec.data_chars == 30_000]
    assert len(old) == 28 and {r.run_id for r in old} <= committed
    assert len({(r.spec.size, r.spec.seed) for r in runs if r.mode == "pretrain"}) == 14
