"""The length search (`length_search = "branches"`, docs/METHOD.md §5e) on a tiny model, synthetic tokens and
real steps: the length it keeps is one of its branches and is the stand-alone run of that length bit for bit;
it stops after `branch_patience` worse lengths; it trains past where a step cap stops a v2-style run while the
loss still falls; a killed run resumes to the same numbers; and every record says why it stopped."""
from __future__ import annotations

import pytest

from effdata.spec import RunSpec, SpecError, TrainSettings
from effdata.training.schedule import schedule_for
from test_train import SIZE, data, settings

from effdata.training.train import train_run

SMALL = 1000        # training tokens: about two steps an epoch, so the model overfits within a few hundred steps
LARGE = 20_000      # 39 steps an epoch: the loss still falls after 100 steps


def search(**kw) -> TrainSettings:
    base = dict(schedule="wsd", length_search="branches", min_steps=20, max_steps=400, branch_ratio=1.5,
                branch_patience=2, warmup_max=1)
    return settings(**{**base, **kw})


def scratch(n_tokens: int, st: TrainSettings) -> RunSpec:
    return RunSpec("scratch", SIZE, 0, "python", data_tokens=n_tokens, settings=st)


@pytest.fixture(scope="module")
def overfit(tmp_path_factory):
    """A search on SMALL tokens: its valid loss falls, then rises, before the cap."""
    root = tmp_path_factory.mktemp("search")
    sp = scratch(SMALL, search())
    return {"spec": sp, "metrics": train_run(sp, data(SMALL), root / "run", threads=1), "dir": root / "run"}


def test_the_lengths_tried_are_geometric_and_evaluated_only_at_their_ends(overfit):
    m, sp = overfit["metrics"], overfit["spec"]
    sch = schedule_for(sp, SMALL, m["n_params"])
    lengths = [b.total_steps for b in sch.lengths]
    assert lengths[:5] == [20, 30, 45, 68, 101] and lengths[-1] < 400 == sch.total_steps
    assert sch.eval_interval == sch.total_steps and sch.warmup_steps == 1
    tried = [at for at, _ in m["evals"]][1:]
    assert [at for at, _ in m["evals"]][0] == 0 and tried == lengths[:len(tried)]   # step 0, then branch ends only
    assert m["lengths_tried"] == len(tried)
    # The learning curve holds the lengths tried (decayed run ends) beside the trunk's step-0 evaluation.
    ends = [p for p in m["curve"] if p.get("decayed")]
    assert [p["step"] for p in ends] == tried and [p["valid_loss"] for p in ends] == [v for _, v in m["evals"]][1:]
    assert all(p["tokens"] == p["step"] * sp.settings.batch_size * sp.shape.n_ctx for p in ends)
    assert m["branch_steps"] == sum(L - sch.branch_start(b) for b, L in zip(sch.lengths, tried))
    log = (overfit["dir"] / "log.txt").read_text()
    assert log.count(" length ") == len(tried)
    assert [line.split()[2] for line in log.splitlines() if line.split()[2] == "step"] == ["step"]   # step 0 only


def test_the_kept_length_is_a_branch_and_the_search_stops_after_two_worse(overfit):
    m = overfit["metrics"]
    losses = dict(m["evals"])
    assert m["stop_reason"] == "early_stop" and not m["best_is_last"]
    assert m["best_step"] in losses and m["best_step"] > 0
    assert m["valid_loss"] == pytest.approx(min(losses.values()), abs=1e-6)
    after = [at for at in losses if at > m["best_step"]]
    assert len(after) == 2 and all(losses[at] > m["valid_loss"] for at in after)   # branch_patience = 2
    assert m["steps"] < 400                                                         # stopped before the cap
    parts = [m[f"time_{p}"] for p in ("setup", "compile", "steps", "evals", "test", "checkpoint", "branches", "other")]
    assert sum(parts) == pytest.approx(m["wall_time"], rel=1e-9) and m["time_branches"] > 0


def test_the_kept_length_is_the_run_of_that_length_bit_for_bit(overfit, tmp_path):
    """A stand-alone wsd run of the chosen length (the same one-step warm-up), evaluated only at its end."""
    m = overfit["metrics"]
    length = m["best_step"]
    alone = train_run(scratch(SMALL, settings(schedule="wsd", min_steps=length, max_steps=length, evals_per_run=1,
                                              warmup_max=1)), data(SMALL), tmp_path / "alone", threads=1)
    assert alone["steps"] == length and alone["best_step"] == length
    assert (alone["valid_loss"], alone["loss"]) == (m["valid_loss"], m["loss"])      # CPU fp32: equal, not close


def test_a_killed_search_resumes_to_the_same_numbers(overfit, tmp_path):
    def kill_after_the_third_length(info):
        if info.get("length") == 45:
            raise KeyboardInterrupt

    sp = scratch(SMALL, search(resume_every_s=0))
    with pytest.raises(KeyboardInterrupt):
        train_run(sp, data(SMALL), tmp_path / "cut", threads=1, progress=kill_after_the_third_length)
    resumed = train_run(sp, data(SMALL), tmp_path / "cut", threads=1)
    log = (tmp_path / "cut" / "log.txt").read_text()
    assert "resumed at step 36" in log and log.count("length 45:") == 1               # not done again
    full = overfit["metrics"]
    for key in ("loss", "valid_loss", "best_step", "steps", "evals", "stop_reason", "best_is_last", "branch_steps"):
        assert resumed[key] == full[key], key


def test_a_search_killed_where_the_trunk_stands_at_the_best_length_resumes_with_the_best_model(tmp_path):
    """At ratio 1.25 each length's branch leaves the trunk at the previous length's step (31 - 6 = 25, ...):
    after a worse length the trunk stands at step = best_step, yet the best model is the decayed branch, not
    the trunk's, and resume.pt must hold it."""
    def kill_at_the_first_worse_length(info):
        if info.get("length") and info["valid_loss"] > info["best_valid_loss"]:
            raise KeyboardInterrupt

    sp = scratch(SMALL, search(branch_ratio=1.25, resume_every_s=0))
    full = train_run(sp, data(SMALL), tmp_path / "full", threads=1)
    with pytest.raises(KeyboardInterrupt):
        train_run(sp, data(SMALL), tmp_path / "cut", threads=1, progress=kill_at_the_first_worse_length)
    resumed = train_run(sp, data(SMALL), tmp_path / "cut", threads=1)
    assert f"resumed at step {full['best_step']}" in (tmp_path / "cut" / "log.txt").read_text()
    assert (resumed["loss"], resumed["valid_loss"], resumed["evals"]) == (full["loss"], full["valid_loss"], full["evals"])


def test_a_search_trains_past_where_a_step_cap_stops_while_the_loss_still_falls(tmp_path):
    """v2's rule: epochs over the data clamped to max_steps, early stopping within it. At 100 steps the cap
    binds with the best at the last evaluation; the search goes on and finds a longer, better run."""
    capped = train_run(scratch(LARGE, settings(min_steps=50, max_steps=100)), data(LARGE), tmp_path / "cap",
                       threads=1)
    assert capped["stop_reason"] == "step_cap" and capped["best_is_last"] and capped["steps"] == 100
    found = train_run(scratch(LARGE, search(min_steps=50, max_steps=2000)), data(LARGE), tmp_path / "search",
                      threads=1)
    assert found["best_step"] > 100 and found["loss"] < capped["loss"]
    assert found["stop_reason"] == "early_stop" and found["steps"] < 2000


def test_a_search_that_reaches_its_cap_says_so(tmp_path):
    m = train_run(scratch(LARGE, search(min_steps=20, max_steps=60)), data(LARGE), tmp_path / "r", threads=1)
    assert m["stop_reason"] == "step_cap" and m["steps"] == 60
    assert [at for at, _ in m["evals"]] == [0, 20, 30, 45, 60] and m["lengths_tried"] == 4
    assert m["best_is_last"] and m["best_step"] == 60                              # still falling: not converged


def test_pretraining_does_not_search_whatever_its_settings_say(tmp_path):
    """A study's [train] applies to its pretraining too (jobs/cpu.toml): pretraining runs to its budget."""
    sp = RunSpec("pretrain", SIZE, 0, "text", token_budget=16 * 32 * 60,
                 settings=search(pretrain_stop_on="budget", min_steps=10, max_steps=60))
    m = train_run(sp, data(LARGE), tmp_path / "p", threads=1)
    assert [at for at, _ in m["evals"]] == [0, 60] and m["stop_reason"] == "token_budget"
    assert m["length_search"] == "off" and "lengths_tried" not in m


def test_length_search_needs_the_wsd_schedule_and_sane_values():
    with pytest.raises(SpecError, match='length_search must be "off" unless schedule = "wsd"'):
        TrainSettings(length_search="branches")
    with pytest.raises(SpecError, match="branch_ratio must be > 1"):
        TrainSettings(schedule="wsd", length_search="branches", branch_ratio=1.0)
    with pytest.raises(SpecError, match="branch_patience must be >= 1"):
        TrainSettings(schedule="wsd", length_search="branches", branch_patience=0)
    with pytest.raises(SpecError, match="length_search must be one of"):
        TrainSettings(length_search="yes")
