"""A stand-in for `effdata.runner.execute_run` that SLURM jobs in tests/test_slurm.py call (no torch).

It keeps the real contract: takes the run's lock, skips a done run, writes the record atomically
through the real Store, and fails a run whose dependencies are not done. Every execution appends a
line to `runs/<id>/executions` so tests can tell a run done twice. FAKE_RUN_SECONDS (inherited by
the job from the submitting environment) sets how long a run takes.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from effdata.runner import Store, run_lock


def execute_run(out_dir, run_id, threads=None, home=None, progress=None) -> str:
    store = Store(Path(out_dir))
    run = store.read_plan(run_id)
    run_dir = store.run_dir(run_id)
    with run_lock(run_dir):
        if store.is_done(run_id):
            return "skipped"
        with open(run_dir / "executions", "a") as handle:
            handle.write(f"{os.environ.get('SLURM_JOB_ID', '-')} {time.time():.3f}\n")
        missing = [dep for dep in run.depends_on if not store.is_done(dep)]
        if missing:
            store.write_record(run, "failed", error=f"dependency not done: {missing}")
            return "failed"
        time.sleep(float(os.environ.get("FAKE_RUN_SECONDS", "1")))
        store.write_record(run, "ok", metrics={"loss": 1.0, "threads": threads,
                                               "job": os.environ.get("SLURM_JOB_ID")})
        return "ok"
