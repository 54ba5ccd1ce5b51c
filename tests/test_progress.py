"""What a user sees while a study works (issue 24, item 5): the data preparation's stages, and the runs as
plain lines where output is not a terminal (CI, SLURM logs, nohup), the tqdm bar where it is."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from effdata.run import build_parser, main
from effdata.spec import RunSpec, StudyRun
from effdata.study.clock import Cost, CostClock, InFlight
from effdata.study.progress import LINE_MAX, BarProgress, PlainProgress, duration, one_line, open_progress
from effdata.study.runner import schedule
from effdata.study.store import Store
from studyfiles import write_study


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(name: str, mode: str, depends_on=()) -> StudyRun:
    spec = RunSpec(mode=mode, size="l1d16h2c32", seed=0, corpus=name, token_budget=1000 if mode == "pretrain" else None)
    return StudyRun(label=f"{mode}-{name}", spec=spec, pretrain="none" if mode == "scratch" else "text",
                    depends_on=tuple(depends_on), init_from_run=depends_on[0] if depends_on else None)


class RecordingExecutor:
    """Runs end at the next poll with a record written as execute_run would (no torch, no processes);
    a run named in `fail` ends failed with a long multi-line error."""

    def __init__(self, store: Store, runs: list[StudyRun], fail: tuple[str, ...] = ()):
        self.store, self.runs, self.fail = store, {r.run_id: r for r in runs}, fail
        self.submitted: list[str] = []

    def submit(self, run_id: str) -> None:
        self.submitted.append(run_id)

    def poll(self):
        ended, self.submitted = self.submitted, []
        for run_id in ended:
            run = self.runs[run_id]
            if run.spec.corpus in self.fail:
                self.store.write_record(run, "failed", error="RuntimeError: " + "a very long reason\n" * 40)
            else:
                if run.mode == "pretrain":   # its model, as a pretraining leaves it for its fine-tunes
                    self.store.checkpoint_dir(run_id).mkdir(parents=True, exist_ok=True)
                    (self.store.checkpoint_dir(run_id) / "config.json").write_text("{}")
                self.store.write_record(run, "ok", metrics={"loss": 2.5, "best_step": 40, "steps": 50,
                                                            "tokens_per_s": 12345.0, "wall_time": 7.2,
                                                            "stopped": "early", "n_params": 1234})
        return [(run_id, None) for run_id in ended]

    def messages(self) -> list[str]:
        return ["step 10/50  train 3.1  " + "x" * 5000]  # a worker's step line, far too long for a log

    def through(self):
        return {}

    def shutdown(self) -> None:
        pass


# ----------------------------------------------------------------------------------------------
# The pieces


def test_one_line_collapses_and_cuts():
    assert one_line("a\n  b  c\r\n") == "a b  c"
    cut = one_line("x" * 500)
    assert len(cut) == LINE_MAX and cut.endswith("...")


def test_duration():
    assert [duration(s) for s in (0, 45, 192, 3900)] == ["0s", "45s", "3m12s", "1h05m"]


def test_plain_summary_every_interval_with_time_left_by_cost():
    clock, out = FakeClock(), io.StringIO()
    shown = PlainProgress(4, out, planned={("", 1.0): 100.0}, every=60.0, clock=clock)
    clock.now += 30
    shown.tick(2)
    assert out.getvalue() == ""  # not a minute yet
    shown.ended("run-a: ok  loss 2.5", "ok", Cost(25.0, "", 1.0, spent=25.0, seconds=60.0))
    clock.now += 30
    shown.tick(2)
    lines = out.getvalue().splitlines()
    assert lines[0] == "run-a: ok  loss 2.5"
    # a quarter of the cost in 60 s: 180 s of work left, on the two workers seen running
    assert lines[1] == "runs: 1/4 ended (1 ok, 0 failed, 0 blocked); 2 running; 1m00s elapsed; about 1m30s left"
    shown.tick(2)
    assert len(out.getvalue().splitlines()) == 2  # the next summary waits another minute


def test_plain_time_left_without_an_estimate_counts_runs_and_skips_blocked_cost():
    clock, out = FakeClock(), io.StringIO()
    shown = PlainProgress(3, out, every=60.0, clock=clock)
    assert shown.summary().endswith("time left unknown until a run ends or says how far it is")
    clock.now += 10
    shown.ended(None, "ok")
    assert shown.summary().endswith("about 20s left")
    costed = PlainProgress(3, io.StringIO(), planned={("", 0.0): 30.0}, clock=clock)
    costed.ended("b: blocked", "blocked", Cost(10.0))
    costed.ended("a: ok", "ok", Cost(10.0, spent=10.0, seconds=10.0))
    assert costed.costs.planned[("", 0.0)] == 20.0 and costed.summary().endswith("about 10s left")


def test_runs_in_flight_count_by_how_far_they_are():
    """A study of long pretrainings said "time left unknown" until its first one ended (21 minutes). A check that can
    fail: with the same clock and costs, the estimate moves with the fractions the runs report, and with none
    reported it is unknown as before; each run's own time to go is its pace so far."""
    clock = FakeClock()
    shown = PlainProgress(4, io.StringIO(), planned={("", 0.0): 100.0}, clock=clock)
    clock.now += 600
    shown.tick(2)
    assert shown.summary().endswith("2 running; 10m00s elapsed; time left unknown until a run ends or says how far it is")
    # 30 s per unit in both: 20 units waiting (600 s) and the two runs' 10 and 15 minutes to go, on two workers
    shown.tick(2, [InFlight(0.5, 600, Cost(40.0)), InFlight(0.25, 300, Cost(40.0))])
    assert shown.summary().endswith("2 running (25 % of its steps, 15m00s to go; 50 %, 10m00s to go); 10m00s elapsed; "
                                    "about 17m30s left")
    shown.tick(2, [InFlight(1.0, 600, Cost(40.0)), InFlight(0.25, 300, Cost(40.0))])  # the longer one's 15 minutes
    assert shown.summary().endswith("about 15m00s left")
    shown.tick(1, [InFlight(0.0, 5, Cost(40.0))])                           # at its first report: no pace yet
    assert "(0 % of its steps)" in shown.summary()
    uncosted = PlainProgress(4, io.StringIO(), clock=clock)   # no estimate: the runs' count, fractions included
    clock.now += 600
    uncosted.tick(1, [InFlight(0.5, 600)])
    assert uncosted.summary().endswith("1 running (50 % of its steps, 10m00s to go); 10m00s elapsed; about 1h10m left")


def test_a_run_in_flight_is_timed_from_its_last_report_not_from_now():
    """A worker reports at its evaluations only: cpu-fixed-tokens-10m-text's w500k pretraining, 5 % through a minute
    in, showed "18m56s to go" (the minute over the 5 % last reported) and ended 9m51s later. A check that can fail:
    half done at its report 600 s in, 120 s ago, it has 480 s to go (the time now would say 720 s, the report
    alone 600 s); an overdue run has none left, never a negative time."""
    clock = FakeClock()
    shown = PlainProgress(4, io.StringIO(), clock=clock)
    clock.now += 720
    shown.tick(1, [InFlight(0.5, 600, since=120)])
    assert "1 running (50 % of its steps, 8m00s to go)" in shown.summary()
    assert InFlight(0.5, 600, since=700).to_go() == 0.0
    assert InFlight(0.0, 5, since=1).to_go() is None
    assert InFlight(0.25, 300, Cost(40.0, "pretrain"), since=60).to_go(0.5) == 240.0


def test_a_length_searched_mode_counts_at_its_expected_share_not_its_bound():
    """cpu-fixed-tokens-30m's fine-tunes had an upper bound twice its pretrainings' and trained 0.6 % of it: counted at
    their bounds, its log said "about 6h00m left" 29 minutes in, for a study that ended 20 minutes later. A check that
    can fail: two pretrainings half done after 30 minutes, fine-tunes bounded at 200 beside their 100: at their
    bounds they would add 200 × 72 s × 2.8; at the prior 1 % they leave about 33 minutes. Once fine-tunes end, their own
    share (here 10 %) and pace replace the prior; a blocked one leaves the plan."""
    clock, n = FakeClock(), 1e5
    shown = PlainProgress(6, io.StringIO(), planned={("pretrain", n): 100.0, ("finetune", n): 200.0}, clock=clock)
    clock.now += 1800
    halfway = [InFlight(0.5, 1800, Cost(50.0, "pretrain", n)), InFlight(0.5, 1800, Cost(50.0, "pretrain", n))]
    shown.tick(2, halfway)
    assert shown.summary().endswith("about 33m22s left")      # (2 × 1800 s + 200 × 1 % × 72 s × 2.8) over two workers
    searching = [*halfway, InFlight(0.01, 30, Cost(50.0, "finetune", n))]   # at its pace to its step cap: 49m30s
    shown.tick(3, searching)
    assert "(1 % of its steps; 50 %, 30m00s to go; 50 %, 30m00s to go)" in shown.summary()
    shown.tick(2, halfway)
    for _ in range(2):
        shown.ended("pretrained", "ok", Cost(50.0, "pretrain", n, spent=50.0, seconds=3600.0))
    shown.ended("fine-tuned", "ok", Cost(50.0, "finetune", n, spent=5.0, seconds=30.0))
    assert shown.costs.share("finetune") == pytest.approx(0.1) and shown.costs.share("scratch") == 0.1
    shown.tick(0)
    assert shown.summary().endswith("about 30s left")         # 150 × 10 % at 6 s each, over the three seen running
    shown.ended("blocked", "blocked", Cost(50.0, "finetune", n))
    assert shown.costs.planned[("finetune", n)] == 150.0 and shown.summary().endswith("about 20s left")


def test_a_mode_not_yet_seen_counts_at_a_pretrainings_rate_times_its_own_factor():
    """cpu-fixed-tokens-10m-text's fine-tunes took 2.7–3.2 times a pretraining's seconds per FLOP at the same size
    (their evaluations), and none ended before minute 15: counted at a pretraining's rate, the summary said 3m56s
    at minute 12 with 5m54s to go. A check that can fail: a fine-tune waiting beside an ended pretraining counts at
    2.8 times its rate, a from-scratch run at 2; once a fine-tune has ended, at its own rate; the factors divide out
    of the line that other modes' runs give."""
    clock = CostClock(planned={("finetune", 1e5): 10.0, ("scratch", 1e5): 1.0})
    clock.end(Cost(10.0, "pretrain", 1e5, spent=10.0, seconds=10.0), ran=True)
    assert clock.seconds_left([], workers=1) == pytest.approx(10.0 * 0.01 * 2.8 + 1.0 * 0.1 * 2.0)
    clock.end(Cost(10.0, "finetune", 1e5, spent=0.1, seconds=0.5), ran=True)       # 5 s per FLOP, its own
    # the from-scratch run: twice the geometric mean of 1 (the pretraining's) and 5 / 2.8 (the fine-tune's)
    assert clock.seconds_left([], workers=1) == pytest.approx(1.0 * 0.1 * 2.0 * (5.0 / 2.8) ** 0.5)
    only = CostClock(planned={("scratch", 1e5): 1.0, ("finetune", 1e5): 20.0})
    only.end(Cost(10.0, "finetune", 1e5, spent=1.0, seconds=2.8), ran=True)        # a pretraining's 1 s per FLOP
    assert only.seconds_left([], workers=1) == pytest.approx(1.0 * 0.1 * 2.0 + 10.0 * 0.1 * 2.8)


def test_seconds_per_flop_follow_size():
    """On two cores a small model's FLOPs take longest (cpu-fixed-tokens-30m: 340 s per TFLOP at w7k, 22 at w500k).
    With fewer than three sizes seen a waiting run's rate follows the measured slope, N^-0.64; from three on, the
    sizes' own line. A check that can fail: one run seen at N = 1e5 puts ten times smaller runs at 10^0.64 its rate;
    three sizes on N^-1 put a fourth on N^-1 as well."""
    one = CostClock(planned={("pretrain", 1e4): 10.0})
    one.end(Cost(10.0, "pretrain", 1e5, spent=10.0, seconds=100.0), ran=True)
    assert one.seconds_left([], workers=1) == pytest.approx(10.0 * 10 * 10 ** 0.64)
    three = CostClock(planned={("pretrain", 1e6): 1.0})
    for n in (1e3, 1e4, 1e5):
        three.end(Cost(1.0, "pretrain", n, spent=1.0, seconds=1e5 / n), ran=True)
    assert three.seconds_left([], workers=1) == pytest.approx(0.1)


def test_the_scheduler_gives_each_ended_run_its_mode_and_what_its_record_says_it_spent(tmp_path):
    pre = _run("text", "pretrain")
    runs = [pre, _run("a", "finetune", [pre.run_id]), _run("b", "scratch")]
    store = Store(tmp_path / "out")

    class Spending(RecordingExecutor):
        def poll(self):
            ended = super().poll()
            for run_id, _ in ended:    # as execute_run writes it: the run's 6N FLOPs in its record
                self.store.write_record(self.runs[run_id], "ok", metrics={"loss": 2.5, "flops_6N": 7.0, "wall_time": 3.0})
            return ended

    seen: list[Cost] = []
    import effdata.study.runner as runner
    opened = runner.open_progress

    def recording(*args, **kwargs):
        shown = opened(*args, **kwargs)
        real = shown.ended
        shown.ended = lambda line, status, cost=Cost(): (seen.append(cost), real(line, status, cost))
        n = pre.spec.shape.n_params
        assert kwargs["planned"] == {("pretrain", n): 10.0, ("finetune", n): 10.0, ("scratch", n): 10.0}
        return shown

    runner.open_progress = recording
    try:
        schedule(store, runs, Spending(store, runs), max_parallel=2, poll_interval=0, progress="plain",
                 estimate=lambda run: 10.0)
    finally:
        runner.open_progress = opened
    assert sorted((c.kind, c.bound, c.spent, c.seconds) for c in seen) == [
        ("finetune", 10.0, 7.0, 3.0), ("pretrain", 10.0, 7.0, 3.0), ("scratch", 10.0, 7.0, 3.0)]


def test_the_local_executor_reports_each_running_runs_fraction_and_forgets_it_when_it_ends():
    from effdata.study.runner import LocalExecutor

    executor = LocalExecutor.__new__(LocalExecutor)            # its queues and bookkeeping, without workers
    executor._events, executor._running, executor._ended, executor._lines, executor._through, executor._started = \
        FakeQueue([("start", "a", 11), ("start", "b", 12), ("progress", "a", {"step": 30, "total_steps": 120}),
                   ("progress", "b", {"step": 5}), ("progress", "a", {"step": 60, "total_steps": 120})]), {}, [], [], {}, {}
    executor.worker_gpus = {}
    executor._drain()
    through = executor.through()
    assert {run: r.fraction for run, r in through.items()} == {"a": 0.5, "b": 0.0}
    assert 0 <= through["a"].seconds < 60 and through["a"].cost == Cost()
    executor._events = FakeQueue([("end", "a", None)])
    executor._drain()
    assert set(executor.through()) == {"b"} and "a" not in executor._started


class FakeQueue:
    def __init__(self, items):
        self.items = list(items)

    def get_nowait(self):
        import queue
        if not self.items:
            raise queue.Empty
        return self.items.pop(0)


def test_auto_picks_the_bar_on_a_terminal_and_plain_lines_elsewhere():
    assert isinstance(open_progress("auto", 3, stream=io.StringIO()), PlainProgress)
    bar = open_progress("auto", 3, stream=TtyStream())
    assert isinstance(bar, BarProgress)
    bar.close()
    assert isinstance(open_progress("plain", 3, stream=TtyStream()), PlainProgress)
    forced = open_progress("bar", 3, stream=io.StringIO())
    assert isinstance(forced, BarProgress)
    forced.close()
    with pytest.raises(ValueError, match="progress must be one of"):
        open_progress("fancy", 3)


def test_help_documents_the_flag():
    text = " ".join(build_parser().format_help().split())  # argparse wraps at the terminal width
    assert "--progress {auto,bar,plain}" in text and "stderr is a terminal" in text
    assert build_parser().parse_args([]).progress == "auto"


# ----------------------------------------------------------------------------------------------
# The scheduler's output, captured (not a terminal)


def test_schedule_prints_a_plain_line_per_ended_run(tmp_path, capsys):
    pre = _run("text", "pretrain")
    runs = [pre, _run("a", "finetune", [pre.run_id]), _run("b", "scratch"), _run("c", "scratch")]
    store = Store(tmp_path / "out")
    outcome = schedule(store, runs, RecordingExecutor(store, runs, fail=("c",)), max_parallel=2, poll_interval=0,
                       summary_every=0)
    assert sorted(outcome.done) == sorted(r.run_id for r in runs[:3]) and list(outcome.failed) == [runs[3].run_id]
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert all(len(line) <= LINE_MAX for line in lines), max(map(len, lines))
    assert "\r" not in err and "x" * 200 not in err  # no redraws, no step postfix
    ended = [line for line in lines if not line.startswith("runs: ")]
    assert len(ended) == len(runs)
    for run in runs[:3]:
        assert f"{run.run_id}: ok  loss 2.5000  best step 40/50  12,345 tok/s  7 s  stopped early" in ended
    assert any(line.startswith(f"{runs[3].run_id}: FAILED: RuntimeError: a very long reason") for line in ended)
    assert lines[-1].startswith("runs: 4/4 ended (3 ok, 1 failed, 0 blocked); 0 running;")
    assert lines[-1].endswith("none left")


def test_a_fine_tune_of_a_pretraining_done_without_its_checkpoint_is_blocked_not_failed(tmp_path, capsys):
    """--reuse of a folder that holds records alone (analysis/cpu/records.tar.gz) copies a pretraining as done
    without its model: its fine-tunes failed one by one, each saying "run its pretraining first". Now they are
    blocked before they start, with the reason and the remedy; with the checkpoint there they run (a check that can
    fail both ways)."""
    pre = _run("text", "pretrain")
    runs = [pre, _run("a", "finetune", [pre.run_id])]
    store = Store(tmp_path / "out")
    store.write_run(pre)
    store.write_record(pre, "ok", metrics={"loss": 3.0})      # done, as a copied record: no checkpoint/
    executor = RecordingExecutor(store, runs)
    outcome = schedule(store, runs, executor, max_parallel=2, poll_interval=0, progress="plain")
    assert list(outcome.blocked) == [runs[1].run_id] and not outcome.failed and not outcome.done
    assert outcome.blocked[runs[1].run_id] == (
        f"its pretraining {pre.run_id} is done but has no checkpoint (a record copied without its model?): remove its "
        "folder to pretrain it again, or --reuse a folder with the model")
    assert f"{runs[1].run_id}: blocked: its pretraining {pre.run_id} is done but has no checkpoint" in capsys.readouterr().err
    (store.checkpoint_dir(pre.run_id)).mkdir()
    (store.checkpoint_dir(pre.run_id) / "config.json").write_text("{}")
    outcome = schedule(store, runs, RecordingExecutor(store, runs), max_parallel=2, poll_interval=0, progress="plain")
    assert outcome.done == [runs[1].run_id] and not outcome.blocked


def test_schedule_with_the_bar_forced_draws_it(tmp_path, capsys):
    runs = [_run("b", "scratch")]
    store = Store(tmp_path / "out")
    schedule(store, runs, RecordingExecutor(store, runs), max_parallel=1, poll_interval=0, progress="bar")
    captured = capsys.readouterr()
    assert "runs: 100%" in captured.err  # tqdm's bar, as in a terminal
    assert f"{runs[0].run_id}: ok" in captured.out  # tqdm.write's line above it, as before


# ----------------------------------------------------------------------------------------------
# The command line on tiny corpora


def _cli(study: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["--study", str(study), "--out", str(tmp_path / "out"), "--home", str(tmp_path / "home"), *extra]


def test_data_preparation_says_what_it_builds_once(tmp_path, tiny_corpora, capsys):
    study = write_study(tmp_path / "s.toml", tiny_corpora, sizes=["n25k"])
    assert main(_cli(study, tmp_path, "--dry-run")) == 0
    err = capsys.readouterr().err
    python, text = tiny_corpora["python"], tiny_corpora["text"]
    expected = [f"preparing data 1/2: {python}",
                f"  training tokenizer bpe-384 on {python}, {text}: reading its sample (up to 6.00M characters) ...",
                f"  building corpus {python}: 160 files ...",
                f"  building corpus {text}: 160 files ...",
                "  training tokenizer bpe-384 on ",
                f"  tokenizing {python}: ",
                f"preparing data 2/2: {text}",
                f"  tokenizing {text}: ",
                "data ready ("]
    lines = err.splitlines()
    assert len(lines) == len(expected), err
    for line, start in zip(lines, expected):
        # A line longer than LINE_MAX is cut to it, ending "..." (tmp paths are long under pytest-xdist).
        cut = len(line) == LINE_MAX and line.endswith("...")
        assert start.startswith(line[:-3]) if cut and len(start) >= LINE_MAX - 3 else line.startswith(start), \
            (line, start)
    assert re.fullmatch(r"  tokenizing .*: \d+\.\d\dk characters, \d+ documents \.\.\.", lines[5]) or \
        len(lines[5]) == LINE_MAX
    assert main(_cli(study, tmp_path, "--dry-run")) == 0
    assert capsys.readouterr().err == ""  # all cached: nothing to say


@pytest.mark.slow
def test_a_tiny_study_with_captured_output_prints_plain_lines(tmp_path, tiny_corpora, capsys):
    study = write_study(tmp_path / "s.toml", tiny_corpora, sizes=["n25k"], scratch={"data_chars": [2e4]},
                        finetune={"data_chars": [2e4]}, pretrain={"token_budget": 20_000})
    assert main(_cli(study, tmp_path, "--no-analysis", "--workers", "1")) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert "\r" not in captured.err and captured.out == ""
    assert all(len(line) <= LINE_MAX for line in lines), max(lines, key=len)
    assert lines[0].startswith("preparing data 1/2: ")
    records = list(Store(tmp_path / "out").records())
    assert len(records) == 3
    for record in records:
        ended = [line for line in lines if line.startswith(f"{record['run_id']}: ")]
        assert len(ended) == 1 and re.search(r": ok  loss \d\.\d{4} .* \d+ s  (stopped early|full schedule.*|stopped at its step cap)$",
                                             ended[0]), ended
    assert any(line.startswith("runs: 3/3 ended (3 ok, 0 failed, 0 blocked)") for line in lines)


def test_building_corpora_from_the_command_line_says_so(tmp_path, tiny_corpora, capsys):
    import datasets  # noqa: PLC0415

    from effdata.corpora import main as corpora_main  # noqa: PLC0415

    # As in a fresh process: another test in this one may have quietened datasets' bars already.
    datasets.enable_progress_bars()
    python = tiny_corpora["python"]
    assert corpora_main([python, "--home", str(tmp_path / "home"), "--no-tokens"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[:2] == [f"preparing data 1/1: {python}", f"  building corpus {python}: 160 files ..."]
    assert lines[2].startswith("data ready (") and len(lines) == 3


def test_a_long_tokenization_says_how_far_it_got_in_a_log(tmp_path, tiny_corpora, capsys, monkeypatch):
    from effdata.data import tokens  # noqa: PLC0415
    from effdata.study.progress import preparation_shown  # noqa: PLC0415

    monkeypatch.setattr(tokens, "SAY_EVERY", 0.0)     # every batch counts as long
    monkeypatch.setattr(tokens, "BATCH_CHARS", 100_000)
    python, text = tiny_corpora["python"], tiny_corpora["text"]
    with preparation_shown(1) as shown:
        shown.corpus = (1, python)
        tokens.prepare(python, 384, tmp_path / "home", tokenizer_corpora=[python, text])
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith(f"  tokenize {python}/train: ")]
    done = [re.search(r": (\S+) of (\S+) characters$", line).groups() for line in said]
    assert len(said) >= 3 and done[-1][0] == done[-1][1], said  # batch by batch, to the whole split
