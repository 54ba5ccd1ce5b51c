"""The GPU paths, checked on a machine without a GPU: device errors, one GPU per local worker (with a fake
device list), the attention call of a compiled step, the compile fallback, and the precision choices.

What only a GPU can check is listed in docs/notes/issue-16.md.
"""
from __future__ import annotations

import functools
import os
import queue
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from effdata.run import LocalPlan, local_plan, main
from effdata.spec import RunSpec, StudyRun, TrainSettings, get_shape
from effdata.study.runner import LocalExecutor, WorkerConfig, cuda_broken, serve
from effdata.study.store import Store
from effdata.training import device as devmod
from effdata.training.evaluate import evaluate
from effdata.training.model import build_model
from effdata.training.step import Stepper, make_loss_fn, make_optimizer
from studyfiles import write_study

TESTS = Path(__file__).resolve().parent
FAKE = "slurm_fake_run:execute_run"
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")


# ----------------------------------------------------------------------------------------------
# The device setting

@no_cuda
@pytest.mark.parametrize("where", ["flag", "study"])
def test_device_cuda_without_cuda_is_one_line_exit_2_and_nothing_written(tmp_path, tiny_corpora, capsys, where):
    study = write_study(tmp_path / "s.toml", tiny_corpora, **({"device": "cuda"} if where == "study" else {}))
    out, home = tmp_path / "out", tmp_path / "home"
    args = ["--study", str(study), "--out", str(out), "--home", str(home)]
    assert main(args + (["--device", "cuda"] if where == "flag" else [])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("effdata.run: device cuda: CUDA is not available on this machine ("), err
    assert not out.exists() and not home.exists()


@no_cuda
def test_a_run_asked_to_use_cuda_without_it_fails_loudly():
    with pytest.raises(devmod.DeviceError, match="'cuda' asked for but CUDA is not available"):
        devmod.pick_device("cuda")
    assert devmod.pick_device("auto").type == "cpu"


def test_local_plan_gives_one_worker_per_gpu(monkeypatch):
    monkeypatch.setattr(devmod, "cuda_missing", lambda: None)
    monkeypatch.setattr(devmod, "visible_gpus", lambda: ["3", "5"])
    monkeypatch.setattr(devmod, "available_cores", lambda: 8)
    assert local_plan("auto") == LocalPlan("cuda", workers=2, threads=4, gpus=("3", "5"))
    assert local_plan("cuda", workers=4) == LocalPlan("cuda", workers=4, threads=2, gpus=("3", "5"))
    assert local_plan("cpu") == LocalPlan("cpu", workers=8, threads=1)
    assert local_plan("cpu", workers=1) == LocalPlan("cpu", workers=1, threads=8)
    assert local_plan("cpu", workers=1, threads=1) == LocalPlan("cpu", workers=1, threads=1)   # --threads


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert devmod.visible_gpus() == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aa,7")
    assert devmod.visible_gpus() == ["GPU-aa", "7"]


# ----------------------------------------------------------------------------------------------
# Local workers and their GPUs

@pytest.fixture
def fake_runs(monkeypatch, tmp_path):
    """A store with planned runs that workers execute with the torch-free stand-in."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("FAKE_RUN_SECONDS", "0.5")
    store = Store(tmp_path / "out")
    runs = [StudyRun(label=f"scratch-{name}", spec=RunSpec("scratch", "l1d16h2c32", 0, name), pretrain="none")
            for name in ("a", "b", "c")]
    for run in runs:
        store.write_run(run)
    return store, [run.run_id for run in runs]


def _until(predicate, executor, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    ended = []
    while time.monotonic() < deadline:
        ended += executor.poll()
        if predicate(ended):
            return ended
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_each_worker_sees_its_own_gpu_and_a_dead_worker_is_replaced_on_the_same_one(fake_runs):
    store, run_ids = fake_runs
    executor = LocalExecutor(store.out_dir, workers=2, threads_per_worker=1, device="cuda", gpus=["3", "5"],
                             target=FAKE)
    try:
        _until(lambda _: len(executor.worker_gpus) == 2, executor, "two workers")
        assert sorted(executor.worker_gpus.values()) == ["3", "5"]
        for run_id in run_ids:
            executor.submit(run_id)
        _until(lambda ended: len(ended) == 3, executor, "three runs")
        for run_id in run_ids:
            metrics = store.read_record(run_id)["metrics"]
            assert metrics["device"] == "cuda" and metrics["gpu"] == executor.worker_gpus[metrics["pid"]]
        dead = next(pid for pid, gpu in executor.worker_gpus.items() if gpu == "5")
        os.kill(dead, signal.SIGKILL)
        _until(lambda _: dead not in executor.worker_gpus and len(executor.worker_gpus) == 2, executor,
               "a replacement worker")
        assert sorted(executor.worker_gpus.values()) == ["3", "5"]
    finally:
        executor.shutdown()


def test_a_worker_whose_cuda_context_is_lost_takes_no_further_run(fake_runs):
    store, run_ids = fake_runs
    tasks, events = queue.Queue(), queue.Queue()
    for run_id in run_ids[:2]:
        tasks.put(run_id)
    serve(WorkerConfig(str(store.out_dir), threads=1, device="cuda", target=FAKE), tasks, events, broken=lambda: True)
    seen = []
    while not events.empty():
        kind, run_id, _ = events.get_nowait()
        if kind in ("start", "end"):
            seen.append((kind, run_id))
    assert seen == [("start", run_ids[0]), ("end", run_ids[0])]
    assert tasks.get_nowait() == run_ids[1]  # left for a worker with a working GPU
    assert store.is_done(run_ids[0])
    assert not cuda_broken()  # this process never initialised CUDA


# ----------------------------------------------------------------------------------------------
# The training step on a GPU, traced on the CPU

@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    model = build_model(get_shape("l2d32h2c32"), 64)
    model.config._attn_implementation = "sdpa"  # what CUDA uses (on CPU, bf16 runs use "eager")
    windows = torch.randint(0, 64, (4, 33))
    torch._dynamo.reset()
    yield model, windows
    torch._dynamo.reset()


def _sdpa_calls(monkeypatch) -> list:
    """torch.compile, everywhere, with a backend that records the SDPA calls of every graph it is given."""
    calls = []

    def backend(graph, example_inputs):
        calls.extend(node for node in graph.graph.nodes
                     if node.op == "call_function" and node.target is F.scaled_dot_product_attention)
        return graph.forward

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=backend))
    return calls


def test_compiled_blocks_keep_attention_causal_with_no_mask(tiny_model, monkeypatch):
    model, windows = tiny_model
    calls = _sdpa_calls(monkeypatch)
    loss = make_loss_fn(model, None, torch.device("cpu"), compile=True)(windows)
    loss.backward()
    assert calls, "no SDPA call was compiled"
    for node in calls:
        mask = node.kwargs.get("attn_mask", node.args[3] if len(node.args) > 3 else None)
        assert mask is None and node.kwargs.get("is_causal") is True, node.format_node()
    eager = make_loss_fn(model, None, torch.device("cpu"))(windows)
    assert loss.item() == pytest.approx(eager.item(), rel=1e-6)
    assert all(".h.0._orig_mod" not in key for key in model.state_dict())  # the model itself stays as it was


def test_the_attention_kernel_a_step_runs_is_read_not_assumed(tiny_model):
    """What the bench reports (device.sdpa_kernels): the kernel SDPA dispatched to, from the profiler. On
    this CPU the flash kernel runs for fp32; forced to the math fallback it reads math; eager attention none."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model, windows = tiny_model
    step = make_loss_fn(model, None, torch.device("cpu"))
    assert devmod.sdpa_kernels(lambda: step(windows).backward()) == ["flash"]
    with sdpa_kernel(SDPBackend.MATH):
        assert devmod.sdpa_kernels(lambda: step(windows).backward()) == ["math"]
    model.config._attn_implementation = "eager"
    assert devmod.sdpa_kernels(lambda: step(windows).backward()) == []


def test_a_compile_error_in_the_backward_falls_back_to_eager(tiny_model, monkeypatch):
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    def broken_backward(graph, example_inputs):
        raise RuntimeError("backward compiler broke")

    backend = aot_autograd(fw_compiler=lambda graph, example_inputs: make_boxed_func(graph.forward),
                           bw_compiler=broken_backward)
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=backend))
    model, windows = tiny_model
    cpu = torch.device("cpu")
    loss = make_loss_fn(model, None, cpu, compile=True)(windows)  # the forward compiles and runs ...
    with pytest.raises(Exception, match="backward compiler broke"):
        loss.backward()                                             # ... the backward compiles only now
    model.zero_grad(set_to_none=True)
    settings = TrainSettings(precision="fp32", compile="on")
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    lines = []
    stepper = Stepper(model, make_optimizer(model, settings, 1e-3, cpu), settings, cpu, None, True, lines.append)
    stepper(windows, 1e-3)
    assert not stepper.compiled and any("falling back to eager" in line for line in lines)
    eager_model = build_model(get_shape("l2d32h2c32"), 64)
    eager_model.load_state_dict(reference)
    eager = Stepper(eager_model, make_optimizer(eager_model, settings, 1e-3, cpu), settings, cpu, None, False)
    eager(windows, 1e-3)
    for key, value in eager_model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key  # the step was taken once, as eager takes it


# ----------------------------------------------------------------------------------------------
# Precision and determinism

def test_auto_precision_stays_fp32_on_a_gpu_that_only_emulates_bf16(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert devmod.precision_plan("auto", cuda, 768) == (None, None)       # a V100 or T4
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert devmod.precision_plan("auto", cuda, 768) == (torch.bfloat16, torch.bfloat16)  # an A100


def test_evaluation_runs_with_tf32_off_and_leaves_training_as_it_was(tiny_model):
    model, _ = tiny_model
    seen = []
    model.transformer.register_forward_pre_hook(lambda module, args: seen.append(torch.backends.cuda.matmul.allow_tf32))
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        tokens = np.random.default_rng(0).integers(0, 64, 400).astype(np.uint16)
        evaluate(model, tokens, 32, 400, 4, torch.device("cpu"))
        assert seen and not any(seen)
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def test_cuda_runs_use_deterministic_algorithms(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        devmod.make_deterministic(torch.device("cpu"))
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
        devmod.make_deterministic(torch.device("cuda"))
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2:]

