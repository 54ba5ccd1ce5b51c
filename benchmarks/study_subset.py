"""Re-run a few runs of a study (and the pretraining runs they need) into a scratch directory.

    python benchmarks/study_subset.py --study jobs/quick.toml --pretrain text text+code --out /tmp/sub \
        --runs scratch-n500k-3e4c finetune-text-n100k-3e4c pretrain-text+code-n25k [--workers 2]

A run is picked when its id starts with one of the `--runs` labels; its dependencies come with it.
The run ids are the study's own (same spec, same id), so the resulting `<out>/results.csv` can be set
beside the committed table row by row: `python benchmarks/bench_study.py <out>/results.csv --compare
analysis/quick/results.csv ...`. Workers and threads are the study runner's (one thread per worker).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from effdata.spec import StudyRun
from effdata.study.runner import LocalExecutor, schedule
from effdata.study.store import Store
from effdata.study.study import load_study, study_runs


def pick(runs: list[StudyRun], labels: list[str]) -> list[StudyRun]:
    """The runs whose id starts with one of `labels`, with the runs they depend on, in plan order."""
    by_id = {r.run_id: r for r in runs}
    wanted = {r.run_id for r in runs if any(r.run_id.startswith(label) for label in labels)}
    missing = [label for label in labels if not any(rid.startswith(label) for rid in by_id)]
    if missing:
        raise SystemExit(f"no run of the study starts with {missing}")
    for rid in list(wanted):
        wanted.update(by_id[rid].depends_on)
    return [r for r in runs if r.run_id in wanted]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--study", type=Path, required=True)
    p.add_argument("--pretrain", nargs="+", default=None)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--runs", nargs="+", required=True, help="run id prefixes (labels)")
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args(argv)
    runs = pick(study_runs(load_study(a.study), tuple(a.pretrain) if a.pretrain else None), a.runs)
    print(f"{len(runs)} runs: " + ", ".join(r.run_id for r in runs), flush=True)
    store = Store(a.out)
    executor = LocalExecutor(a.out, a.workers, threads_per_worker=1)
    outcome = schedule(store, runs, executor, a.workers)
    print(f"done {len(outcome.done)}, skipped {len(outcome.skipped)}, failed {outcome.failed}, "
          f"blocked {outcome.blocked}")
    print(store.write_table())


if __name__ == "__main__":
    main()
