"""The scheduler's run order and deadline (a GPU invocation of a few minutes: benchmarks/gpu_run.sh), with an
executor that ends each run as it is submitted."""
from __future__ import annotations

import pytest

from effdata.run import main
from effdata.study import runner
from effdata.study.runner import run_order, schedule
from effdata.study.store import Store
from effdata.study.study import study_from_dict, study_runs

STUDY = {"name": "t", "sizes": ["n25k", "n50k"], "scratch": {"data_chars": [1e4, 3e4]},
         "finetune": {"data_chars": [1e4]}, "pretrain": {"corpora": ["text"], "token_budget": 20000}}


class Immediate:
    """Each submitted run ends at once, ok; the order of submission is kept."""

    def __init__(self, store: Store, runs):
        self.store, self.runs, self.submitted, self.ended = store, {r.run_id: r for r in runs}, [], []

    def submit(self, run_id: str) -> None:
        self.submitted.append(run_id)
        if self.runs[run_id].mode == "pretrain":   # its model, as a pretraining leaves it for its fine-tunes
            self.store.checkpoint_dir(run_id).mkdir(parents=True, exist_ok=True)
            (self.store.checkpoint_dir(run_id) / "config.json").write_text("{}")
        self.store.write_record(self.runs[run_id], "ok", metrics={})
        self.ended.append((run_id, None))

    def poll(self):
        ended, self.ended = self.ended, []
        return ended

    def messages(self):
        return []

    def through(self):
        return {}

    def shutdown(self) -> None:
        pass


def _label(run) -> str:
    return f"{run.mode} {run.spec.size} {run.spec.data_chars or ''}".strip()


def test_size_order_gives_pretraining_then_whole_sizes_from_the_smallest():
    runs = {r.run_id: r for r in study_runs(study_from_dict(STUDY))}
    by_n = lambda run: float(run.spec.shape.n_params)  # noqa: E731  (a stand-in for the FLOPs estimate)
    assert [_label(runs[i]) for i in run_order(runs, "size", by_n)] == [
        "pretrain n50k", "pretrain n25k",
        "scratch n25k 10000", "finetune n25k 10000", "scratch n25k 30000",
        "scratch n50k 10000", "finetune n50k 10000", "scratch n50k 30000"]
    assert [_label(runs[i]) for i in run_order(runs, "longest", by_n)][:4] == [
        "pretrain n50k", "pretrain n25k", "scratch n50k 10000", "scratch n50k 30000"]
    with pytest.raises(ValueError, match="order must be one of longest, size"):
        run_order(runs, "random")


def test_no_run_starts_after_the_deadline_and_the_rest_are_left_to_do(tmp_path, monkeypatch):
    runs = study_runs(study_from_dict(STUDY))
    store = Store(tmp_path / "out")
    executor = Immediate(store, runs)
    clock = iter(range(1, 1000))
    monkeypatch.setattr(runner.time, "monotonic", lambda: float(next(clock)))
    outcome = schedule(store, runs, executor, max_parallel=1, order="size", deadline=2.5, poll_interval=0)
    assert len(executor.submitted) == 2 and outcome.done == executor.submitted  # started at t = 1 and 2
    assert len(outcome.deferred) == len(runs) - 2 and not outcome.failed and not outcome.ok
    assert all(not store.is_done(run_id) for run_id in outcome.deferred)
    again = schedule(store, runs, Immediate(store, runs), max_parallel=1, order="size", poll_interval=0)
    assert again.ok and len(again.skipped) == 2 and len(again.done) == len(runs) - 2  # the same plan, later


def test_a_bad_stop_after_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["--stop-after", "0", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["effdata.run: --stop-after must be a positive number of seconds, got 0"]
    assert not (tmp_path / "out").exists()
