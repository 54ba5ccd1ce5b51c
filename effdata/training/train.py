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
* resume: the `RunState` is written to `run_dir/resume.pt` at evaluations (at most every
  `resume_every_s` seconds, and so that writing takes at most 5% of the run) and deleted at the end; a run that finds a matching one continues from it
  and ends with the same numbers.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from effdata.spec import RunSpec
from effdata.training import device as devmod
from effdata.training.checkpoint import load_pretrained, load_resume, save_checkpoint, save_resume, tokenizer_eos
from effdata.training.evaluate import evaluate
from effdata.training.model import build_model, non_embedding_params, total_params
from effdata.training.rundata import Batches, RunData, RunFailed
from effdata.training.schedule import Schedule, schedule_for
from effdata.training.step import Stepper, make_optimizer, should_compile

RESUME_FILE = "resume.pt"


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
    stopped: str = "budget"               # "budget" or "early"


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
    progress: Callable[[dict], None] | None
    log: RunLog
    t_start: float = field(default_factory=time.perf_counter)

    @property
    def early_stop(self) -> bool:
        return self.spec.mode != "pretrain" or self.spec.settings.pretrain_stop_on == "target"

    def valid_loss(self) -> float:
        s = self.spec.settings
        return evaluate(self.model, self.data.valid, self.spec.shape.n_ctx, s.eval_tokens, s.eval_batch_size,
                        self.dev)


@dataclass
class _Window:
    """Training loss summed since the last evaluation, and the clock of this process's steps."""

    loss_sum: torch.Tensor
    count: int
    t0: float
    step0: int
    last_save: float
    save_s: float = 0.0                   # how long the last resume.pt took to write


def train_run(spec: RunSpec, data: RunData, run_dir: Path | str,
              progress: Callable[[dict], None] | None = None, *,
              threads: int | None = None, device: str | None = None) -> dict[str, Any]:
    """Execute one run; return its flat, JSON-serialisable metrics. Raises RunFailed(reason).

    `threads`: torch CPU threads (default: every available core; the runner passes cores/workers).
    `device`: "cpu"/"cuda" (default: CUDA when present). `progress(dict)` is called at each evaluation
    with step, total_steps, train_loss, valid_loss, best_valid_loss, lr, tokens_per_s, elapsed.
    """
    run = _setup(spec, data, Path(run_dir), progress, threads, device)
    state = _start_or_resume(run)
    _loop(run, state)
    return _finish(run, state)


def _setup(spec: RunSpec, data: RunData, run_dir: Path, progress, threads, device) -> _Run:
    t_start = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    dev = devmod.pick_device(device)
    devmod.make_deterministic(dev)
    n_threads = devmod.set_threads(threads)
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
    compiled = should_compile(s, dev, amp_dtype, shape, schedule.total_steps)
    optimizer = make_optimizer(model, s, schedule.peak_lr, dev)
    log = RunLog(run_dir / "log.txt")
    stepper = Stepper(model, optimizer, s, dev, amp_dtype, compiled, log, head_dtype=head_dtype)
    return _Run(spec=spec, data=data, run_dir=run_dir, dev=dev, threads=n_threads, model=model,
                optimizer=optimizer, stepper=stepper, batches=Batches(data.train, shape.n_ctx, s.batch_size, spec.seed),
                schedule=schedule, n_params=n_params, precision=devmod.precision_name(amp_dtype, head_dtype),
                attention=attention, progress=progress, log=log, t_start=t_start)


def resume_key(spec: RunSpec, data: RunData) -> str:
    """What a saved state must match to be resumed: the spec and the sizes of the data."""
    return json.dumps({"spec": spec.to_dict(), "train": int(len(data.train)), "valid": int(len(data.valid)),
                       "test": int(len(data.test)), "vocab": int(data.vocab_size)}, sort_keys=True, default=str)


def _start_or_resume(run: _Run) -> RunState:
    state = RunState(key=resume_key(run.spec, run.data))
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
        run.log(f"ignoring {path.name}: it belongs to a different spec or data")
        return state
    run.model.load_state_dict(saved["model"])
    run.optimizer.load_state_dict(saved["optimizer"])
    state = RunState(**{f.name: saved[f.name] for f in fields(RunState)})
    if state.best_state is None and state.best_step == state.step:
        state.best_state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    run.log(f"resumed at step {state.step} (best {state.best_loss:.4f} at step {state.best_step})")
    return state


def _save(run: _Run, state: RunState) -> None:
    payload = {f.name: getattr(state, f.name) for f in fields(RunState)}
    if state.best_step == state.step:  # the best model is the model: saved once (a quarter of the file)
        payload["best_state"] = None
    payload["wall"] = state.wall + time.perf_counter() - run.t_start
    payload.update(model=run.model.state_dict(), optimizer=run.optimizer.state_dict())
    save_resume(run.run_dir / RESUME_FILE, payload)


def _loop(run: _Run, state: RunState) -> None:
    sch, s = run.schedule, run.spec.settings
    now = time.perf_counter()
    window = _Window(torch.zeros((), dtype=torch.float32, device=run.dev), 0, now, state.step, now)
    if state.step == 0 and not state.evals:
        _evaluate(run, state, window)
    while state.step < sch.total_steps:
        window.loss_sum += run.stepper(run.batches.get(state.step), sch.lr(state.step, s.min_lr_ratio))
        window.count += 1
        state.step += 1
        if state.step % sch.eval_interval == 0 or state.step == sch.total_steps:
            if _evaluate(run, state, window):
                break


def _evaluate(run: _Run, state: RunState, window: _Window) -> bool:
    """Evaluate after `state.step` steps, update the best model and patience; True to stop."""
    s, sch, at = run.spec.settings, run.schedule, state.step
    train_loss = float(window.loss_sum) / window.count if window.count else float("nan")
    if window.count and not math.isfinite(train_loss):
        raise RunFailed(f"diverged at step {at}: training loss is {train_loss}")
    vl = run.valid_loss()
    if state.init_loss is None:
        state.init_loss = vl
    _check_divergence(run, state, train_loss, vl)
    state.evals.append([at, round(vl, 6)])
    if vl < state.best_loss or not run.early_stop:
        state.best_loss, state.best_step, state.bad = vl, at, 0
        state.best_state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    else:
        state.bad += 1
    elapsed = time.perf_counter() - window.t0
    tps = (at - window.step0) * sch.tokens_per_step / elapsed if at > window.step0 and elapsed > 0 else 0.0
    stop = run.early_stop and state.bad >= s.patience
    if stop:
        state.stopped = "early"
    lr = sch.lr(max(at - 1, 0), s.min_lr_ratio)
    run.log(f"step {at}/{sch.total_steps} train {train_loss:.4f} valid {vl:.4f} best {state.best_loss:.4f}"
            f"@{state.best_step} lr {lr:.3g} tok/s {tps:,.0f}")
    window.loss_sum.zero_()
    window.count = 0
    if at < sch.total_steps and not stop and time.perf_counter() - window.last_save >= _save_every(s, window):
        began = time.perf_counter()
        _save(run, state)
        window.last_save = time.perf_counter()
        window.save_s = window.last_save - began
    if run.progress is not None:
        run.progress({"step": at, "total_steps": sch.total_steps, "train_loss": train_loss, "valid_loss": vl,
                      "best_valid_loss": state.best_loss, "lr": lr, "tokens_per_s": tps,
                      "elapsed": state.wall + time.perf_counter() - run.t_start})
    return stop


def _save_every(s, window: _Window) -> float:
    """Seconds between resume.pt writes: `resume_every_s`, and at least 19 times the last write, so that
    writing takes at most 5% of a run (a g85m resume.pt is ~1.2 GB: seconds to write, more on a shared
    filesystem). 0 writes at every evaluation."""
    return 0.0 if s.resume_every_s == 0 else max(s.resume_every_s, 19 * window.save_s)


def _check_divergence(run: _Run, state: RunState, train_loss: float, valid_loss: float) -> None:
    """Divergence is judged on the loss of what the run trains on: a pretraining run's loss on the
    target may rightly rise (it learns another distribution), and that is not a divergence."""
    limit = run.spec.settings.diverge_factor * max(state.init_loss, math.log(run.data.vocab_size))
    pretrain = run.spec.mode == "pretrain"
    watched, name = (train_loss, "training loss") if pretrain else (valid_loss, "valid loss")
    if not math.isfinite(valid_loss) or (math.isfinite(watched) and watched > limit):
        raise RunFailed(f"diverged at step {state.step}: {name} {watched:.4g} (limit {limit:.4g}, "
                        f"initial {state.init_loss:.4g})")


def _finish(run: _Run, state: RunState) -> dict[str, Any]:
    """Test loss of the best model, the pretraining checkpoint, and the run's metrics."""
    spec, data, s = run.spec, run.data, run.spec.settings
    n_ctx = spec.shape.n_ctx
    run.model.load_state_dict(state.best_state)
    test_loss = evaluate(run.model, data.test, n_ctx, s.test_tokens, s.eval_batch_size, run.dev)
    if not math.isfinite(test_loss):
        raise RunFailed(f"test loss of the best model is {test_loss}")
    metrics = _metrics(run, state, test_loss)
    if data.pretrain_valid is not None and len(data.pretrain_valid) > n_ctx:
        metrics["pretrain_valid_loss"] = evaluate(run.model, data.pretrain_valid, n_ctx, s.eval_tokens,
                                                  s.eval_batch_size, run.dev)
    if spec.mode == "pretrain":
        ckpt = run.run_dir / "checkpoint"
        save_checkpoint(run.model, ckpt, data.tokenizer_dir)
        metrics["checkpoint"] = str(ckpt)
    run.log(f"done: best valid {state.best_loss:.4f} at step {state.best_step}, test {test_loss:.4f}, "
            f"{state.step} steps, {metrics['wall_time']:.1f}s")
    (run.run_dir / RESUME_FILE).unlink(missing_ok=True)
    return metrics


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
        "total_steps": sch.total_steps, "stopped": state.stopped,
        "epochs": tokens_seen / len(data.train), "tokens_seen": tokens_seen,
        "chars_seen": tokens_seen * (data.train_chars / len(data.train)),
        "best_tokens_seen": state.best_step * sch.tokens_per_step,
        "flops": f_full * tokens_seen, "flops_6N": f_6n * tokens_seen,
        "wall_time": wall, "tokens_per_s": tokens_seen / wall if wall > 0 else 0.0,
        "device": str(run.dev), "threads": run.threads, "dtype": run.precision, "attention": run.attention,
        "compiled": run.stepper.compiled, "peak_lr": sch.peak_lr, "warmup_steps": sch.warmup_steps,
        "eval_interval": sch.eval_interval, "batch_size": spec.settings.batch_size, "init_loss": state.init_loss,
        "evals": state.evals,
    }
    if spec.mode == "finetune":
        metrics["init_from"] = str(spec.init_from)
    return metrics
