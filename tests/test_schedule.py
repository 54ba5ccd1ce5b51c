"""The learning-rate schedules as pure functions (no torch): cosine kept as it was, warm-up/stable/decay
(wsd), and the branches of mid-run checkpoints, whose LR must be the shorter run's at every step."""
from __future__ import annotations

import itertools
import math

import pytest

from effdata.spec import RunSpec, SpecError, StudyRun, TrainSettings, get_shape
from effdata.study.cost import CostModel
from effdata.training.schedule import (TUNED_LR, decay_start, kaplan_lr, lr_at, schedule_for, tuned_lr_factor,
                                      wsd_lr_at)

SIZE = "l2d32h2c32"                      # N = 25,472; 16 × 32 = 512 tokens a step below
N = get_shape(SIZE).n_params


def pretrain(budget: int, checkpoints=(), **settings) -> RunSpec:
    base = dict(batch_size=16, schedule="wsd", pretrain_stop_on="budget")
    return RunSpec("pretrain", SIZE, 0, "text", token_budget=budget, checkpoint_tokens_per_param=checkpoints,
                   settings=TrainSettings(**{**base, **settings}))


def test_wsd_warms_up_holds_the_peak_then_decays_linearly_to_the_floor():
    peak, w, total, decay = 1e-3, 10, 100, 20
    lrs = [wsd_lr_at(s, peak, w, total, decay, 0.1) for s in range(120)]
    assert lrs[:w] == [lr_at(s, peak, w, total, 0.1) for s in range(w)]      # the cosine schedule's warm-up
    assert lrs[w:80] == [peak] * 70                                           # stable until the decay starts
    steps = [lrs[s] - lrs[s + 1] for s in range(80, 99)]
    assert all(d == pytest.approx(0.9 * peak / decay) for d in steps)         # linear
    assert lrs[79] - lrs[80] == pytest.approx(0.9 * peak / decay)
    assert lrs[99] == pytest.approx(0.1 * peak) and lrs[119] == pytest.approx(0.1 * peak)  # the last update, after
    assert decay_start(w, total, decay) == 80 and decay_start(w, 25, decay) == w   # never inside the warm-up
    assert wsd_lr_at(57, peak, w, total, decay, 0.1) == lrs[57]                     # pure


def test_cosine_stays_the_default_and_unchanged():
    assert TrainSettings().schedule == "cosine"
    spec = RunSpec("scratch", SIZE, 0, "python", data_tokens=50_000, settings=TrainSettings(batch_size=16))
    sch = schedule_for(spec, 50_000, N)
    assert sch.kind == "cosine" and sch.branches == () and sch.decay_steps == 0
    assert [sch.lr(s, 0.1) for s in range(sch.total_steps)] == \
        [lr_at(s, sch.peak_lr, sch.warmup_steps, sch.total_steps, 0.1) for s in range(sch.total_steps)]


@pytest.mark.parametrize("rule", ["kaplan", "tuned"])
def test_a_branch_has_the_schedule_of_the_shorter_run_it_stands_for(rule):
    long = schedule_for(pretrain(16 * 32 * 400, checkpoints=(2.0, 5.0), lr_rule=rule), 0, N)
    short = schedule_for(pretrain(round(2.0 * N), lr_rule=rule), 0, N)       # the run of 2 tokens per parameter
    first, second = long.branches
    assert first.total_steps == short.total_steps == math.ceil(round(2.0 * N) / 512)
    assert long.warmup_steps == short.warmup_steps == round(0.05 * first.total_steps)  # set by the shortest branch
    own = long.of_branch(first)
    assert [own.lr(s, 0.1) for s in range(short.total_steps)] == [short.lr(s, 0.1) for s in range(short.total_steps)]
    start = long.branch_start(first)
    assert start == short.decay_start
    assert [long.lr(s, 0.1) for s in range(start)] == [short.lr(s, 0.1) for s in range(start)]  # the trunk, until then
    assert long.lr(start, 0.1) == long.peak_lr > own.lr(start, 0.1)
    assert long.branch_steps == (first.total_steps - start) + (second.total_steps - long.branch_start(second))
    assert first.decay_steps == round(0.2 * first.total_steps)


def _scratch(chars: float | None = None, tokens: int | None = None, **settings) -> RunSpec:
    return RunSpec("scratch", SIZE, 0, "python", data_chars=chars, data_tokens=tokens,
                   settings=TrainSettings(batch_size=16, **settings))


def test_the_tuned_rule_is_the_one_analysis_lr_chose():
    """The constants in training.schedule are the committed sweep's chosen rule, over the data sizes it swept,
    and the characters per token of its Python split."""
    import json
    from pathlib import Path

    import pandas as pd

    lr = Path(__file__).resolve().parents[1] / "analysis" / "lr"
    chosen = json.loads((lr / "sweep.json").read_text())["chosen"]
    assert chosen["name"] == "D" and json.loads((lr / "sweep.json").read_text())["units"] == "chars"
    assert TUNED_LR.intercept == pytest.approx(chosen["coefficients"]["intercept"], abs=1e-3)
    assert TUNED_LR.per_decade == pytest.approx(chosen["coefficients"]["log10_d"], abs=1e-3)
    table = pd.read_csv(lr / "results.csv")
    swept = table[table["mode"] == "scratch"]
    assert (TUNED_LR.low_chars, TUNED_LR.high_chars) == (swept["data_chars"].min(), swept["data_chars"].max())
    ratio = (swept["data_chars"] / swept["data_tokens"]).median()
    assert TUNED_LR.chars_per_token == pytest.approx(ratio, rel=5e-3)   # 2.983 at 1e5 characters, 2.967 at 1e6


def test_the_tuned_rule_scales_kaplans_lr_by_data_size_within_the_swept_range():
    kaplan = kaplan_lr(N)
    assert schedule_for(_scratch(1e5), 33_500, N).peak_lr == kaplan                   # the default: Kaplan's rule
    at = lambda chars, **kw: schedule_for(_scratch(chars, lr_rule="tuned", **kw), 0, N).peak_lr  # noqa: E731
    assert at(1e5) == pytest.approx(kaplan * 2 ** (TUNED_LR.intercept + 5 * TUNED_LR.per_decade))
    assert at(1e6) / at(1e5) == pytest.approx(2 ** TUNED_LR.per_decade)              # ×2.15 per decade
    assert at(1e4) == at(1e5) and at(3e6) == at(1e6)                                  # held outside the sweep
    assert at(3e5, lr_scale=0.5) == pytest.approx(0.5 * at(3e5))                      # lr_scale still multiplies
    assert at(3e5, lr=1e-3) == 1e-3                                                   # an explicit lr wins
    by_tokens = schedule_for(_scratch(tokens=100_000, lr_rule="tuned"), 100_000, N).peak_lr
    assert by_tokens == pytest.approx(kaplan * tuned_lr_factor(100_000 * TUNED_LR.chars_per_token))
    # Pretraining takes the top of the range whatever its budget (so branches stay the runs they stand for).
    for budget in (10_000, 10_000_000):
        assert schedule_for(pretrain(budget, lr_rule="tuned"), 0, N).peak_lr == pytest.approx(at(1e6))


def test_an_unknown_lr_rule_is_refused_naming_the_key():
    with pytest.raises(SpecError, match="lr_rule"):
        TrainSettings(lr_rule="fast")


@pytest.mark.parametrize("frac", [0.05, 0.2, 0.5, 1.0])
def test_every_branch_leaves_the_trunk_while_its_lr_is_still_the_peak(frac):
    """The trunk's LR up to a branch's start must be the shorter run's: for every length, checkpoint and
    decay fraction, the branch starts after the warm-up and no later than the trunk's own decay."""
    for budget_steps, per_param in itertools.product((30, 97, 400), ((0.3,), (0.3, 1.1), (0.5, 2.0, 7.0))):
        cps = tuple(c for c in per_param if math.ceil(round(c * N) / 512) < budget_steps)
        if not cps:
            continue
        sch = schedule_for(pretrain(512 * budget_steps, checkpoints=cps, decay_frac=frac), 0, N)
        for branch in sch.branches:
            start = sch.branch_start(branch)
            assert sch.warmup_steps <= start <= sch.decay_start
            assert all(sch.lr(s, 0.1) == sch.of_branch(branch).lr(s, 0.1) for s in range(start))


@pytest.mark.parametrize("change, message", [
    (dict(checkpoints=(1.0,), schedule="cosine"), 'needs schedule = "wsd"'),
    (dict(checkpoints=(1.0,), pretrain_stop_on="target"), 'needs pretrain_stop_on = "budget"'),
    (dict(checkpoints=(2.0, 400.0)), "not below the run's budget"),
    (dict(checkpoints=(-1.0,)), "positive numbers"),
    (dict(checkpoints=(2.0, 2.0)), "repeated"),
    (dict(decay_frac=0.0), "decay_frac must be in"),
    (dict(schedule="linear"), "schedule must be one of"),
])
def test_bad_schedules_and_checkpoints_are_refused_naming_the_key(change, message):
    change = dict(change)
    with pytest.raises(SpecError, match=message):
        pretrain(16 * 32 * 400, checkpoints=change.pop("checkpoints", ()), **change)


def test_a_checkpoint_within_the_last_step_is_refused():
    budget = 512 * 100                                   # 100 steps; 1.99 tokens/param is 50,689 tokens: step 100
    with pytest.raises(SpecError, match="not fewer than the run's 100"):
        schedule_for(pretrain(budget, checkpoints=(1.99,)), 0, N)


def test_mid_run_checkpoints_are_only_for_pretraining():
    with pytest.raises(SpecError, match="for pretraining runs"):
        RunSpec("scratch", SIZE, 0, "python", data_tokens=1000, checkpoint_tokens_per_param=(1.0,),
                settings=TrainSettings(schedule="wsd"))


def test_the_dry_run_counts_the_branches():
    spec = pretrain(16 * 32 * 400, checkpoints=(2.0, 5.0))
    plain = pretrain(16 * 32 * 400)
    cost = CostModel(chars_per_token=3.0, vocab_size=64)
    with_branches, without = (StudyRun("p", spec, "text"), StudyRun("p", plain, "text"))
    sch = schedule_for(spec, 0, N)
    assert cost.tokens(with_branches) - cost.tokens(without) == sch.branch_steps * 512 > 0
    s = spec.settings
    assert cost.eval_tokens(with_branches) - cost.eval_tokens(without) == 2 * (2 * s.eval_tokens + s.test_tokens)


def scratch(data_tokens: int, **settings) -> RunSpec:
    return RunSpec("scratch", SIZE, 0, "python", data_tokens=data_tokens,
                   settings=TrainSettings(**{"batch_size": 16, **settings}))


def test_the_schedule_says_which_limit_sets_a_runs_length():
    """Every 512 tokens is a step: 20 epochs of 5,120 tokens are 200 steps."""
    rule = dict(max_epochs=20.0, min_steps=100, max_steps=1000)
    assert schedule_for(scratch(5_120, **rule), 5_120, N).limit == "epoch_budget"
    assert schedule_for(scratch(512, **rule), 512, N).limit == "step_floor"        # 20 steps asked, 100 run
    capped = schedule_for(scratch(512_000, **rule), 512_000, N)
    assert (capped.limit, capped.total_steps) == ("step_cap", 1000)
    assert schedule_for(pretrain(512 * 100), 0, N).limit == "token_budget"


def test_a_length_search_tries_geometric_lengths_below_its_cap_each_the_run_of_that_length():
    sch = schedule_for(scratch(5_120, schedule="wsd", length_search="branches", min_steps=25, max_steps=1000,
                               branch_ratio=1.5, warmup_frac=0.2), 5_120, N)
    lengths = [b.total_steps for b in sch.lengths]
    assert lengths == [25, 38, 56, 84, 127, 190, 285, 427, 641, 961]               # round(25·1.5^k) < 1000
    assert (sch.total_steps, sch.limit, sch.eval_interval) == (1000, "step_cap", 1000)   # evaluated at ends only
    assert sch.warmup_steps == 5                                                   # 20 % of the shortest
    for branch in sch.lengths:
        alone = schedule_for(scratch(5_120, schedule="wsd", min_steps=branch.total_steps, max_steps=branch.total_steps,
                                     warmup_frac=0.2, warmup_max=5), 5_120, N)
        own, start = sch.of_branch(branch), sch.branch_start(branch)
        assert alone.total_steps == branch.total_steps and start == alone.decay_start >= sch.warmup_steps
        assert [own.lr(s, 0.1) for s in range(branch.total_steps)] == [alone.lr(s, 0.1) for s in range(branch.total_steps)]
        assert [sch.lr(s, 0.1) for s in range(start)] == [alone.lr(s, 0.1) for s in range(start)]
    assert sch.length_steps == sum(b.total_steps - sch.branch_start(b) for b in sch.lengths)
    pre = schedule_for(pretrain(512 * 100, length_search="branches"), 0, N)
    assert pre.lengths == () and pre.total_steps == 100                           # pretraining runs to its budget


def test_the_dry_run_counts_a_length_search_as_trying_every_length():
    search = StudyRun("s", scratch(5_120, schedule="wsd", length_search="branches", min_steps=25, max_steps=1000), "none")
    cost = CostModel(chars_per_token=3.0, vocab_size=64)
    sch = cost.schedule(search)
    assert cost.tokens(search) == (1000 + sch.length_steps) * 512
    s = search.spec.settings
    assert cost.eval_tokens(search) == (2 + len(sch.lengths)) * s.eval_tokens + s.test_tokens
