"""Study files: checked before anything runs; expanded into runs with stable ids and dependencies."""
from __future__ import annotations

from pathlib import Path

import pytest

from effdata.study.study import StudyError, load_study, study_from_dict, study_runs

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
    assert study.sizes and study.scratch.values and study.finetune.values


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


@pytest.mark.parametrize("job, table", [("cpu", "cpu"), ("quick", "quick")])
def test_job_files_plan_the_run_ids_of_the_committed_tables(job, table):
    """Run ids name run directories and committed results: planning must keep making the same ones."""
    import pandas as pd

    committed = set(pd.read_csv(JOBS.parent / "analysis" / table / "results.csv")["run_id"])
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
    ({"train": {"batch_sizes": 4}}, "unknown key"),
    ({"train": {"batch_size": "four"}}, "batch_size"),
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
    ({**WSD, "checkpoint_tokens_per_param": [10]}, {},
     r'\[pretrain\] checkpoint_tokens_per_param needs pretrain_stop_on = "budget"'),
    ({**WSD, "checkpoint_tokens_per_param": [10, 50]}, {"pretrain_stop_on": "budget"},
     r"\[pretrain\] checkpoint_tokens_per_param 50 at n50k is 2,832,000 tokens, not below the run's budget"),
    ({**WSD, "checkpoint_tokens_per_param": 10}, {"pretrain_stop_on": "budget"}, "expected a list of positive numbers"),
    ({**WSD, "checkpoint_tokens_per_param": [10, 0]}, {"pretrain_stop_on": "budget"}, "expected a list of positive"),
    ({**WSD, "checkpoint_tokens_per_param": [10, 10]}, {"pretrain_stop_on": "budget"}, "repeated"),
    ({**WSD, "schedule": "linear"}, {}, r"\[pretrain\] schedule must be one of 'cosine', 'wsd', got 'linear'"),
    ({**WSD, "decay_frac": 1.5}, {}, r"\[pretrain\] decay_frac must be in \(0, 1\], got 1.5"),
    ({**WSD, "warmup_frac": 0.1}, {}, r"\[pretrain\]: unknown key\(s\) warmup_frac"),
])
def test_bad_mid_run_checkpoints_are_refused_naming_the_key(pretrain, train, message):
    with pytest.raises(StudyError, match=message):
        study_from_dict({**MINIMAL, "pretrain": pretrain, "train": train})


def test_pretrain_schedule_is_for_the_pretraining_runs_alone():
    study = study_from_dict({**MINIMAL, "pretrain": WSD})
    runs = study_runs(study)
    assert {r.spec.settings.schedule for r in runs if r.mode == "pretrain"} == {"wsd"}
    assert {r.spec.settings.schedule for r in runs if r.mode != "pretrain"} == {"cosine"}
    plain = study_runs(study_from_dict({**MINIMAL, "pretrain": {**WSD, "schedule": "cosine"}}))
    assert {r.run_id for r in runs if r.mode == "scratch"} == {r.run_id for r in plain if r.mode == "scratch"}
