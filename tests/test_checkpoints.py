"""Mid-run checkpoints of a wsd pretraining run, on a tiny model and synthetic tokens: each branch is the
model a run of that length gives, the trunk is left as it was, a killed run keeps its checkpoints, and a
fine-tune from `text@<c>tpp` starts from that checkpoint. Also how a study names, resolves and tabulates them."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from effdata.spec import RunSpec, get_shape
from effdata.study.runner import resolved_spec
from effdata.study.store import Store
from effdata.study.study import study_from_dict, study_runs
from effdata.training.train import train_run
from test_train import SIZE, data, settings

N = get_shape(SIZE).n_params            # 25,472; a step is 16 × 32 = 512 tokens
SHORT, LONGER = 0.8, 1.2                # tokens per parameter: runs of 40 and 60 steps
TRUNK = 16 * 32 * 80                    # an 80-step run


def wsd(**kw):
    # warmup_max 2: every run here warms up over 2 steps, so a run without checkpoints (its warm-up set by its
    # own length) matches the trunk too; the warm-up rule itself is tests/test_schedule.py's
    return settings(schedule="wsd", pretrain_stop_on="budget", warmup_max=2, **kw)


def pretrain(budget: int, checkpoints=(), **kw) -> RunSpec:
    return RunSpec("pretrain", SIZE, 0, "text", token_budget=budget, checkpoint_tokens_per_param=checkpoints,
                   settings=wsd(**kw))


def weights(path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def trunk(tmp_path_factory):
    """An 80-step wsd pretraining run with checkpoints at 0.8 and 1.2 tokens per parameter."""
    root = tmp_path_factory.mktemp("trunk")
    metrics = train_run(pretrain(TRUNK, (SHORT, LONGER)), data(20_000), root / "run", threads=1)
    return {"metrics": metrics, "dir": root / "run", "root": root}


def test_a_branch_is_the_run_of_that_length_bit_for_bit(trunk, tmp_path):
    short = train_run(pretrain(round(SHORT * N)), data(20_000), tmp_path / "short", threads=1)
    entry = trunk["metrics"]["checkpoints"][0]
    assert entry["name"] == "checkpoint@0.8tpp" and entry["steps"] == short["steps"] == 40
    assert entry["branch_start"] == 32 and entry["tokens_seen"] == short["tokens_seen"]
    for key in ("valid_loss", "loss"):
        assert entry[key] == short[key], key          # CPU fp32: the same numbers, not merely close
    assert same_weights(Path(entry["checkpoint"]), Path(short["checkpoint"]))
    assert entry["tokens_per_param"] == pytest.approx(short["tokens_seen"] / N)
    assert entry["flops"] == short["flops"]           # what a run of that length costs


def test_branching_leaves_the_trunk_as_it_was(trunk, tmp_path):
    plain = train_run(pretrain(TRUNK), data(20_000), tmp_path / "plain", threads=1)
    m = trunk["metrics"]
    assert (m["loss"], m["valid_loss"], m["evals"]) == (plain["loss"], plain["valid_loss"], plain["evals"])
    assert same_weights(Path(m["checkpoint"]), Path(plain["checkpoint"]))
    assert not same_weights(Path(m["checkpoints"][1]["checkpoint"]), Path(m["checkpoint"]))


def test_the_record_counts_the_branches_and_their_time(trunk):
    m = trunk["metrics"]
    assert [c["checkpoint_tokens_per_param"] for c in m["checkpoints"]] == [SHORT, LONGER]
    assert m["branch_steps"] == (40 - 32) + (60 - 48) and m["branch_tokens_seen"] == 20 * 512
    assert m["steps"] == 80 and m["tokens_seen"] == 80 * 512        # the trunk's own
    assert m["schedule"] == "wsd" and m["time_branches"] > 0
    parts = [m[f"time_{p}"] for p in ("setup", "compile", "steps", "evals", "test", "checkpoint", "branches", "other")]
    assert sum(parts) == pytest.approx(m["wall_time"], rel=1e-9)
    assert m["checkpoints"][1]["valid_loss"] < m["checkpoints"][0]["valid_loss"] < m["init_loss"]
    json.dumps(m)
    log = (trunk["dir"] / "log.txt").read_text()
    assert log.count("checkpoint@0.8tpp: steps 32-40 decayed") == 1
    for c in m["checkpoints"]:
        assert (Path(c["checkpoint"]) / "config.json").exists()


def test_a_run_killed_after_a_branch_resumes_without_redoing_or_losing_it(trunk, tmp_path):
    def kill_after_the_first_branch(info):
        if info["step"] > 32:          # the first evaluation after the branch at step 32
            raise KeyboardInterrupt

    spec = pretrain(TRUNK, (SHORT, LONGER))
    with pytest.raises(KeyboardInterrupt):
        train_run(spec, data(20_000), tmp_path / "cut", threads=1, progress=kill_after_the_first_branch)
    saved = torch.load(tmp_path / "cut" / "resume.pt", weights_only=False)
    assert saved["step"] == 32 and [c["name"] for c in saved["checkpoints"]] == ["checkpoint@0.8tpp"]
    first = (tmp_path / "cut" / "checkpoint@0.8tpp" / "model.safetensors").stat().st_mtime_ns
    resumed = train_run(spec, data(20_000), tmp_path / "cut", threads=1)
    log = (tmp_path / "cut" / "log.txt").read_text()
    assert "resumed at step 32" in log and log.count("checkpoint@0.8tpp: steps") == 1   # not done again
    assert (tmp_path / "cut" / "checkpoint@0.8tpp" / "model.safetensors").stat().st_mtime_ns == first
    full = trunk["metrics"]
    assert [c["name"] for c in resumed["checkpoints"]] == ["checkpoint@0.8tpp", "checkpoint@1.2tpp"]  # not lost
    for got, want in zip(resumed["checkpoints"], full["checkpoints"]):
        assert {k: v for k, v in got.items() if k != "checkpoint"} == {k: v for k, v in want.items() if k != "checkpoint"}
    assert (resumed["loss"], resumed["evals"]) == (full["loss"], full["evals"])
    assert resumed["time_branches"] > 0 and not (tmp_path / "cut" / "resume.pt").exists()


def test_a_finetune_from_a_mid_run_checkpoint_starts_from_its_weights(trunk, tmp_path):
    entry = trunk["metrics"]["checkpoints"][0]
    spec = RunSpec("finetune", SIZE, 0, "python", data_tokens=1500, init_from=entry["checkpoint"], settings=settings())
    m = train_run(spec, data(1500), tmp_path / "ft", threads=1)
    assert m["init_loss"] == pytest.approx(entry["valid_loss"], abs=1e-6)     # step 0 = that checkpoint's loss
    assert not math.isclose(m["init_loss"], trunk["metrics"]["valid_loss"], abs_tol=1e-3)   # not the final model


# ------------------------------------------------------------------ a study's mid-run checkpoints

STUDY = {
    "name": "t", "sizes": ["n25k", "n50k"], "scratch": {"data_chars": [1e4]}, "finetune": {"data_chars": [1e4, 3e4]},
    "pretrain": {"corpora": ["text"], "tokens_per_param": 40, "schedule": "wsd",
                 "checkpoint_tokens_per_param": [10, 20]},
    "train": {"pretrain_stop_on": "budget"},
}


def test_a_study_fine_tunes_every_checkpoint_and_resolves_each_to_its_directory(tmp_path):
    runs = study_runs(study_from_dict(STUDY))
    pre = {r.spec.size: r for r in runs if r.mode == "pretrain"}
    assert all(r.spec.settings.schedule == "wsd" and r.spec.checkpoint_tokens_per_param == (10.0, 20.0)
               for r in pre.values())
    finetunes = [r for r in runs if r.mode == "finetune"]
    assert sorted({r.pretrain for r in finetunes}) == ["text", "text@10tpp", "text@20tpp"]
    assert len(finetunes) == 2 * 3 * 2
    assert all(r.spec.settings.schedule == "cosine" for r in runs if r.mode != "pretrain")  # [pretrain] only
    store = Store(tmp_path)
    ft = next(r for r in finetunes if r.pretrain == "text@10tpp" and r.spec.size == "n25k")
    assert ft.label == "finetune-text@10tpp-n25k-1e4c-s0" and ft.depends_on == (pre["n25k"].run_id,)
    store.write_run(ft)
    assert store.read_run(ft.run_id) == ft
    path = Path(resolved_spec(store, ft).init_from)
    assert path == tmp_path / "runs" / pre["n25k"].run_id / "checkpoint@10tpp"
    final = next(r for r in finetunes if r.pretrain == "text" and r.spec.size == "n25k")
    assert Path(resolved_spec(store, final).init_from).name == "checkpoint"
    assert ft.run_id != final.run_id and ft.identity()["init_from_checkpoint"] == "checkpoint@10tpp"


def fake_record(store: Store, run, metrics: dict) -> None:
    store.write_record(run, "ok", metrics={"n_params": run.spec.shape.n_params, "loss": 5.0, **metrics})


def test_the_results_table_has_a_row_per_checkpoint_and_fine_tunes_know_theirs(tmp_path):
    runs = study_runs(study_from_dict({**STUDY, "sizes": ["n25k"]}))
    store = Store(tmp_path)
    pre = next(r for r in runs if r.mode == "pretrain")
    n = pre.spec.shape.n_params
    checkpoints = [{"name": f"checkpoint@{c}tpp", "checkpoint_tokens_per_param": float(c), "steps": c * 10,
                    "tokens_seen": c * n, "tokens_per_param": float(c), "flops": 1e9 * c, "loss": 6.0 - c / 10,
                    "valid_loss": 6.1, "pretrain_valid_loss": 4.0 - c / 10, "checkpoint": f"x@{c}"} for c in (10, 20)]
    fake_record(store, pre, {"tokens_seen": 40 * n, "flops": 4e10, "pretrain_valid_loss": 3.0,
                             "checkpoints": checkpoints})
    for run in runs:
        if run.mode == "finetune":
            fake_record(store, run, {"data_chars": 10_000})
    table = pd.read_csv(store.write_table()).set_index("run_id")
    rows = table[table["mode"] == "pretrain"].set_index("pretrain")
    assert list(rows.index.sort_values()) == ["text", "text@10tpp", "text@20tpp"]
    assert rows.loc["text@10tpp", "tokens_per_param"] == 10 and rows.loc["text@20tpp", "flops"] == 2e10
    assert rows.loc["text@10tpp", "pretrain_valid_loss"] == 3.0 and rows.loc["text", "tokens_per_param"] == 40
    assert f"{pre.run_id}@10tpp" in table.index
    assert set(rows.loc[["text@10tpp", "text@20tpp"], "stop_reason"]) == {"token_budget"}   # a run to its budget
    assert rows.loc[["text@10tpp", "text@20tpp"], "best_is_last"].all()
    ft = table[table["mode"] == "finetune"].groupby("pretrain")[["pretrain_tokens_per_param", "pretrain_flops"]].first()
    assert ft.loc["text@10tpp"].tolist() == [10, 1e10] and ft.loc["text"].tolist() == [40, 4e10]


def test_a_diverged_run_says_so_in_its_record_and_row(tmp_path):
    """A divergence fails the run (RunFailed, "diverged"); its failed record and row still carry stop_reason."""
    from effdata.study.runner import execute_with
    from effdata.training.rundata import RunFailed

    runs = study_runs(study_from_dict({**STUDY, "sizes": ["n25k"]}))
    store = Store(tmp_path)
    diverging, broken = [r for r in runs if r.mode == "scratch"][0], next(r for r in runs if r.mode == "pretrain")
    for run in (diverging, broken):
        store.write_run(run)

    def diverge(spec, run_dir):
        raise RunFailed("diverged at step 40: valid loss 9.1 (limit 8.3, initial 7.6)", "diverged")

    def other(spec, run_dir):
        raise RunFailed("a checkpoint that does not match")

    assert execute_with(tmp_path, diverging.run_id, diverge) == "failed"
    assert execute_with(tmp_path, broken.run_id, other) == "failed"
    assert store.read_record(diverging.run_id)["metrics"] == {"stop_reason": "diverged"}
    assert store.read_record(broken.run_id)["metrics"] == {}
    table = pd.read_csv(store.write_table()).set_index("run_id")
    assert table.loc[diverging.run_id, "stop_reason"] == "diverged" and table.loc[diverging.run_id, "status"] == "failed"
    assert pd.isna(table.loc[broken.run_id, "stop_reason"])


def test_a_search_that_kept_its_shortest_length_is_flagged_in_its_row(tmp_path):
    """best_is_first: the best may be shorter than min_steps. Derived from the record's evaluations, so a table
    regenerated from older records gets it too; empty for runs that did not search, pretraining included."""
    runs = study_runs(study_from_dict({**STUDY, "sizes": ["n25k"]}))
    store = Store(tmp_path)
    scratch, finetune = [r for r in runs if r.mode == "scratch"][0], [r for r in runs if r.mode == "finetune"][:2]
    pre = next(r for r in runs if r.mode == "pretrain")
    evals = [[0, 7.0], [25, 5.0], [38, 5.1], [56, 5.2]]
    fake_record(store, scratch, {"length_search": "branches", "evals": evals, "best_step": 25})
    fake_record(store, finetune[0], {"length_search": "branches", "evals": evals[:2] + [[38, 4.9], [56, 5.0], [84, 5.1]],
                                     "best_step": 38})
    fake_record(store, finetune[1], {"length_search": "off", "evals": evals, "best_step": 25})
    other = [r for r in runs if r.mode == "finetune"][2]                  # no length beat the pretrained model
    fake_record(store, other, {"length_search": "branches", "evals": [[0, 4.0], [25, 4.1], [38, 4.2]], "best_step": 0})
    fake_record(store, pre, {"length_search": "branches", "evals": [[0, 7.0], [100, 4.0]], "best_step": 100})
    table = pd.read_csv(store.write_table()).set_index("run_id")["best_is_first"]
    assert table[scratch.run_id] == True and table[finetune[0].run_id] == False   # noqa: E712 (values, not identity)
    assert pd.isna(table[finetune[1].run_id]) and pd.isna(table[pre.run_id]) and table[other.run_id] == True  # noqa: E712
