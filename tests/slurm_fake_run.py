"""A stand-in for `effdata.runner.execute_run` that SLURM jobs in tests/test_slurm.py call (no torch).

It keeps the real contract: takes the run's lock, skips a done run, writes the record atomically
through the real Store, and fails a run whose dependencies are not done. Every execution appends a
line to `runs/<id>/executions` so tests can tell a run done twice. FAKE_RUN_SECONDS (inherited by
the job from the submitting environment) sets how long a run takes.
"""
from __future__ import annotations

import os
import time

from effdata.runner import execute_with


def execute_run(out_dir, run_id, threads=None, home=None, progress=None) -> str:
    def fake_training(store, run, run_dir) -> dict:
        with open(run_dir / "executions", "a") as handle:
            handle.write(f"{os.environ.get('SLURM_JOB_ID', '-')} {time.time():.3f}\n")
        missing = [dep for dep in run.depends_on if not store.is_done(dep)]
        if missing:
            raise RuntimeError(f"dependency not done: {missing}")
        time.sleep(float(os.environ.get("FAKE_RUN_SECONDS", "1")))
        return {"loss": 1.0, "threads": threads, "job": os.environ.get("SLURM_JOB_ID")}

    return execute_with(out_dir, run_id, fake_training)
