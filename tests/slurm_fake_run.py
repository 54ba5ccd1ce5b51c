"""A stand-in for `effdata.study.runner.execute_run` that SLURM jobs in tests/test_slurm.py and local
workers in tests/test_gpu_smoke.py call (no torch).

It keeps the real contract (`execute_with`): takes the run's lock, skips a done run, fails a run whose
dependencies are not done, leaves a pretraining's checkpoint (an empty config.json), and writes the record
atomically through the real Store. Every execution appends a
line to `runs/<id>/executions` so tests can tell a run done twice. FAKE_RUN_SECONDS (inherited by
the job from the submitting environment) sets how long a run takes. Its metrics say where it ran: the
device it was given, and the CUDA_VISIBLE_DEVICES and pid of the process that ran it.
"""
from __future__ import annotations

import os
import time

from effdata.study.runner import execute_with


def execute_run(out_dir, run_id, threads=None, home=None, progress=None, device=None) -> str:
    def fake_training(spec, run_dir) -> dict:
        with open(run_dir / "executions", "a") as handle:
            handle.write(f"{os.environ.get('SLURM_JOB_ID', '-')} {time.time():.3f}\n")
        time.sleep(float(os.environ.get("FAKE_RUN_SECONDS", "1")))
        if spec.mode == "pretrain":   # its model, as a pretraining leaves it for its fine-tunes (the runner checks)
            (run_dir / "checkpoint").mkdir(exist_ok=True)
            (run_dir / "checkpoint" / "config.json").write_text("{}")
        return {"loss": 1.0, "threads": threads, "job": os.environ.get("SLURM_JOB_ID"), "device": device,
                "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}

    return execute_with(out_dir, run_id, fake_training)
