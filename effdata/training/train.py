"""One training run, early-stopped on held-out Python: pretrain, from scratch, or fine-tune.

`train_run(spec, data, run_dir)` is the whole contract: set up, loop, finish around one `RunState`.
What a run does (docs/METHOD.md has the why):

* model: `build_model` (seeded), or for a fine-tune the pretrained checkpoint (`checkpoint.load_pretrained`);
* the step: `step.Stepper` (fused unembedding + cross-entropy, AdamW, precision, compile);
* length, warm-up and LR: `schedule.schedule_for`, the LR a pure function of the step;
* batches: `rundata.Batches`, a pure function of (seed, step);
* evaluation: at step 0 and every expected_steps/`evals_per_run` steps, on the first `eval_tokens`
  tokens of the fixed target valid split, fp32. Early stopping: `patience` evaluations without
  improvement (pretraining too, unless `pretrain_stop_on="budget"`). The best model (in memory) gives
  the reported `valid_loss`, and `loss` = its test loss on the first `test_tokens` tokens of the test split;
* failure: NaN/inf, or a loss above `diverge_factor`·max(initial loss, ln V) → `RunFailed`; so do a
  checkpoint that does not match, and data too short for one window. Never a silently wrong number;
* pretraining saves the best model with the tokenizer under `run_dir/checkpoint`;
* the best length (`length_search = "branches"`, scratch and fine-tunes): the same branches, at the decay start
  of runs of min_steps·branch_ratio^k steps, each evaluated on the target valid split at its end as that run
  would be; the best branch's model is the run's; the run stops when `branch_patience` branches in a row are
  worse than the best (`_try_length`), else at max_steps;
* why it stopped: `stop_reason` (early_stop, or the limit that set its length: token_budget, epoch_budget,
  step_floor, step_cap; a divergence fails the run with "diverged") and `best_is_last`;
* stopping by forecast (`stop_by_forecast`, a [sweep] point): at each evaluation past that fraction of its
  planned steps, the best loss forecast from its own curve less the forecast's measured error
  (effdata.forecast) is set against `rivals()`, the caller's best finished sibling; above it, the run stops
  with stop_reason "forecast" and the check in its record (`_forecast_stop`);
* mid-run checkpoints (wsd pretraining, `checkpoint_tokens_per_param`): when the trunk reaches the decay
  start of a shorter run, a branch trains the same model and optimiser over that run's decay, on the
  batches the trunk would have seen, saves the model as `run_dir/checkpoint@<c>tpp`, and gives the
  trunk back its state bit for bit (`_branch`); the record lists each checkpoint with its held-out losses;
* resume: the `RunState` is written to `run_dir/resume.pt` at evaluations (at most every
  `resume_every_s` seconds, and so that writing takes at most 5% of the run) and deleted at the end; a run
  that finds a matching one continues from it and ends with the same numbers;
* time: `Seconds` says where the run's wall time went (setup, compile, steps, evaluations, test,
  checkpoints, branches); the record holds it as `time_*` and the steps' own rate as `step_tokens_per_s`.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from effdata.forecast import stop_check
from effdata.spec import FINAL_CHECKPOINT, RunSpec, checkpoint_name
from effdata.training import device as devmod
from effdata.training.bench import measure_step_times
from effdata.training.checkpoint import load_pretrained, load_resume, save_checkpoint, save_resume, tokenizer_eos
from effdata.training.curve import curve_point
from effdata.training.evaluate import evaluate
from effdata.training.model import build_model, non_embedding_params, total_params
from effdata.training.noise import measure as measure_noise
from effdata.training.rundata import Batches, RunData, RunFailed
from effdata.training import steptimes
from effdata.training.schedule import Branch, Schedule, schedule_for
from effdata.training.step import Stepper, make_optimizer, should_compile

RESUME_FILE = "resume.pt"


@dataclass
class Seconds:
    """Where a run's wall time went, summed over the processes of a resumed run. What is left of
    `wall_time` beside these (logging, the progress callback) is `time_other` in the record."""

    setup: float = 0.0       # reading the data (when the caller says when it started), model, optimiser
    compile: float = 0.0     # the first compiled step of a process, less an ordinary step's time
    steps: float = 0.0       # training steps: tokens_seen / steps is the rate `python -m effdata.bench` measures
    evals: float = 0.0       # held-out evaluations and copies of the best model
    test: float = 0.0        # the best model's test loss (and its pretraining valid loss)
    checkpoint: float = 0.0  # resume.pt writes and the pretraining checkpoint
    branches: float = 0.0    # mid-run checkpoints: the branches' decay steps, their evaluations and saves


@dataclass
class ResumeWrites:
    """The run's resume.pt writes: how many, the largest file and the longest write (a GPU-sized model's
    file is a gigabyte: docs/notes/issue-16.md). Their total time is in `Seconds.checkpoint`."""

    count: int = 0
    max_bytes: int = 0
    max_seconds: float = 0.0

    def note(self, size: int, seconds: float) -> None:
        self.count += 1
        self.max_bytes = max(self.max_bytes, size)
        self.max_seconds = max(self.max_seconds, seconds)


@dataclass
class RunState:
    """Everything a run carries from evaluation to evaluation: saved as resume.pt, field for field,
    with the model's and the optimiser's state beside it."""

    key: str                              # the spec and data this state belongs to (resume_key)
    step: int = 0
    best_loss: float = math.inf
    best_step: int = -1
    best_state: dict[str, torch.Tensor] | None = None
    bad: int = 0                          # evaluations since the last improvement
    evals: list[list] = field(default_factory=list)   # [step, valid loss]
    init_loss: float | None = None
    wall: float = 0.0                     # seconds spent in earlier processes (a resumed run)
    stop_reason: str = ""                 # "early_stop" once patience ran out; else the schedule's limit
    seconds: Seconds = field(default_factory=Seconds)
    checkpoints: list[dict] = field(default_factory=list)   # the mid-run checkpoints done (`_branch`)
    curve: list[dict] = field(default_factory=list)   # the learning curve: one `curve_point` per evaluation
    forecast: dict = field(default_factory=dict)      # the last stop_by_forecast check (forecast.StopCheck)
    resume: ResumeWrites = field(default_factory=ResumeWrites)  # the writes before the one that saved it


@dataclass(frozen=True)
class RunLog:
    """The run's log file, one timestamped line per call."""

    path: Path

    def __call__(self, msg: str) -> None:
        with open(self.path, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")


@dataclass
class _Run:
    """What one run works with, built once by `_setup` (rebuilt, not saved, on resume)."""

    spec: RunSpec
    data: RunData
    run_dir: Path
    dev: torch.device
    threads: int
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    stepper: Stepper
    batches: Batches
    schedule: Schedule
    n_params: int
    precision: str
    attention: str
    eval_dtypes: tuple[torch.dtype | None, torch.dtype | None]   # (body, unembedding) of evaluations
    progress: Callable[[dict], None] | None
    log: RunLog
    rivals: Callable[[], float | None] | None = None   # best finished sibling's held-out loss (stop_by_forecast)
    t_start: float = field(default_factory=time.perf_counter)
    graphs: int | None = None             # torch.compile graphs after this process's first step
    measuring_s: float = 0.0              # measuring this machine's step times for the compile decision

    @property
    def early_stop(self) -> bool:
        return self.spec.mode != "pretrain" or self.spec.settings.pretrain_stop_on == "target"

    def loss_on(self, tokens: np.ndarray, max_tokens: int) -> float:
        return evaluate(self.model, tokens, self.spec.shape.n_ctx, max_tokens, self.spec.settings.eval_batch_size,
                        self.dev, *self.eval_dtypes)

    def valid_loss(self) -> float:
        return self.loss_on(self.data.valid, self.spec.settings.eval_tokens)


@dataclass
class _Window:
    """Training loss summed since the last evaluation, and the clock of this process's steps."""

    loss_sum: torch.Tensor
    count: int
    t0: float
    step0: int
    last_save: float
    t_steps: float                        # when the steps since the last evaluation began
    save_s: float = 0.0                   # how long the last resume.pt took to write
    first_step_s: float | None = None     # a compiled process's first step (it compiles), until accounted


def train_run(spec: RunSpec, data: RunData, run_dir: Path | str,
              progress: Callable[[dict], None] | None = None, *,
              threads: int | None = None, device: str | None = None, started: float | None = None,
              rivals: Callable[[], float | None] | None = None) -> dict[str, Any]:
    """Execute one run; return its flat, JSON-serialisable metrics. Raises RunFailed(reason).

    `threads`: torch CPU threads (default: every available core; the runner passes cores/workers).
    `device`: "cpu"/"cuda" (default: CUDA when present). `progress(dict)` is called at each evaluation
    with step, total_steps, train_loss, valid_loss, best_valid_loss, lr, tokens_per_s, elapsed.
    `started`: the `time.perf_counter()` at which the caller began the run (the runner: before reading
    its data), so that `wall_time` and `time_setup` count that too; default: now.
    `rivals()`: the best held-out loss of the run's finished [sweep] siblings, or None (the runner's
    `Store.rival_loss`); with `stop_by_forecast` set, a run forecast to lose to it stops (`_forecast_stop`).
    """
    run = _setup(spec, data, Path(run_dir), progress, threads, device, started)
    run.rivals = rivals
    state = _start_or_resume(run)
    state.seconds.setup += time.perf_counter() - run.t_start - run.measuring_s
    state.seconds.compile += run.measuring_s
    _loop(run, state)
    return _finish(run, state)


def _setup(spec: RunSpec, data: RunData, run_dir: Path, progress, threads, device, started=None) -> _Run:
    t_start = time.perf_counter() if started is None else started
    run_dir.mkdir(parents=True, exist_ok=True)
    dev = devmod.pick_device(device)
    devmod.make_deterministic(dev)
    n_threads = devmod.set_threads(threads)
    devmod.reuse_freed_memory()
    if spec.mode == "finetune" and not spec.init_from:
        raise RunFailed("a finetune run needs init_from (a pretrained checkpoint directory)")
    shape = spec.shape
    data.check(shape.n_ctx)
    torch.manual_seed(spec.seed)
    np.random.seed(spec.seed % 2**32)
    if dev.type == "cuda":
        torch.cuda.manual_seed_all(spec.seed)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if spec.mode == "finetune":
        model = load_pretrained(spec, int(data.vocab_size))
    else:
        model = build_model(shape, int(data.vocab_size), eos_token_id=tokenizer_eos(data.tokenizer_dir))
    model.to(dev).train()
    n_params = non_embedding_params(model)
    schedule = schedule_for(spec, len(data.train), n_params)
    s = spec.settings
    amp_dtype, head_dtype = devmod.precision_plan(s.precision, dev, shape.d_model)
    attention = devmod.attention_impl(dev, amp_dtype)
    model.config._attn_implementation = attention
    precision = devmod.precision_name(amp_dtype, head_dtype)
    log = RunLog(run_dir / "log.txt")
    compiled, measuring = _compile_decision(spec, dev, n_threads, precision, int(data.vocab_size),
                                            schedule.total_steps, log)
    optimizer = make_optimizer(model, s, schedule.peak_lr, dev)
    stepper = Stepper(model, optimizer, s, dev, amp_dtype, compiled, log, head_dtype=head_dtype)
    return _Run(spec=spec, data=data, run_dir=run_dir, dev=dev, threads=n_threads, model=model,
                optimizer=optimizer, stepper=stepper, batches=Batches(data.train, shape.n_ctx, s.batch_size, spec.seed),
                schedule=schedule, n_params=n_params, precision=precision, attention=attention,
                eval_dtypes=_eval_dtypes(spec, amp_dtype, head_dtype), progress=progress, log=log, t_start=t_start,
                measuring_s=measuring)


def _compile_decision(spec: RunSpec, dev: torch.device, threads: int, precision: str, vocab: int,
                      total_steps: int, log: RunLog) -> tuple[bool, float]:
    """`should_compile` by this machine's measured step times for this run's step. A run that could compile
    and finds nothing measured measures them first (a few steps eager and compiled: about the compile time,
    and the run's own compile then reuses it) and records them for every later run. Returns the decision
    and the seconds spent measuring."""
    s = spec.settings
    if s.compile != "auto" or total_steps < s.compile_min_steps:
        return should_compile(s, total_steps, None), 0.0
    key = steptimes.step_key(dev, spec.shape, s.batch_size, vocab, threads, precision)
    measured, spent = steptimes.load(key), 0.0
    if measured is None:
        t = time.perf_counter()
        with torch.random.fork_rng(devices=[]):  # the measuring model's seeding must leave this run's alone
            measured = measure_step_times(spec.shape, vocab, s.batch_size, dev, s.precision)
        steptimes.record(key, measured)
        spent = time.perf_counter() - t
        log(f"measured the step times of {key} in {spent:.1f} s")
    compiled = should_compile(s, total_steps, measured)
    log(f"compile={compiled}: {total_steps} steps x ({measured.eager_s * 1e3:.1f} - {measured.compiled_s * 1e3:.1f} ms) "
        f"saved against {measured.compile_s:.1f} s of compiling (measured {measured.measured})")
    return compiled, spent


def resume_key(spec: RunSpec, data: RunData, compiled: bool) -> str:
    """What a saved state must match to be resumed: the spec, the sizes of the data, and whether the step
    is compiled (its rounding differs from eager: one run must not mix them, or a resumed run would not
    end with the numbers of an uninterrupted one)."""
    return json.dumps({"spec": spec.to_dict(), "train": int(len(data.train)), "valid": int(len(data.valid)),
                       "test": int(len(data.test)), "vocab": int(data.vocab_size), "compiled": compiled},
                      sort_keys=True, default=str)


def _eval_dtypes(spec: RunSpec, amp_dtype, head_dtype) -> tuple:
    """(body, unembedding) dtypes of a run's evaluations: the run's own precision, except fp32 for a run
    trained to its budget. That run is evaluated twice (start and end), so fp32 costs it ~1 s, and its
    evaluation on the target is far from what it learned (an English model on Python at 7.5-8.2 nats),
    where bf16 moved the loss most: 9.0e-4 nats at n25k against 1.4e-4 at most on Python models
    (docs/notes/issue-13.md)."""
    budget_run = spec.mode == "pretrain" and spec.settings.pretrain_stop_on == "budget"
    return (None, None) if budget_run else (amp_dtype, head_dtype)


def _start_or_resume(run: _Run) -> RunState:
    state = RunState(key=resume_key(run.spec, run.data, run.stepper.compiled))
    path = run.run_dir / RESUME_FILE
    if not path.exists():
        sch = run.schedule
        run.log(f"start {run.spec.mode} size={run.spec.size} N={run.n_params} seed={run.spec.seed} device={run.dev} "
                f"threads={run.threads} precision={run.precision} attention={run.attention} "
                f"compile={run.stepper.compiled} steps={sch.total_steps} warmup={sch.warmup_steps} "
                f"eval_every={sch.eval_interval} peak_lr={sch.peak_lr:.3g} train_tokens={len(run.data.train)}")
        return state
    try:
        saved = load_resume(path, run.dev)
    except Exception as exc:  # noqa: BLE001 - a torn or foreign file: start over rather than fail
        run.log(f"ignoring unreadable {path.name}: {exc!r}")
        return state
    if saved.get("key") != state.key:
        run.log(f"ignoring {path.name}: it belongs to a different spec, data or compile decision")
        return state
    run.model.load_state_dict(saved["model"])
    run.optimizer.load_state_dict(saved["optimizer"])
    state = RunState(**{f.name: saved[f.name] for f in fields(RunState) if f.name in saved})
    if state.best_state is None and _best_is_trunk(run, state):
        state.best_state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    state.resume.note(path.stat().st_size, 0.0)  # the write that made this file (its time is in `wall`)
    run.log(f"resumed at step {state.step} (best {state.best_loss:.4f} at step {state.best_step})")
    return state


def _save(run: _Run, state: RunState) -> None:
    t = time.perf_counter()
    payload = {f.name: getattr(state, f.name) for f in fields(RunState)}
    if _best_is_trunk(run, state):  # the best model is the model: saved once (a quarter of the file)
        payload["best_state"] = None
    payload["wall"] = state.wall + t - run.t_start
    payload.update(model=run.model.state_dict(), optimizer=run.optimizer.state_dict())
    save_resume(run.run_dir / RESUME_FILE, payload)
    seconds = time.perf_counter() - t
    state.seconds.checkpoint += seconds
    state.resume.note((run.run_dir / RESUME_FILE).stat().st_size, seconds)


def _loop(run: _Run, state: RunState) -> None:
    sch, s = run.schedule, run.spec.settings
    now = time.perf_counter()
    window = _Window(torch.zeros((), dtype=torch.float32, device=run.dev), 0, now, state.step, now, now)
    if state.step == 0 and not state.evals:
        _evaluate(run, state, window)
    first = run.stepper.compiled  # this process's first compiled step compiles: timed on its own
    while state.step < sch.total_steps:
        for branch in _branches_due(run, state):
            _branch(run, state, branch, window)
        if any(_try_length(run, state, branch, window) for branch in _lengths_due(run, state)):
            break
        t = time.perf_counter() if first else 0.0
        window.loss_sum += run.stepper(run.batches.get(state.step), sch.lr(state.step, s.min_lr_ratio))
        if first:
            window.loss_sum.item()  # the step's end, on any device
            window.first_step_s, first = time.perf_counter() - t, False
            run.graphs = steptimes.compiled_graphs()
        window.count += 1
        state.step += 1
        if state.step % sch.eval_interval == 0 or state.step == sch.total_steps:
            if _evaluate(run, state, window):
                break


def _account_steps(state: RunState, window: _Window) -> None:
    """Add the steps since the last evaluation to `state.seconds` (the caller has synchronised):
    a compiled first step counts as compile time beyond the mean of the window's other steps."""
    elapsed = time.perf_counter() - window.t_steps
    if window.first_step_s is not None:
        others = window.count - 1
        ordinary = (elapsed - window.first_step_s) / others if others else 0.0
        compile_s = max(0.0, window.first_step_s - ordinary)
        state.seconds.compile += compile_s
        elapsed -= compile_s
        window.first_step_s = None
    state.seconds.steps += elapsed


def _branches_due(run: _Run, state: RunState) -> list[Branch]:
    """The mid-run checkpoints that leave the trunk at this step and are not done yet."""
    done = {c["checkpoint_tokens_per_param"] for c in state.checkpoints}
    return [b for b in run.schedule.branches
            if run.schedule.branch_start(b) == state.step and b.tokens_per_param not in done]


@dataclass
class _Trunk:
    """The trunk's model and optimiser state, kept while a branch trains the same objects (the compiled
    step is bound to the model's parameters: a copy of the model would compile again)."""

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]

    @classmethod
    def of(cls, run: _Run) -> "_Trunk":
        return cls({k: v.detach().clone() for k, v in run.model.state_dict().items()},
                   copy.deepcopy(run.optimizer.state_dict()))

    def restore(self, run: _Run) -> None:
        run.model.load_state_dict(self.model)
        run.optimizer.load_state_dict(self.optimizer)


def _branch(run: _Run, state: RunState, branch: Branch, window: _Window) -> None:
    """At the trunk's step = the decay start of the shorter run `branch` stands for: train the model over
    that run's decay on the batches the trunk would have seen (a pure function of the step), evaluate it
    and save it (`_save_branch`), then give the trunk back its model and optimiser bit for bit, and write
    resume.pt so that a run killed later neither does the checkpoint again nor loses it. The branch's
    time is `Seconds.branches`, not the trunk's steps."""
    float(window.loss_sum)  # the trunk's steps so far have ended (on any device)
    _account_steps(state, window)
    began = time.perf_counter()
    trunk = _Trunk.of(run)
    with torch.random.fork_rng(devices=[run.dev] if run.dev.type == "cuda" else []):
        train_loss = _decay_branch(run, state, branch)
        state.checkpoints.append(_save_branch(run, branch, train_loss))
    trunk.restore(run)
    state.seconds.branches += time.perf_counter() - began
    _save(run, state)
    window.last_save = window.t_steps = time.perf_counter()
    window.t0 += window.last_save - began  # the log's tokens/s is the trunk's


def _decay_branch(run: _Run, state: RunState, branch: Branch) -> float:
    """The branch's decay steps, with the LR of the shorter run; its mean training loss, checked."""
    what = (checkpoint_name(branch.tokens_per_param) if branch.tokens_per_param is not None
            else f"the run of {branch.total_steps} steps")
    own, s = run.schedule.of_branch(branch), run.spec.settings
    loss_sum = torch.zeros((), dtype=torch.float32, device=run.dev)
    for step in range(own.decay_start, own.total_steps):
        loss_sum += run.stepper(run.batches.get(step), own.lr(step, s.min_lr_ratio))
    train_loss = float(loss_sum) / max(1, own.total_steps - own.decay_start)
    if not math.isfinite(train_loss):
        raise RunFailed(f"diverged in the branch to {what}: training loss is {train_loss}", "diverged")
    _check_divergence(run, state, train_loss, None)
    return train_loss


def _save_branch(run: _Run, branch: Branch, train_loss: float) -> dict[str, Any]:
    """The branch's model evaluated as a run's end is (valid, test, own distribution) and saved as
    `checkpoint@<c>tpp` beside the run's own checkpoint; its entry in the record."""
    spec, data, s = run.spec, run.data, run.spec.settings
    valid = run.valid_loss()
    test = run.loss_on(data.test, s.test_tokens)
    if not (math.isfinite(valid) and math.isfinite(test)):
        raise RunFailed(f"{checkpoint_name(branch.tokens_per_param)}: held-out loss {valid}, test loss {test}")
    own = (run.loss_on(data.pretrain_valid, s.eval_tokens)
           if data.pretrain_valid is not None and len(data.pretrain_valid) > spec.shape.n_ctx else None)
    name = checkpoint_name(branch.tokens_per_param)
    save_checkpoint(run.model, run.run_dir / name, data.tokenizer_dir)
    tokens = branch.total_steps * run.schedule.tokens_per_step
    f_full, f_6n = spec.shape.flops_per_token(int(data.vocab_size))
    start = run.schedule.branch_start(branch)
    run.log(f"{name}: steps {start}-{branch.total_steps} decayed, train {train_loss:.4f} valid {valid:.4f} "
            f"test {test:.4f}" + (f" own {own:.4f}" if own is not None else ""))
    return {"name": name, "checkpoint_tokens_per_param": branch.tokens_per_param,
            "checkpoint": str(run.run_dir / name), "steps": branch.total_steps, "branch_start": start,
            "tokens_seen": tokens, "tokens_per_param": tokens / run.n_params, "flops": f_full * tokens,
            "flops_6N": f_6n * tokens, "train_loss": train_loss, "valid_loss": valid, "loss": test,
            "pretrain_valid_loss": own}


def _lengths_due(run: _Run, state: RunState) -> list[Branch]:
    """The length search's branches that leave the trunk at this step and are not evaluated yet (a resumed
    run finds the ones it did in `state.evals`, under their own lengths)."""
    done = {at for at, _ in state.evals}
    return [b for b in run.schedule.lengths
            if run.schedule.branch_start(b) == state.step and b.total_steps not in done]


def _try_length(run: _Run, state: RunState, branch: Branch, window: _Window) -> bool:
    """Length search, at the trunk's step = the decay start of the run of `branch.total_steps` steps: decay
    the trunk's model and optimiser over that run's decay (`_decay_branch`, as a mid-run checkpoint does),
    evaluate it on the target valid split as that run's end (`_valid_point`: it may become the best model),
    give the trunk back its state bit for bit, and write resume.pt when due. True to stop: `branch_patience`
    lengths in a row worse than the best, so the best length is behind the trunk."""
    s = run.spec.settings
    trunk_loss = float(window.loss_sum) / window.count if window.count else 0.0
    if not math.isfinite(trunk_loss):
        raise RunFailed(f"diverged at step {state.step}: training loss is {trunk_loss}", "diverged")
    _account_steps(state, window)
    began = time.perf_counter()
    trunk = _Trunk.of(run)
    with torch.random.fork_rng(devices=[run.dev] if run.dev.type == "cuda" else []):
        train_loss = _decay_branch(run, state, branch)
        t_eval = time.perf_counter()
        vl = _valid_point(run, state, at=branch.total_steps)
        eval_s = time.perf_counter() - t_eval
    state.curve.append(_length_point(run, branch, train_loss, vl))
    state.seconds.evals += eval_s
    _check_divergence(run, state, train_loss, vl)
    trunk.restore(run)
    state.seconds.branches += time.perf_counter() - began - eval_s
    stop = state.bad >= s.branch_patience
    if stop:
        state.stop_reason = "early_stop"
    run.log(f"length {branch.total_steps}: steps {run.schedule.branch_start(branch)}-{branch.total_steps} decayed, "
            f"train {train_loss:.4f} valid {vl:.4f} best {state.best_loss:.4f}@{state.best_step}"
            + (f"; {state.bad} worse in a row: stop" if stop else ""))
    window.loss_sum.zero_()
    window.count = 0
    if not stop and time.perf_counter() - window.last_save >= _save_every(s, window):
        t = time.perf_counter()
        _save(run, state)
        window.last_save = time.perf_counter()
        window.save_s = window.last_save - t
    if run.progress is not None:
        run.progress({"step": state.step, "total_steps": run.schedule.total_steps, "train_loss": train_loss,
                      "valid_loss": vl, "best_valid_loss": state.best_loss, "length": branch.total_steps,
                      "elapsed": state.wall + time.perf_counter() - run.t_start})
    now = time.perf_counter()
    window.t0 += now - began  # the log's tokens/s is the trunk's
    window.t_steps = now
    return stop


def _length_point(run: _Run, branch: Branch, train_loss: float, valid_loss: float) -> dict[str, Any]:
    """A length tried, as a learning-curve point: the end of the run of that many steps (decayed; `decayed` = 1),
    its last LR and its decay's training loss. A searched run's trunk is evaluated only at its ends, so these
    are its curve (analysis/dynamics reads them as the loss after S steps)."""
    own = run.schedule.of_branch(branch)
    return curve_point(branch.total_steps, branch.total_steps * own.tokens_per_step,
                       own.lr(branch.total_steps - 1, run.spec.settings.min_lr_ratio), train_loss, valid_loss, decayed=1.0)


def _best_is_trunk(run: _Run, state: RunState) -> bool:
    """Whether the best model is the trunk's model now (then resume.pt holds it once); a length search's best
    is a branch's decayed model, whatever step the trunk is at."""
    return state.best_step == state.step and not run.schedule.lengths


def _evaluate(run: _Run, state: RunState, window: _Window) -> bool:
    """At an evaluation point after `state.step` steps: check the training loss, evaluate held-out where
    it can decide something (`_needs_valid`), update the best model and patience, log, save; True to stop."""
    s, sch, at = run.spec.settings, run.schedule, state.step
    train_loss = float(window.loss_sum) / window.count if window.count else float("nan")
    _account_steps(state, window)
    t_eval = time.perf_counter()
    if window.count and not math.isfinite(train_loss):
        raise RunFailed(f"diverged at step {at}: training loss is {train_loss}", "diverged")
    vl = _valid_point(run, state) if _needs_valid(run, state) else None
    _check_divergence(run, state, train_loss, vl)
    elapsed = time.perf_counter() - window.t0
    tps = (at - window.step0) * sch.tokens_per_step / elapsed if at > window.step0 and elapsed > 0 else 0.0
    stop = run.early_stop and state.bad >= s.patience
    if stop:
        state.stop_reason = "early_stop"
    lr = sch.lr(max(at - 1, 0), s.min_lr_ratio)
    noise = _noise_scale(run, at) if s.noise_scale else {}
    state.curve.append(curve_point(at, at * sch.tokens_per_step, lr, train_loss, vl, **noise))
    stop = stop or (vl is not None and _forecast_stop(run, state))
    shown = f"{vl:.4f}" if vl is not None else "- (evaluated at the end)"
    run.log(f"step {at}/{sch.total_steps} train {train_loss:.4f} valid {shown} best {state.best_loss:.4f}"
            f"@{state.best_step} lr {lr:.3g} tok/s {tps:,.0f}")
    window.loss_sum.zero_()
    window.count = 0
    state.seconds.evals += time.perf_counter() - t_eval
    if at < sch.total_steps and not stop and time.perf_counter() - window.last_save >= _save_every(s, window):
        began = time.perf_counter()
        _save(run, state)
        window.last_save = time.perf_counter()
        window.save_s = window.last_save - began
    if run.progress is not None:
        run.progress({"step": at, "total_steps": sch.total_steps, "train_loss": train_loss, "valid_loss": vl,
                      "best_valid_loss": state.best_loss, "lr": lr, "tokens_per_s": tps,
                      "elapsed": state.wall + time.perf_counter() - run.t_start})
    window.t_steps = time.perf_counter()
    return stop


def _forecast_stop(run: _Run, state: RunState) -> bool:
    """stop_by_forecast, at an evaluation past that fraction of the planned steps (not the last one, which ends
    the run anyway) while a sibling has finished: the own-curve forecast of the best loss, after warm-up, less
    its measured margin (effdata.forecast.stop_check), against the best sibling's. The check is kept in the
    state (the record's `forecast_*`); True, with stop_reason "forecast", when the run cannot win."""
    s, sch = run.spec.settings, run.schedule
    seen = state.step / sch.total_steps
    if not s.stop_by_forecast or run.rivals is None or not s.stop_by_forecast <= seen < 1:
        return False
    bar = run.rivals()
    if bar is None:
        return False
    points = [(p["step"], p["valid_loss"]) for p in state.curve
              if p.get("valid_loss") is not None and p["step"] > sch.warmup_steps]
    check = stop_check([p[0] for p in points], [p[1] for p in points], sch.total_steps, seen, bar)
    if check is None:
        return False
    state.forecast = check.to_dict()
    run.log(f"forecast best {check.forecast_loss:.4f} at step {sch.total_steps} from {100 * seen:.0f} %, less "
            f"{100 * check.forecast_margin:.0f} %: {check.forecast_loss * (1 - check.forecast_margin):.4f} against the "
            f"best finished sibling's {bar:.4f}" + ("; stop" if check.stop else ""))
    if check.stop:
        state.stop_reason = "forecast"
    return check.stop


def _forecast_metrics(state: RunState) -> dict[str, float]:
    """The last stop_by_forecast check as `forecast_*` columns (none when no check was made)."""
    return {k: v for k, v in state.forecast.items() if k != "stop"}


def _noise_scale(run: _Run, at: int) -> dict[str, float]:
    """The gradient noise scale on the batches of the next `noise_scale` steps (training/noise.py): read, not trained."""
    windows = [run.batches.get(at + j) for j in range(run.spec.settings.noise_scale)]
    return measure_noise(run.stepper.eager_loss, run.stepper.params, windows, run.dev).as_point()


def _save_every(s, window: _Window) -> float:
    """Seconds between resume.pt writes: `resume_every_s`, and at least 19 times the last write, so that
    writing takes at most 5% of a run (a g85m resume.pt is ~1.2 GB: seconds to write, more on a shared
    filesystem). 0 writes at every evaluation."""
    return 0.0 if s.resume_every_s == 0 else max(s.resume_every_s, 19 * window.save_s)


def _needs_valid(run: _Run, state: RunState) -> bool:
    """Whether this evaluation point needs the held-out loss: always when early stopping picks the best
    step among them; a run trained to its budget (pretraining with pretrain_stop_on="budget") keeps its
    last model whatever the loss on the way, so only its first point (the initial loss, the divergence
    limit) and its last are evaluated: 2 instead of evals_per_run + 1 passes over the valid tokens."""
    return run.early_stop or not state.evals or state.step >= run.schedule.total_steps


def _valid_point(run: _Run, state: RunState, at: int | None = None) -> float:
    """The held-out loss of the model now, a run of `at` steps (default: the trunk's step); the best model
    and patience updated with it."""
    at = state.step if at is None else at
    vl = run.valid_loss()
    if state.init_loss is None:
        state.init_loss = vl
    state.evals.append([at, round(vl, 6)])
    if vl < state.best_loss or not run.early_stop:
        state.best_loss, state.best_step, state.bad = vl, at, 0
        state.best_state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    else:
        state.bad += 1
    return vl


def _check_divergence(run: _Run, state: RunState, train_loss: float, valid_loss: float | None) -> None:
    """Divergence is judged on the loss of what the run trains on: a pretraining run's loss on the
    target may rightly rise (it learns another distribution), and that is not a divergence."""
    limit = run.spec.settings.diverge_factor * max(state.init_loss, math.log(run.data.vocab_size))
    pretrain = run.spec.mode == "pretrain"
    watched, name = (train_loss, "training loss") if pretrain else (valid_loss, "valid loss")
    if (valid_loss is not None and not math.isfinite(valid_loss)) or (
            watched is not None and math.isfinite(watched) and watched > limit):
        raise RunFailed(f"diverged at step {state.step}: {name} {watched:.4g} (limit {limit:.4g}, "
                        f"initial {state.init_loss:.4g})", "diverged")


def _finish(run: _Run, state: RunState) -> dict[str, Any]:
    """Test loss of the best model, the pretraining checkpoint, and the run's metrics."""
    spec, data, s = run.spec, run.data, run.spec.settings
    n_ctx = spec.shape.n_ctx
    t = time.perf_counter()
    run.model.load_state_dict(state.best_state)
    test_loss = run.loss_on(data.test, s.test_tokens)
    if not math.isfinite(test_loss):
        raise RunFailed(f"test loss of the best model is {test_loss}")
    extra: dict[str, Any] = {}
    if data.pretrain_valid is not None and len(data.pretrain_valid) > n_ctx:
        extra["pretrain_valid_loss"] = run.loss_on(data.pretrain_valid, s.eval_tokens)
    extra["recompiles"] = _recompiles(run)
    state.seconds.test += time.perf_counter() - t
    if len(state.checkpoints) != len(run.schedule.branches):
        raise RunFailed(f"{len(state.checkpoints)} of {len(run.schedule.branches)} mid-run checkpoints were made")
    if spec.mode == "pretrain":
        t = time.perf_counter()
        ckpt = run.run_dir / FINAL_CHECKPOINT
        save_checkpoint(run.model, ckpt, data.tokenizer_dir)
        extra["checkpoint"] = str(ckpt)
        state.seconds.checkpoint += time.perf_counter() - t
    (run.run_dir / RESUME_FILE).unlink(missing_ok=True)
    metrics = {**_metrics(run, state, test_loss), **extra}
    run.log(f"done: best valid {state.best_loss:.4f} at step {state.best_step}, test {test_loss:.4f}, "
            f"{state.step} steps, {metrics['wall_time']:.1f}s ({_time_line(metrics)})")
    return metrics


def _recompiles(run: _Run) -> int:
    """torch.compile graphs built after the first compiled step: 0 unless something (evaluation, a new
    batch shape) made the step recompile, which costs seconds each and is logged."""
    if run.graphs is None:
        return 0
    extra = steptimes.compiled_graphs() - run.graphs
    if extra:
        run.log(f"warning: {extra} torch.compile graph(s) built after the first step (recompiles)")
    return extra


def _time_metrics(seconds: Seconds, wall: float, tokens_seen: int) -> dict[str, float]:
    """`time_<phase>` seconds, `time_other` (the rest of the wall time) and the steps' own token rate."""
    times = {f"time_{f.name}": getattr(seconds, f.name) for f in fields(Seconds)}
    times["time_other"] = max(0.0, wall - sum(times.values()))
    times["step_tokens_per_s"] = tokens_seen / seconds.steps if seconds.steps > 0 else 0.0
    return times


def _time_line(m: dict[str, Any]) -> str:
    parts = [f"{f.name} {m['time_' + f.name]:.1f}s" for f in fields(Seconds)]
    return ", ".join(parts) + f"; steps at {m['step_tokens_per_s']:,.0f} tok/s"


def _metrics(run: _Run, state: RunState, test_loss: float) -> dict[str, Any]:
    spec, data, sch, shape = run.spec, run.data, run.schedule, run.spec.shape
    tokens_seen = state.step * sch.tokens_per_step
    f_full, f_6n = shape.flops_per_token(int(data.vocab_size))
    wall = state.wall + time.perf_counter() - run.t_start
    metrics: dict[str, Any] = {
        "mode": spec.mode, "size": spec.size, "n_params": run.n_params, "n_params_total": total_params(run.model),
        "n_layer": shape.n_layer, "d_model": shape.d_model, "n_head": shape.n_head, "n_ctx": shape.n_ctx,
        "vocab_size": int(data.vocab_size), "seed": spec.seed, "corpus": spec.corpus, "target": spec.target,
        "data_chars": int(data.train_chars), "data_tokens": int(len(data.train)),
        "valid_loss": state.best_loss, "loss": test_loss, "best_step": state.best_step, "steps": state.step,
        "total_steps": sch.total_steps, "stop_reason": state.stop_reason or sch.limit,
        "best_is_last": bool(state.evals) and state.evals[-1][0] == state.best_step,
        "length_search": spec.settings.length_search if spec.mode != "pretrain" else "off",
        "epochs": tokens_seen / len(data.train), "tokens_seen": tokens_seen,
        "chars_seen": tokens_seen * (data.train_chars / len(data.train)),
        "best_tokens_seen": state.best_step * sch.tokens_per_step,
        "flops": f_full * tokens_seen, "flops_6N": f_6n * tokens_seen,
        "wall_time": wall, "tokens_per_s": tokens_seen / wall if wall > 0 else 0.0,
        "device": str(run.dev), "threads": run.threads, "dtype": run.precision, "attention": run.attention,
        "compiled": run.stepper.compiled, "peak_lr": sch.peak_lr, "warmup_steps": sch.warmup_steps,
        "eval_interval": sch.eval_interval, "batch_size": spec.settings.batch_size, "init_loss": state.init_loss,
        "lr_scale": spec.settings.lr_scale, "lr_rule": spec.settings.lr_rule, "schedule": sch.kind,
        "evals": state.evals, "curve": state.curve, **_time_metrics(state.seconds, wall, tokens_seen),
        "resume_writes": state.resume.count, "resume_bytes": state.resume.max_bytes,
        "resume_write_s": state.resume.max_seconds, **_forecast_metrics(state),
    }
    if spec.mode == "finetune":
        metrics["init_from"] = str(spec.init_from)
    if sch.lengths:
        done = {at for at, _ in state.evals}
        steps = sum(b.total_steps - sch.branch_start(b) for b in sch.lengths if b.total_steps in done)
        metrics.update(lengths_tried=sum(b.total_steps in done for b in sch.lengths) + (state.step == sch.total_steps),
                       branch_steps=steps, branch_tokens_seen=steps * sch.tokens_per_step,
                       branch_flops=f_full * steps * sch.tokens_per_step)
    if state.checkpoints:
        metrics["checkpoints"] = state.checkpoints
        metrics["branch_steps"] = sch.branch_steps
        metrics["branch_tokens_seen"] = sch.branch_steps * sch.tokens_per_step
        metrics["branch_flops"] = f_full * metrics["branch_tokens_seen"]   # beside `flops`, the trunk's
    return metrics
