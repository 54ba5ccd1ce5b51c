"""effdata.study.slurm against a real SLURM: Debian's slurmctld + slurmd + munge on this machine.

The `slurm` fixture brings SLURM up with .ci/slurm-up.sh (idempotent, about a second when it is
already up; about 16 s to install and start it on a fresh Debian as root). Where it cannot (not
root, no apt, daemons refuse to start), every test needing it is skipped with the script's reason:
run pytest with -rs to see it. EFFDATA_SLURM_TESTS=0 skips them without touching the machine.

Most tests drive the real scheduler (`effdata.study.runner.schedule`) with jobs that call a torch-free
stand-in for execute_run (tests/slurm_fake_run.py); the last ones run the smoke study through the
command line, and compare it with a local run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest

from effdata.study.runner import schedule
from effdata.study.store import Store
from effdata.study.slurm import (JobState, SlurmError, SlurmExecutor, gpus_per_run, parse_options, parse_time,
                                 squeue_states)
from effdata.spec import RunSpec, StudyRun
from studyfiles import SMOKE, write_study

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
SLURM_UP = Path(os.environ.get("EFFDATA_SLURM_UP") or REPO / ".ci" / "slurm-up.sh")  # the bring-up script
FAKE = "slurm_fake_run:execute_run"
PY = sys.executable
# Under `pytest -n` (make test) every SLURM test runs in one worker: they share one small cluster, whose job
# slots two workers' studies would fight over, and its bring-up runs once.
pytestmark = pytest.mark.xdist_group("slurm")


# ----------------------------------------------------------------------------------------------
# Without SLURM

def test_parse_time():
    assert parse_time("30") == 30
    assert parse_time(90) == 90
    assert parse_time("1:30") == 2          # M:S rounds up
    assert parse_time("4:00:00") == 240
    assert parse_time("1-00:00:00") == 1440
    assert parse_time("2-3") == 2 * 1440 + 180
    assert parse_time("1-01:30") == 1440 + 90
    for bad in ("", "0", "abc", "1:2:3:4", "-5"):
        with pytest.raises(SlurmError):
            parse_time(bad)


def test_parse_options():
    assert parse_options(["account=proj", "--mem=16G", "qos=low"]) == {"account": "proj", "mem": "16G",
                                                                        "qos": "low"}
    with pytest.raises(SlurmError):
        parse_options(["account"])


def test_no_warning_signal_unless_an_option_asks(tmp_path):
    pytest.importorskip("submitit")
    assert SlurmExecutor(tmp_path / "a", check=False)._submitit.parameters["signal_delay_s"] == 0
    asked = SlurmExecutor(tmp_path / "b", check=False, options=parse_options(["signal_delay_s=120"]))
    assert asked._submitit.parameters["signal_delay_s"] == "120"


def test_no_slurm_on_path_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, squeue, ...
    with pytest.raises(SlurmError, match="sbatch.*not found|needs the submitit package"):
        SlurmExecutor(tmp_path / "out")
    assert not (tmp_path / "out" / "slurm").exists()


def test_cli_flags():
    from effdata.run import build_parser

    args = build_parser().parse_args(["--executor", "slurm", "--partition", "gpu", "--gpus-per-run", "1",
                                      "--time", "2:00:00", "--max-parallel", "8", "--slurm-option", "mem=8G"])
    assert (args.executor, args.partition, args.gpus_per_run, args.time, args.max_parallel) == \
        ("slurm", "gpu", 1, "2:00:00", 8)
    assert build_parser().parse_args([]).executor == "local"


def test_jobs_ask_for_a_gpu_when_the_study_needs_cuda():
    assert gpus_per_run(None, "cuda") == 1 and gpus_per_run(None, "auto") == 0 and gpus_per_run(None, "cpu") == 0
    assert gpus_per_run(1, "auto") == 1
    for asked, device, message in ((0, "cuda", "would fail without a GPU"), (2, "cuda", "ask for 0 or 1"),
                                   (1, "cpu", "would sit idle")):
        with pytest.raises(SlurmError, match=message):
            gpus_per_run(asked, device)


def test_the_gpu_request_reaches_sbatch(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    # No cluster needed: submitit refuses to build an executor where `srun` is not on PATH, which on a fresh machine
    # holds until the session's SLURM fixture (another xdist worker, maybe later) installs it.
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    executor = SlurmExecutor(tmp_path / "out", gpus_per_run=gpus_per_run(None, "cuda"), device="cuda", check=False)
    assert executor._submitit.parameters["gpus_per_node"] == 1 and executor.device == "cuda"


# ----------------------------------------------------------------------------------------------
# A real SLURM

@pytest.fixture(scope="session")
def slurm():
    """SLURM up on this machine, or the test skipped with the reason."""
    if os.environ.get("EFFDATA_SLURM_TESTS") == "0":
        pytest.skip("EFFDATA_SLURM_TESTS=0: SLURM tests not wanted (they install and start SLURM when root)")
    if not SLURM_UP.exists():
        pytest.skip(f"{SLURM_UP} is missing")
    try:
        import submitit  # noqa: F401
    except ImportError:
        pytest.skip("SLURM tests need the submitit package (pip install submitit)")
    try:
        out = subprocess.run(["bash", str(SLURM_UP)], capture_output=True, text=True, timeout=900,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.skip("SLURM not available: .ci/slurm-up.sh took more than 15 minutes")
    if out.returncode != 0:
        lines = (out.stderr.strip() or out.stdout.strip() or "no output").splitlines()
        reason = f"SLURM not available: {lines[-1]}"
        print(reason, file=sys.stderr)
        pytest.skip(reason)
    return True


@pytest.fixture
def fake_env(monkeypatch):
    """Jobs inherit the submitting environment: let them import the stand-in from tests/."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("FAKE_RUN_SECONDS", "1")
    return monkeypatch


def _run(name: str, mode: str, depends_on=()) -> StudyRun:
    spec = RunSpec(mode=mode, size="l1d16h2c32", seed=0, corpus=name, token_budget=1000 if mode == "pretrain" else None)
    return StudyRun(label=f"{mode}-{name}", spec=spec, pretrain="none" if mode == "scratch" else "text",
                    depends_on=tuple(depends_on), init_from_run=depends_on[0] if depends_on else None)


def _plan() -> list[StudyRun]:
    pre = _run("text", "pretrain")
    return [pre, _run("a", "finetune", [pre.run_id]), _run("b", "finetune", [pre.run_id]), _run("c", "scratch")]


def _executions(store: Store, run_id: str) -> list[str]:
    path = store.run_dir(run_id) / "executions"
    return path.read_text().splitlines() if path.exists() else []


def _executor(out: Path, **kw) -> SlurmExecutor:
    return SlurmExecutor(out, partition="debug", time="10", target=FAKE, poll_interval=0.5, device="cpu", **kw)


@pytest.mark.slow
def test_study_through_slurm_in_dependency_order(slurm, fake_env, tmp_path):
    store, runs = Store(tmp_path / "out"), _plan()
    outcome = schedule(store, runs, _executor(store.out_dir), max_parallel=2)
    assert outcome.ok, (outcome.failed, outcome.blocked)
    assert sorted(outcome.done) == sorted(r.run_id for r in runs)
    pre_end = json.loads((store.run_dir(runs[0].run_id) / "record.json").read_text())["finished_at"]
    for run in runs:
        record = store.read_record(run.run_id)
        assert record["status"] == "ok" and record["metrics"]["threads"] == 1
        assert record["metrics"]["device"] == "cpu"  # the executor's device reaches the run
        assert len(_executions(store, run.run_id)) == 1
        job = json.loads((store.run_dir(run.run_id) / "slurm_job.json").read_text())
        assert record["metrics"]["job"] == job["job_id"]
        assert (store.out_dir / "slurm" / f"{job['job_id']}_0_log.out").exists()
    # the fine-tunes started after their pretraining ended (the stand-in fails them otherwise)
    for run in runs[1:3]:
        assert float(_executions(store, run.run_id)[0].split()[1]) >= time.mktime(
            time.strptime(pre_end[:19], "%Y-%m-%dT%H:%M:%S")) - 1
    # the same command again: everything skipped, nothing submitted
    again = schedule(store, runs, _executor(store.out_dir), max_parallel=2)
    assert sorted(again.skipped) == sorted(r.run_id for r in runs) and not again.done


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _running_job(store: Store, run_id: str):
    try:
        job_id = json.loads((store.run_dir(run_id) / "slurm_job.json").read_text())["job_id"]
    except (OSError, ValueError):
        return None
    state = (squeue_states([job_id]) or {}).get(job_id)
    return job_id if state and state.state == "RUNNING" and _executions(store, run_id) else None


@pytest.mark.slow
def test_scancel_is_recorded_and_the_rerun_completes(slurm, fake_env, tmp_path):
    fake_env.setenv("FAKE_RUN_SECONDS", "6")
    store, runs = Store(tmp_path / "out"), _plan()
    victim = runs[1].run_id  # a fine-tune: its pretraining must not run again
    result = {}
    thread = threading.Thread(target=lambda: result.update(
        outcome=schedule(store, runs, _executor(store.out_dir), max_parallel=2)))
    thread.start()
    job_id = _wait_for(lambda: _running_job(store, victim), 120, f"{victim} running")
    subprocess.run(["scancel", job_id], check=True)
    thread.join(timeout=180)
    assert not thread.is_alive()
    outcome = result["outcome"]
    assert list(outcome.failed) == [victim]
    assert outcome.failed[victim].startswith("slurm: CANCELLED"), outcome.failed[victim]
    record = store.read_record(victim)
    assert record["status"] == "failed" and record["error"].startswith("slurm: CANCELLED")
    mtimes = {r.run_id: (store.run_dir(r.run_id) / "record.json").stat().st_mtime for r in runs}

    fake_env.setenv("FAKE_RUN_SECONDS", "1")
    again = schedule(store, runs, _executor(store.out_dir), max_parallel=2)
    assert again.ok and again.done == [victim], (again.failed, again.done)
    assert store.read_record(victim)["status"] == "ok"
    for run in runs:
        if run.run_id != victim:
            assert len(_executions(store, run.run_id)) == 1, run.run_id
            assert (store.run_dir(run.run_id) / "record.json").stat().st_mtime == mtimes[run.run_id]
    assert len(_executions(store, victim)) == 2


@pytest.mark.slow
def test_a_job_still_in_slurm_is_waited_for_not_resubmitted(slurm, fake_env, tmp_path):
    fake_env.setenv("FAKE_RUN_SECONDS", "4")
    store = Store(tmp_path / "out")
    run = _run("solo", "scratch")
    store.write_run(run)
    first = _executor(store.out_dir)
    first.submit(run.run_id)            # ...and the command dies: the job stays in SLURM
    job_id = json.loads((store.run_dir(run.run_id) / "slurm_job.json").read_text())["job_id"]
    second = _executor(store.out_dir)
    outcome = schedule(store, [run], second, max_parallel=2)
    assert outcome.done == [run.run_id]
    assert json.loads((store.run_dir(run.run_id) / "slurm_job.json").read_text())["job_id"] == job_id
    assert [line.split()[0] for line in _executions(store, run.run_id)] == [job_id]


@pytest.mark.slow
def test_a_preempted_and_requeued_job_is_waited_for(slurm, fake_env, tmp_path):
    """Preemption with PreemptMode=REQUEUE, as `scontrol requeue` does it: the same job runs again."""
    fake_env.setenv("FAKE_RUN_SECONDS", "8")
    store = Store(tmp_path / "out")
    run = _run("preempted", "scratch")
    result = {}
    thread = threading.Thread(target=lambda: result.update(
        outcome=schedule(store, [run], _executor(store.out_dir), max_parallel=1)))
    thread.start()
    job_id = _wait_for(lambda: _running_job(store, run.run_id), 120, "the job running")
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    _wait_for(lambda: (squeue_states([job_id]) or {}).get(job_id, JobState("?")).state == "PENDING", 60,
              "the job requeued")
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)  # skip the requeue delay
    thread.join(timeout=180)
    assert not thread.is_alive()
    assert result["outcome"].done == [run.run_id], result["outcome"]
    assert [line.split()[0] for line in _executions(store, run.run_id)] == [job_id, job_id]


@pytest.mark.slow
def test_a_job_killed_at_its_time_limit_is_recorded_and_resubmitted(slurm, fake_env, tmp_path):
    fake_env.setenv("FAKE_RUN_SECONDS", "300")
    store = Store(tmp_path / "out")
    run = _run("slow", "scratch")
    outcome = schedule(store, [run], SlurmExecutor(store.out_dir, partition="debug", time="1", target=FAKE,
                                                   poll_interval=1), max_parallel=1)
    assert outcome.failed[run.run_id].startswith("slurm: TIMEOUT"), outcome.failed
    assert store.read_record(run.run_id)["error"].startswith("slurm: TIMEOUT")
    # no warning signal before the kill: a USR2 that came while the job's Python started killed it (FAILED)
    job_id = json.loads((store.run_dir(run.run_id) / "slurm_job.json").read_text())["job_id"]
    log = (store.out_dir / "slurm" / f"{job_id}_0_log.err").read_text()
    assert "DUE TO TIME LIMIT" in log and "Bypassing signal" not in log.split("DUE TO TIME LIMIT")[0], log
    fake_env.setenv("FAKE_RUN_SECONDS", "1")
    again = schedule(store, [run], _executor(store.out_dir), max_parallel=1)
    assert again.done == [run.run_id] and len(_executions(store, run.run_id)) == 2


@pytest.mark.slow
def test_unknown_partition_is_refused_before_submitting(slurm, tmp_path):
    with pytest.raises(SlurmError, match="no partition 'nope'"):
        SlurmExecutor(tmp_path / "out", partition="nope")
    assert not (tmp_path / "out" / "slurm").exists()


@pytest.mark.slow
def test_controller_down_is_refused_before_submitting(slurm, tmp_path):
    conf, pidfile = Path("/etc/slurm/slurm.conf"), Path("/run/slurmctld.pid")
    if os.geteuid() != 0 or not conf.exists() or "written by effdata" not in conf.read_text() \
            or not pidfile.exists():
        pytest.skip("stops slurmctld: only with the test SLURM of .ci/slurm-up.sh, as root")
    os.kill(int(pidfile.read_text()), 15)
    try:
        _wait_for(lambda: subprocess.run(["scontrol", "ping"], capture_output=True, text=True).returncode != 0,
                  30, "slurmctld to stop")
        with pytest.raises(SlurmError, match="unreachable.*Nothing was submitted"):
            SlurmExecutor(tmp_path / "out", partition="debug")
        assert not (tmp_path / "out" / "slurm").exists()
    finally:
        up = subprocess.run(["bash", str(SLURM_UP)], capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr


# ----------------------------------------------------------------------------------------------
# The smoke study through the command line (on the tiny corpora of conftest.py, like test_runner.py)



def _write_smoke(path: Path, corpora: dict[str, str], **changes) -> Path:
    """jobs/smoke.toml made smaller (one size, 4 runs) on the tiny corpora."""
    smoke = tomllib.loads(SMOKE.read_text())
    return write_study(path, corpora, sizes=smoke["sizes"][:1],
                       scratch={"data_chars": smoke["scratch"]["data_chars"][:2]},
                       finetune={"data_chars": smoke["finetune"]["data_chars"][:1]}, **changes)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, tiny_corpora):
    if not SMOKE.exists():
        pytest.skip(f"{SMOKE} does not exist")
    tmp = tmp_path_factory.mktemp("slurm-smoke")
    study = _write_smoke(tmp / "smoke.toml", tiny_corpora)
    env = dict(os.environ, EFFDATA_SLURM_POLL_S="1")
    return {"study": study, "home": tmp / "home", "tmp": tmp, "env": env, "corpora": tiny_corpora}


def _cli_args(smoke, out: Path, *extra: str) -> list[str]:
    return [PY, "-m", "effdata.run", "--study", str(smoke["study"]), "--out", str(out), "--home",
            str(smoke["home"]), "--no-analysis", *extra]


SLURM_ARGS = ("--executor", "slurm", "--partition", "debug", "--time", "30", "--max-parallel", "2")


def _cli(smoke, out: Path, *extra: str, timeout=1800) -> subprocess.CompletedProcess:
    return subprocess.run(_cli_args(smoke, out, *extra), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=smoke["env"])


def _records(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/record.json"))}


def _shape(record: dict) -> tuple:
    return tuple(sorted(record)), tuple(sorted(record.get("metrics", {})))


@pytest.mark.slow
def test_smoke_study_through_slurm_matches_a_local_run(slurm, smoke):
    local = _cli(smoke, smoke["tmp"] / "local", "--workers", "2")
    assert local.returncode == 0, local.stderr[-3000:]
    remote = _cli(smoke, smoke["tmp"] / "slurm", *SLURM_ARGS)
    assert remote.returncode == 0, remote.stderr[-3000:]
    local_records, slurm_records = _records(smoke["tmp"] / "local"), _records(smoke["tmp"] / "slurm")
    assert len(local_records) == 4 and sorted(local_records) == sorted(slurm_records)
    for run_id, record in slurm_records.items():
        assert record["status"] == "ok", (run_id, record["error"])
        assert _shape(record) == _shape(local_records[run_id]), run_id
        assert (smoke["tmp"] / "slurm" / "runs" / run_id / "slurm_job.json").exists()
    assert (smoke["tmp"] / "slurm" / "results.csv").read_text().splitlines()[0] == \
        (smoke["tmp"] / "local" / "results.csv").read_text().splitlines()[0]


@pytest.mark.slow
def test_smoke_study_survives_a_scancel(slurm, smoke):
    """Cancel the pretraining job mid-run: its fine-tune is blocked; the same command again finishes both."""
    out = smoke["tmp"] / "scancel"
    # Its own study: a pretraining that runs its whole (larger) budget, so the cancel lands mid-run.
    long_pretrain = _write_smoke(smoke["tmp"] / "long-pretrain.toml", smoke["corpora"],
                                 pretrain={"token_budget": 600_000}, train={"pretrain_stop_on": "budget"})
    proc = subprocess.Popen(_cli_args({**smoke, "study": long_pretrain}, out, *SLURM_ARGS), cwd=REPO,
                            env=smoke["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def running_pretrain():
        for path in sorted((out / "runs").glob("pretrain-*/slurm_job.json")):
            job_id = json.loads(path.read_text())["job_id"]
            state = (squeue_states([job_id]) or {}).get(job_id)
            log = path.parent / "log.txt"
            training = log.exists() and "step " in log.read_text()  # past start-up, into its steps
            if state and state.state == "RUNNING" and training and not (path.parent / "record.json").exists():
                return path.parent.name, job_id
        return None

    try:
        victim, job_id = _wait_for(running_pretrain, 600, "the pretraining job running")
        subprocess.run(["scancel", job_id], check=True)
        _, stderr = proc.communicate(timeout=1800)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr[-3000:]
    assert "slurm: CANCELLED" in stderr
    records = _records(out)
    assert records[victim]["status"] == "failed" and records[victim]["error"].startswith("slurm: CANCELLED")
    done = {rid: json.dumps(rec, sort_keys=True) for rid, rec in records.items() if rec["status"] == "ok"}
    assert len(done) == 2  # the two from-scratch runs; the fine-tune was blocked

    again = _cli({**smoke, "study": long_pretrain}, out, *SLURM_ARGS)
    assert again.returncode == 0, again.stderr[-3000:]
    records = _records(out)
    assert len(records) == 4
    assert all(r["status"] == "ok" for r in records.values()), {k: r["error"] for k, r in records.items()}
    for run_id, before in done.items():  # nothing finished was done twice
        assert json.dumps(records[run_id], sort_keys=True) == before, run_id
