"""Run a study's runs as SLURM jobs through submitit: `python -m effdata.run ... --executor slurm`.

Each run is one SLURM job that calls `effdata.study.runner.execute_run(out_dir, run_id)` on a node; the
runner's scheduler (`effdata.study.runner.schedule`) decides when (a fine-tune after its pretraining), and
this module only submits jobs and watches their states:

* job states come from `squeue --states=all` (finished jobs stay listed for the cluster's MinJobAge),
  then `sacct` if the cluster keeps accounting, then the job's submitit result file. submitit's own
  state tracking is not used: it needs `sacct`, which many small clusters (and the test SLURM) lack.
* a job that ends in any state but COMPLETED (TIMEOUT, PREEMPTED, NODE_FAIL, CANCELLED, FAILED,
  OUT_OF_MEMORY, ...) is reported to the scheduler as `"slurm: <STATE> ..."`; the scheduler writes a
  failed record with that reason, and the next run of the same command resubmits the run, which
  resumes from its `resume.pt`.
* `<out>/runs/<run_id>/slurm_job.json` holds the job submitted for a run. A job still queued or
  running from an earlier invocation (the command was interrupted, the login node rebooted) is
  waited for, never submitted twice. Stopping the command leaves submitted jobs alone.
* SLURM unreachable (no `sbatch`, `slurmctld` down, unknown partition) stops the command with one
  clear message before anything is submitted.
* A study whose device is `cuda` asks for one GPU per job (`--gpus-per-run`, 0 or 1), and each job
  passes the device on to `execute_run`, so a job on a node without a GPU fails instead of training on
  its CPU.

The study directory, the effdata cache (EFFDATA_HOME / --home) and the Python environment must be
on a filesystem the nodes share: jobs read their spec and write their record there.

Why one module of ~500 lines: it is one executor and the SLURM queries its protocol needs (squeue,
sacct, job adoption, settling); split apart, one protocol would be read across files.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effdata.paths import atomic_write_json
from effdata.study.study import StudyError

JOB_FILE = "slurm_job.json"
DEFAULT_TARGET = "effdata.study.runner:execute_run"
DEFAULT_TIME = "4:00:00"
DEFAULT_MAX_PARALLEL = 64
# States in which a job may still run (it is waited for, never submitted again).
ALIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
         "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "POWER_UP_NODE"}
COMMAND_TIMEOUT_S = 60


class SlurmError(StudyError):
    """SLURM cannot be used (not installed, controller unreachable, submission refused)."""


# ----------------------------------------------------------------------------------------------
# The command line

def add_slurm_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `python -m effdata.run` that choose and configure the executor."""
    group = parser.add_argument_group("running on a SLURM cluster (--executor slurm)")
    group.add_argument("--executor", choices=("local", "slurm"), default="local",
                       help="where runs execute: worker processes on this machine (default), or one SLURM "
                            "job per run submitted through submitit")
    group.add_argument("--partition", help="SLURM partition (default: the cluster's default partition)")
    group.add_argument("--gpus-per-run", type=int, default=None, metavar="G",
                       help="GPUs per job, 0 or 1 (a run trains on one GPU); default: 1 when the study's device "
                            "is cuda, else 0")
    group.add_argument("--cpus-per-run", type=int, default=1, metavar="C",
                       help="CPUs per job; also the run's torch threads (default: 1)")
    group.add_argument("--time", default=DEFAULT_TIME, metavar="T",
                       help="time limit per job, SLURM syntax: minutes, HH:MM:SS or D-HH:MM (default: "
                            "%(default)s); a run that hits it resumes when the command is run again")
    group.add_argument("--max-parallel", type=int, default=DEFAULT_MAX_PARALLEL, metavar="M",
                       help="at most M jobs queued or running at once (default: %(default)s)")
    group.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                       help="any other sbatch option, repeatable: --slurm-option account=myproj "
                            "--slurm-option mem=16G --slurm-option qos=low")


def slurm_executor(args: argparse.Namespace, out_dir: Path, device: str = "auto") -> "SlurmExecutor":
    """The executor `effdata.run` schedules with when `--executor slurm` (checks SLURM first)."""
    if args.max_parallel < 1:
        raise SlurmError("--max-parallel must be at least 1")
    return SlurmExecutor(
        out_dir, partition=args.partition, gpus_per_run=gpus_per_run(args.gpus_per_run, device),
        cpus_per_run=args.cpus_per_run, time=args.time, max_parallel=args.max_parallel,
        home=getattr(args, "home", None), options=parse_options(args.slurm_option), device=device)


def gpus_per_run(asked: int | None, device: str) -> int:
    """GPUs each job requests: `asked`, or 1 when the runs need CUDA. A run trains on one GPU."""
    gpus = (1 if device == "cuda" else 0) if asked is None else asked
    if gpus not in (0, 1):
        raise SlurmError(f"--gpus-per-run {gpus}: a run trains on one GPU; ask for 0 or 1")
    if device == "cuda" and gpus == 0:
        raise SlurmError("--gpus-per-run 0 with device cuda: every job would fail without a GPU; drop the flag")
    if device == "cpu" and gpus:
        raise SlurmError("--gpus-per-run 1 with device cpu: the GPU would sit idle; drop the flag or use "
                         "--device cuda")
    return gpus


def parse_options(items: list[str]) -> dict[str, str]:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise SlurmError(f"--slurm-option {item!r}: expected KEY=VALUE, e.g. account=myproject")
        options[key.replace("-", "_")] = value
    return options


def parse_time(text: str | int) -> int:
    """SLURM's time syntax -> whole minutes (rounded up): M, M:S, H:M:S, D-H, D-H:M, D-H:M:S."""
    value = str(text).strip()
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", value)
    if not match or value in ("", "0"):
        raise SlurmError(f"--time {text!r}: expected minutes, HH:MM:SS or D-HH:MM:SS (e.g. 4:00:00)")
    days, a, b, c = match.groups()
    a, b, c = int(a), int(b) if b else None, int(c) if c else None
    if days is not None:  # D-H, D-H:M, D-H:M:S
        seconds = int(days) * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:   # H:M:S
        seconds = a * 3600 + b * 60 + c
    elif b is not None:   # M:S
        seconds = a * 60 + b
    else:                 # M
        seconds = a * 60
    if seconds <= 0:
        raise SlurmError(f"--time {text!r} is not a positive duration")
    return -(-seconds // 60)


# ----------------------------------------------------------------------------------------------
# Talking to SLURM

def _run(cmd: list[str], timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def check_slurm(partition: str | None = None) -> None:
    """Raise SlurmError with the reason unless jobs can be submitted (to `partition`)."""
    missing = [cmd for cmd in ("sbatch", "squeue", "srun", "scancel") if shutil.which(cmd) is None]
    if missing:
        raise SlurmError(f"--executor slurm: {', '.join(missing)} not found on PATH; run the command on a "
                         f"SLURM login node (or install the SLURM client tools)")
    try:
        ping = _run(["sinfo", "-h", "-o", "%P"] + (["-p", partition] if partition else []))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmError(f"--executor slurm: SLURM is unreachable ({exc}); nothing was submitted") from None
    if ping.returncode != 0:
        why = (ping.stderr or ping.stdout).strip().splitlines()
        raise SlurmError(f"--executor slurm: SLURM is unreachable ({why[-1] if why else 'sinfo failed'}); "
                         f"is slurmctld up? Nothing was submitted")
    if partition and not ping.stdout.strip():
        known = _run(["sinfo", "-h", "-o", "%P"]).stdout.split()
        raise SlurmError(f"--executor slurm: no partition {partition!r} (partitions: "
                         f"{', '.join(p.rstrip('*') for p in known) or 'none'}); nothing was submitted")


@dataclass(frozen=True)
class JobState:
    state: str            # e.g. RUNNING, COMPLETED, CANCELLED (first word only)
    reason: str = ""      # squeue's reason (why pending, or why it failed), "" for None
    name: str = ""
    nodes: str = ""


def squeue_states(job_ids: list[str]) -> dict[str, JobState] | None:
    """States of these jobs as squeue knows them (finished ones for MinJobAge); None if SLURM is unreachable."""
    if not job_ids:
        return {}
    try:
        out = _run(["squeue", "--noheader", "--states=all", "--jobs=" + ",".join(job_ids),
                    "--format=%i|%T|%r|%j|%N"])
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        if "Invalid job id" in out.stderr:   # none of them is known any more
            return {}
        return None
    states = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 5 or not parts[0]:
            continue
        job_id, state, reason, name, nodes = parts[:5]
        states[job_id] = JobState(state.split()[0].upper() if state.strip() else "UNKNOWN",
                                  "" if reason in ("None", "(null)") else reason, name, nodes)
    return states


def sacct_states(job_ids: list[str]) -> dict[str, JobState]:
    """Final states from accounting, where the cluster keeps it (empty otherwise)."""
    if not job_ids or shutil.which("sacct") is None:
        return {}
    try:
        out = _run(["sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,State,JobName",
                    "--jobs=" + ",".join(job_ids)])
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if out.returncode != 0:
        return {}
    states = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 3 and parts[0] in job_ids and parts[1].strip():
            states[parts[0]] = JobState(parts[1].split()[0].upper(), "", parts[2])
    return states


# ----------------------------------------------------------------------------------------------
# What a job runs

def _job_main(out_dir: str, run_id: str, threads: int, home: str | None, target: str,
              device: str | None = None) -> str:
    """Inside the SLURM job: run one planned run; returns execute_run's status or "busy: ..."."""
    # The executor asks SLURM for no warning signal (signal_delay_s=0), but an option may ask for one: submitit
    # then raises an error inside the running code when USR2 comes; a run is better left to save its resume
    # state until SLURM stops it (TIMEOUT), so the next run of the command resumes it.
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    from effdata.study.runner import import_target  # noqa: PLC0415

    threads = int(os.environ.get("SLURM_CPUS_PER_TASK") or threads or 1)
    kwargs: dict[str, Any] = {"threads": threads, "device": device}
    if home:
        kwargs["home"] = home
    try:
        return import_target(target)(out_dir, run_id, **kwargs)
    except Exception as exc:  # noqa: BLE001
        if type(exc).__name__ == "RunBusy":  # another live process holds the run: leave its files alone
            return f"busy: {exc}"
        raise


def _job_name(run_id: str) -> str:
    return f"effdata-{run_id}"


# ----------------------------------------------------------------------------------------------
# The executor

class SlurmExecutor:
    """Executor for `effdata.study.runner.schedule`: one SLURM job per run, submitted through submitit."""

    def __init__(self, out_dir: Path | str, partition: str | None = None, gpus_per_run: int = 0,
                 cpus_per_run: int = 1, time: str | int = DEFAULT_TIME, max_parallel: int = DEFAULT_MAX_PARALLEL,
                 home: Path | str | None = None, options: dict[str, Any] | None = None,
                 target: str = DEFAULT_TARGET, poll_interval: float | None = None, check: bool = True,
                 device: str | None = None):
        self.out_dir = Path(out_dir).resolve()
        self.device = device
        self.max_parallel = max_parallel
        self.cpus_per_run = max(1, int(cpus_per_run))
        self.home = str(Path(home).resolve()) if home else None
        self.target = target
        self.poll_interval = float(poll_interval if poll_interval is not None
                                   else os.environ.get("EFFDATA_SLURM_POLL_S", 5.0))
        minutes = parse_time(time)
        try:
            import submitit  # noqa: PLC0415
        except ImportError:
            raise SlurmError("--executor slurm needs the submitit package: pip install submitit") from None
        if check:
            check_slurm(partition)

        self.folder = self.out_dir / "slurm"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._submitit = submitit.SlurmExecutor(folder=self.folder)
        package_root = Path(__file__).resolve().parents[2]  # the directory that holds effdata/
        params: dict[str, Any] = {
            "time": minutes, "cpus_per_task": self.cpus_per_run, "nodes": 1, "ntasks_per_node": 1,
            # the node imports effdata from where this process does, even without `pip install -e`
            "setup": [f"export PYTHONPATH={_shell_quote(str(package_root))}${{PYTHONPATH:+:$PYTHONPATH}}"],
        }
        if partition:
            params["partition"] = partition
        if gpus_per_run:
            params["gpus_per_node"] = int(gpus_per_run)
        extra = dict(options or {})
        # submitit asks for SIGUSR2 `signal_delay_s` (default 90 s) before the time limit; SLURM sends it up
        # to 30 s earlier still, so under a limit of 2 minutes or less it comes while the job's Python is
        # starting, before `_job_main` ignores it, and kills the job (FAILED, not TIMEOUT: seen in
        # tests/test_slurm.py at a 1-minute limit). The run ignores the warning anyway; 0 asks SLURM for none.
        extra.setdefault("signal_delay_s", 0)
        known = set(submitit.SlurmExecutor._valid_parameters())
        for key in [k for k in extra if k in known and k not in params]:
            params[key] = extra.pop(key)
        if extra:
            params["additional_parameters"] = {k.replace("_", "-"): v for k, v in extra.items()}
        self._submitit.update_parameters(**params)
        self._jobs: dict[str, str] = {}        # SLURM job id -> run id, for jobs not yet seen to end
        self._seen: dict[str, str] = {}        # job id -> last state reported in messages
        self._missing: dict[str, int] = {}     # job id -> polls in which squeue did not list it
        self._ended: list[tuple[str, str | None]] = []
        self._settling: dict[str, tuple[str, float]] = {}  # job id -> (run id, deadline): completed, no record yet
        self.settle_s = 60.0
        self._why: dict[str, str] = {}         # job id -> why it is pending (squeue's reason)
        self._last_status = ""
        self._last_query = 0.0
        self._unreachable_since: float | None = None

    # -- the Executor protocol ---------------------------------------------------------------

    def submit(self, run_id: str) -> None:
        """Submit a job for the run, or adopt the run's job from an earlier invocation if it is still alive."""
        adopted = self._adopt(run_id)
        if adopted:
            self._jobs[adopted] = run_id
            _say(f"{run_id}: waiting for SLURM job {adopted}, submitted by an earlier invocation")
            return
        self._submitit.update_parameters(job_name=_job_name(run_id))
        job = None
        error: Exception | None = None
        for attempt in range(3):  # a controller restarting drops a submission now and then
            try:
                job = self._submitit.submit(_job_main, str(self.out_dir), run_id, self.cpus_per_run,
                                            self.home, self.target, self.device)
                break
            except Exception as exc:  # noqa: BLE001  (submitit raises several kinds)
                error = exc
                time.sleep(2.0 * (attempt + 1))
        if job is None:
            raise SlurmError(f"sbatch failed for run {run_id}: {_one_line(error)}. Jobs already submitted keep "
                             f"running; run the same command again once SLURM accepts jobs") from error
        job_id = str(job.job_id)
        atomic_write_json(self._job_file(run_id), {
            "job_id": job_id, "run_id": run_id, "job_name": _job_name(run_id),
            "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "submit_host": socket.gethostname(),
            "user": _user(), "log": str(self._log(job_id, "err")),
        })
        self._jobs[job_id] = run_id

    def poll(self) -> list[tuple[str, str | None]]:
        """Runs whose jobs ended since the last poll: (run_id, None) or (run_id, "slurm: <STATE> ...")."""
        now = time.monotonic()
        if (self._jobs or self._settling) and now - self._last_query >= self.poll_interval:
            self._last_query = now
            self._settle()
            if self._jobs:
                self._update()
        ended, self._ended = self._ended, []
        return ended

    def through(self) -> dict:
        """How far each job is: not known here (a job's steps are in its log on the cluster); {}."""
        return {}

    def messages(self) -> list[str]:
        """The jobs' states in one line when they change, for the progress bar: "slurm: 2 running, 1 pending"."""
        line = "slurm: " + (self.status() or "no jobs")
        if line == self._last_status:
            return []
        self._last_status = line
        return [line]

    def shutdown(self) -> None:
        """Leave submitted jobs alone (the next run of the command waits for them); say which are left."""
        if not self._jobs:
            return
        states = squeue_states(sorted(self._jobs)) or {}
        alive = sorted((jid for jid, s in states.items() if s.state in ALIVE), key=int)
        if alive:
            print(f"effdata.run: {len(alive)} SLURM job(s) still queued or running: {' '.join(alive)}. "
                  f"Run the same command again to wait for them (they are not submitted twice), "
                  f"or cancel them: scancel {' '.join(alive)}", file=sys.stderr)

    # -- the rest ------------------------------------------------------------------------------

    def status(self) -> str:
        """Job states in a few words, e.g. "2 running, 5 pending (Resources)"."""
        counts: dict[str, int] = {}
        reasons: dict[str, set[str]] = {}
        for job_id in self._jobs:
            state = self._seen.get(job_id, "SUBMITTED").lower()
            counts[state] = counts.get(state, 0) + 1
            if self._why.get(job_id):
                reasons.setdefault(state, set()).add(self._why[job_id])
        return ", ".join(f"{n} {state}" + (f" ({', '.join(sorted(reasons[state]))})" if state in reasons else "")
                         for state, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def _job_file(self, run_id: str) -> Path:
        return self.out_dir / "runs" / run_id / JOB_FILE

    def _log(self, job_id: str, kind: str) -> Path:
        return self.folder / f"{job_id}_0_log.{kind}"

    def _adopt(self, run_id: str) -> str | None:
        """The job id recorded for this run if SLURM still has it queued or running."""
        try:
            info = json.loads(self._job_file(run_id).read_text())
            job_id = str(info["job_id"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if job_id in self._jobs:
            return None
        states = squeue_states([job_id])
        if states is None:
            raise SlurmError("SLURM is unreachable (squeue failed); nothing more was submitted. Run the same "
                             "command again once slurmctld answers")
        state = states.get(job_id)
        if state and state.state in ALIVE and state.name in ("", _job_name(run_id)):
            return job_id
        return None

    def _update(self) -> None:
        ids = sorted(self._jobs, key=int)
        states = squeue_states(ids)
        if states is None:
            if self._unreachable_since is None:
                self._unreachable_since = time.monotonic()
                _say("SLURM is not answering (squeue failed); still waiting for the jobs")
            elif time.monotonic() - self._unreachable_since > 1800:
                raise SlurmError("SLURM has not answered squeue for 30 minutes; submitted jobs keep running. "
                                 "Run the same command again to pick them up")
            return
        if self._unreachable_since is not None:
            self._unreachable_since = None
            _say("SLURM answers again")
        missing = [jid for jid in ids if jid not in states]
        if missing:
            states.update(sacct_states(missing))
        for job_id in ids:
            run_id = self._jobs[job_id]
            state = states.get(job_id)
            if state is None:
                # Not listed (MinJobAge passed, or not visible yet): decide from the result file, twice missed.
                self._missing[job_id] = self._missing.get(job_id, 0) + 1
                if self._missing[job_id] < 2:
                    continue
                self._finish(job_id, run_id, None)
                continue
            self._missing.pop(job_id, None)
            if state.state in ALIVE:
                if state.state != "COMPLETING":
                    self._seen[job_id] = state.state
                    self._why[job_id] = state.reason if state.state == "PENDING" else ""
                continue
            self._finish(job_id, run_id, state)

    def _finish(self, job_id: str, run_id: str, state: JobState | None) -> None:
        self._jobs.pop(job_id, None)
        self._seen.pop(job_id, None)
        self._why.pop(job_id, None)
        self._missing.pop(job_id, None)
        outcome, value = self._result(job_id)
        if (state is not None and state.state == "COMPLETED") or (state is None and outcome == "success"):
            reason = value if isinstance(value, str) and value.startswith("busy:") else None
            if reason is None and not self._record_visible(run_id):
                # On NFS the node's record may show up here a little later: the scheduler must not
                # take its absence for a crash (and write a failed record over it).
                self._settling[job_id] = (run_id, time.monotonic() + self.settle_s)
                return
        elif state is None:
            reason = (f"slurm: job {job_id} left the queue without a result (state unknown)"
                      f"{_error_tail(outcome, value)}; log {self._log(job_id, 'err')}")
        else:
            detail = f", {state.reason}" if state.reason else ""
            reason = (f"slurm: {state.state} (job {job_id}{detail}){_error_tail(outcome, value)}; "
                      f"log {self._log(job_id, 'err')}")
        self._ended.append((run_id, reason))

    def _record_visible(self, run_id: str) -> bool:
        run_dir = self.out_dir / "runs" / run_id
        try:
            return "record.json" in os.listdir(run_dir)  # listing revalidates a cached NFS directory
        except OSError:
            return False

    def _settle(self) -> None:
        """Report completed jobs whose record has appeared, or whose grace period is over."""
        for job_id, (run_id, deadline) in list(self._settling.items()):
            if self._record_visible(run_id) or time.monotonic() > deadline:
                del self._settling[job_id]
                self._ended.append((run_id, None))

    def _result(self, job_id: str) -> tuple[str | None, Any]:
        """submitit's result file for the job: ("success", value), ("error", traceback) or (None, None)."""
        path = self.folder / f"{job_id}_0_result.pkl"
        try:
            with open(path, "rb") as handle:
                outcome, value = pickle.load(handle)
            return outcome, value
        except Exception:  # noqa: BLE001  (absent, or written by a job killed halfway)
            return None, None


def _say(line: str) -> None:
    """A line for the user above the progress bar."""
    try:
        from tqdm.auto import tqdm  # noqa: PLC0415

        tqdm.write(line, file=sys.stderr)
    except ImportError:
        print(line, file=sys.stderr)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001  (no passwd entry in some containers)
        return str(os.getuid())


def _error_tail(outcome: str | None, value: Any) -> str:
    if outcome != "error" or not isinstance(value, str):
        return ""
    lines = [line.strip() for line in value.strip().splitlines() if line.strip()]
    return f": {lines[-1][:300]}" if lines else ""


def _one_line(error: Exception | None) -> str:
    if error is None:
        return "unknown error"
    text = str(error)
    if isinstance(error, subprocess.CalledProcessError):
        text = f"{error} {(error.stderr or error.output or b'')!r}"
    return " ".join(text.split())[:500]


def _shell_quote(text: str) -> str:
    import shlex  # noqa: PLC0415

    return shlex.quote(text)
