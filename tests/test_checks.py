"""Planning checks and the cost model: a study checked against its corpora before anything runs (no torch).

The corpora are stand-ins of known size; `test_gpu_study_plans_cleanly_on_the_built_in_corpora` uses the
sizes `python-large` and `text` had when jobs/gpu.toml was sized (vocabulary 16,384, docs/notes/issue-16.md).
"""
from __future__ import annotations

from pathlib import Path

import pytest

import effdata.run as run_cli
from effdata.data.tokens import TokenizedCorpus, TokenSplit
from effdata.study.checks import EPOCHS_WARNING, check_plan
from effdata.study.cost import A100, CostModel
from effdata.study.study import StudyError, study_from_dict, study_runs

JOBS = Path(__file__).resolve().parent.parent / "jobs"


def corpus(name: str, chars: int, tokens: int, vocab: int = 16384) -> TokenizedCorpus:
    split = TokenSplit(Path("/nowhere"), tokens, chars, 1, "uint16")
    return TokenizedCorpus(name, Path("/nowhere"), vocab, {"train": split, "valid": split, "test": split})


# What `python -m effdata.run --study jobs/gpu.toml --pretrain text --dry-run` built on the machine that
# sized jobs/gpu.toml (python-large depends on the interpreter's site-packages).
BUILT_IN = {"python-large": corpus("python-large", 224_506_595, 68_113_485),
            "text": corpus("text", 47_579_848, 14_634_572)}

STUDY = {"name": "t", "target": "py", "sizes": ["n25k"], "scratch": {"data_chars": [1e4, 2e4]},
         "finetune": {"data_chars": [1e4]}, "pretrain": {"corpora": ["txt"], "token_budget": 40_000}}
DATA = {"py": corpus("py", 20_000, 6_000), "txt": corpus("txt", 40_000, 10_000)}


def test_fractions_larger_than_the_corpus_are_one_error_naming_each():
    runs = study_runs(study_from_dict({**STUDY, "scratch": {"data_chars": [1e4, 3e4, 4e4]},
                                       "finetune": {"data_chars": [3e4]}}))
    with pytest.raises(StudyError) as info:
        check_plan(runs, DATA)
    message = str(info.value)
    assert "\n" not in message
    assert message == ("[scratch] and [finetune] data_chars 3e4 is more than the 20,000 characters of py's train "
                       "split; use at most 2e4, or a larger target corpus; [scratch] data_chars 4e4 is more than "
                       "the 20,000 characters of py's train split; use at most 2e4, or a larger target corpus")


def test_fractions_in_tokens_are_checked_against_tokens():
    ok = study_runs(study_from_dict({**STUDY, "scratch": {"data_tokens": [6_000]}}))
    assert check_plan(ok, DATA) == []
    too_many = study_runs(study_from_dict({**STUDY, "scratch": {"data_tokens": [6_001]}}))
    with pytest.raises(StudyError, match=r"\[scratch\] data_tokens 6e3 is more than the 6,000 tokens of py"):
        check_plan(too_many, DATA)


def test_a_fine_tune_only_plan_warns_that_its_d_t_needs_another_tables_from_scratch_runs():
    alone = check_plan(study_runs(study_from_dict({**STUDY, "scratch": {"data_chars": []}})), DATA)
    assert len(alone) == 1 and alone[0].startswith("no from-scratch runs (a fine-tune-only study)")
    assert "--scratch-from" in alone[0]
    scratch_only = {**STUDY, "finetune": {"data_chars": [1e4], "sizes": []}}
    assert check_plan(study_runs(study_from_dict(scratch_only)), DATA) == []


def test_pretraining_budgets_above_four_epochs_warn_with_their_epochs():
    assert check_plan(study_runs(study_from_dict(STUDY)), DATA) == []  # 4.0 epochs: not above
    runs = study_runs(study_from_dict({**STUDY, "pretrain": {"corpora": ["txt"], "token_budget": 45_000}}))
    warnings = check_plan(runs, DATA)
    assert len(warnings) == 1 and "4.5 epochs of txt (10,000 train tokens)" in warnings[0]
    assert f"beyond {EPOCHS_WARNING:g} epochs" in warnings[0]


def test_cost_model_counts_every_evaluation_and_the_test():
    study = study_from_dict({**STUDY, "train": {"min_steps": 300, "max_steps": 300, "evals_per_run": 16,
                                                "eval_tokens": 1000, "test_tokens": 5000}})
    scratch = next(r for r in study_runs(study) if r.mode == "scratch")
    cost = CostModel(chars_per_token=3.0, vocab_size=2048)
    assert cost.schedule(scratch).eval_interval == 18
    assert cost.eval_tokens(scratch) == (1 + 16 + 1) * 1000 + 5000  # step 0, 16 intervals, step 300, test
    full = scratch.spec.shape.flops_per_token(2048)[0]
    assert cost.train_flops(scratch) == full * 300 * 32 * 128
    assert cost.gpu_seconds(scratch) == pytest.approx(cost.train_flops(scratch) / A100.train
                                                      + full / 3 * cost.eval_tokens(scratch) / A100.evaluate)


def test_gpu_study_plans_cleanly_on_the_built_in_corpora(monkeypatch, capsys, tmp_path):
    """The issue's check, without building the corpora: the dry run of jobs/gpu.toml lists every run with
    no planning error or warning, each with its expected GPU time, and the total."""
    monkeypatch.setattr(run_cli, "prepare_data", lambda study, pretrains, home: BUILT_IN)
    out = tmp_path / "out"
    assert run_cli.main(["--study", str(JOBS / "gpu.toml"), "--pretrain", "text", "--out", str(out),
                         "--dry-run"]) == 0
    printed = capsys.readouterr()
    assert printed.err == ""
    rows = [line.split() for line in printed.out.splitlines() if line.split()[1:2] == ["todo"]]
    assert len(rows) == 44 and all(float(row[5]) > 0 for row in rows)  # the GPU h column
    assert "pretraining budgets in epochs of text (14,634,572 train tokens): g5m 3.96," in printed.out
    assert "GPU-hours on one A100" in printed.out
    assert not out.exists()


def test_a_fraction_larger_than_the_target_stops_the_command_before_anything_is_written(monkeypatch, capsys,
                                                                                         tmp_path):
    small = {**BUILT_IN, "python-large": corpus("python-large", 150_000_000, 45_000_000)}
    monkeypatch.setattr(run_cli, "prepare_data", lambda study, pretrains, home: small)
    out = tmp_path / "out"
    assert run_cli.main(["--study", str(JOBS / "gpu.toml"), "--pretrain", "text", "--out", str(out),
                         "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["effdata.run: [scratch] data_chars 2e8 is more than the 150,000,000 characters of "
                   "python-large's train split; use at most 1.5e8, or a larger target corpus"]
    assert not out.exists()
