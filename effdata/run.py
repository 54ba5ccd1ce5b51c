"""`python -m effdata.run --pretrain text`: run a whole transfer study, then its analysis.

    python -m effdata.run --pretrain text                       # the default study, jobs/quick.toml
    python -m effdata.run --pretrain text+code                  # adds only the missing runs
    python -m effdata.run --study jobs/cpu.toml --workers 2
    python -m effdata.run --pretrain text --dry-run             # list the runs and their compute

Run the same command again after an interruption: finished runs are skipped and interrupted
ones resume from their last saved state.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from effdata.data.corpora import CorpusError
from effdata.data.tokens import DataError, TokenizedCorpus
from effdata.spec import StudyRun
from effdata.study.cost import CostModel
from effdata.study.runner import LocalExecutor, RunBusy, exclusive_lock, quiet_libraries, schedule
from effdata.study.store import Store
from effdata.study.study import Study, StudyError, load_study, study_runs

DEFAULT_STUDY = Path(__file__).resolve().parent.parent / "jobs" / "quick.toml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m effdata.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrain", nargs="+", metavar="CORPUS",
                        help="pretraining corpora or mixtures (e.g. text, text+code, text:0.3+code:0.7); "
                             "default: the study's [pretrain] corpora")
    parser.add_argument("--study", type=Path, default=DEFAULT_STUDY, help="study file (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="study directory (default: runs/<study name>)")
    parser.add_argument("--workers", type=int, default=0,
                        help="parallel runs on this machine (default: one per core on CPU, one on GPU)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their compute, run nothing")
    parser.add_argument("--no-analysis", action="store_true", help="skip the analysis after training")
    parser.add_argument("--home", type=Path, help="cache directory for corpora and tokens (default: $EFFDATA_HOME "
                                                  "or ~/.cache/effdata)")
    with contextlib.suppress(ImportError):
        from effdata.study.slurm import add_slurm_arguments  # noqa: PLC0415
        add_slurm_arguments(parser)
    return parser


@contextlib.contextmanager
def study_lock(out_dir: Path):
    """One runner per study directory: a second one would race the first on the same runs."""
    try:
        with exclusive_lock(out_dir / ".runner.lock", f"another effdata.run is working on {out_dir}; "
                                                      "wait for it or stop it"):
            yield
    except RunBusy as exc:
        raise StudyError(str(exc)) from None


def default_workers() -> tuple[int, int]:
    """(workers, threads per worker): small CPU models run best one thread each, a GPU takes one run."""
    import torch  # noqa: PLC0415

    from effdata.training.device import available_cores  # noqa: PLC0415

    if torch.cuda.is_available():
        return 1, available_cores()
    return available_cores(), 1


def threads_for(workers: int) -> int:
    from effdata.training.device import available_cores  # noqa: PLC0415

    return max(1, available_cores() // workers)


def prepare_data(study: Study, pretrains: tuple[str, ...], home: Path | None) -> dict[str, TokenizedCorpus]:
    """Build (or validate) every corpus the study reads, before any training starts."""
    from effdata.data.tokenizer import DEFAULT_VOCAB_SIZE  # noqa: PLC0415
    from effdata.data.tokens import prepare  # noqa: PLC0415

    return {name: prepare(name, study.vocab_size or DEFAULT_VOCAB_SIZE, home,
                          tokenizer_corpora=study.tokenizer_corpora) for name in (study.target, *pretrains)}


def cost_model(study: Study, data: dict[str, TokenizedCorpus]) -> CostModel:
    train = data[study.target].splits["train"]
    return CostModel(chars_per_token=train.n_chars / max(1, train.n_tokens))


def print_plan(runs: list[StudyRun], store: Store, study: Study, data: dict[str, TokenizedCorpus]) -> None:
    cost = cost_model(study, data)
    total_flops, todo = 0.0, 0
    print(f"{'run':<52} {'status':<7} {'N':>9} {'tokens≤':>11} {'FLOPs≤':>9}  depends on")
    for run in runs:
        n = run.spec.shape.n_params
        tokens = cost.tokens(run)
        flops = cost.flops(run)
        done = store.is_done(run.run_id)
        if not done:
            total_flops += flops
            todo += 1
        print(f"{run.run_id:<52} {'done' if done else 'todo':<7} {n:>9,} {tokens:>11,} {flops:>9.2e}  "
              f"{', '.join(run.depends_on) or '-'}")
    print(f"\n{len(runs)} runs, {todo} to do, at most {total_flops:.2e} training FLOPs (6·N·tokens) to do")


def make_executor(args, store: Store):
    """(executor, how many runs it takes at a time)."""
    if getattr(args, "executor", "local") == "slurm":
        from effdata.study.slurm import slurm_executor  # noqa: PLC0415
        return slurm_executor(args, store.out_dir), args.max_parallel
    workers, threads = default_workers()
    if args.workers:
        workers, threads = args.workers, threads_for(args.workers)
    return LocalExecutor(store.out_dir, workers=workers, threads_per_worker=threads, home=args.home), workers


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        study = load_study(args.study)
        pretrains = tuple(args.pretrain) if args.pretrain else study.pretrain.corpora
        out_dir = args.out or Path("runs") / study.name
        store = Store(out_dir)
        runs = study_runs(study, pretrains)
        quiet_libraries()
        data = prepare_data(study, pretrains, args.home)
        if args.dry_run:
            print_plan(runs, store, study, data)
            return 0
        with study_lock(out_dir):
            store.claim(study)
            executor, parallel = make_executor(args, store)
            print(f"study {study.name}: {len(runs)} runs in {out_dir} (pretraining: {', '.join(pretrains)}; "
                  f"{parallel} at a time)", file=sys.stderr)
            outcome = schedule(store, runs, executor, max_parallel=parallel, estimate=cost_model(study, data).flops)
            table = store.write_table()
    except KeyboardInterrupt:
        print("effdata.run: interrupted; finished runs are kept, run the same command to resume",
              file=sys.stderr)
        return 130
    except StudyError as exc:
        print(f"effdata.run: {exc}", file=sys.stderr)
        return 2
    except (CorpusError, DataError) as exc:
        # Missing sources, unknown corpora, fractions larger than a corpus: their message says what to do.
        print(f"effdata.run: {exc}", file=sys.stderr)
        return 2
    print(f"{len(outcome.done)} runs done now, {len(outcome.skipped)} done before, "
          f"{len(outcome.failed)} failed, {len(outcome.blocked)} blocked; results table: {table}", file=sys.stderr)
    for run_id, why in {**outcome.failed, **outcome.blocked}.items():
        print(f"  {run_id}: {why}", file=sys.stderr)
    if not args.no_analysis:
        run_analysis(table, out_dir, pretrains)
    return 0 if outcome.ok else 1


def run_analysis(table: Path, out_dir: Path, pretrains: tuple[str, ...]) -> None:
    """Analyse every pretraining distribution the study directory holds, this invocation's first."""
    import pandas as pd  # noqa: PLC0415

    from effdata.analyze import analyze  # noqa: PLC0415

    try:
        held = pd.read_csv(table)
        finetuned = held.loc[held["mode"] == "finetune", "pretrain"].dropna().unique().tolist()
        compare = list(dict.fromkeys([*pretrains, *sorted(finetuned)]))
        analyze(table, out_dir / "analysis", compare=compare)
    except Exception as exc:  # noqa: BLE001  (training results are safe on disk; say why analysis failed)
        print(f"effdata.run: analysis failed ({type(exc).__name__}: {exc}); rerun it with "
              f"python -m effdata.analyze {table} --out {out_dir / 'analysis'}", file=sys.stderr)
        return
    print(f"report: {out_dir / 'analysis' / 'REPORT.md'}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
