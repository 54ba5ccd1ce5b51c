"""`python -m effdata.run --pretrain text`: run a whole transfer study, then its analysis.

    python -m effdata.run --pretrain text                       # the default study, jobs/quick.toml
    python -m effdata.run --pretrain text+code                  # adds only the missing runs
    python -m effdata.run --study jobs/cpu.toml --workers 2
    python -m effdata.run --pretrain text --dry-run             # list the runs and their compute
    python -m effdata.run --study jobs/gpu.toml --pretrain text # one run per GPU, each on its own GPU

Run the same command again after an interruption: finished runs are skipped and interrupted
ones resume from their last saved state.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from effdata.data.corpora import CorpusError
from effdata.data.tokens import DataError, TokenizedCorpus
from effdata.spec import StudyRun
from effdata.study.checks import check_plan, pretrain_epochs
from effdata.study.cost import A100, CostModel
from effdata.study.progress import MODES as PROGRESS_MODES, preparation_shown
from effdata.study.runner import ORDERS, LocalExecutor, RunBusy, exclusive_lock, quiet_libraries, schedule
from effdata.study.store import Store
from effdata.study.study import DEVICES, Study, StudyError, load_study, study_runs

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
                        help="parallel runs on this machine (default: one per core on CPU, one per GPU on CUDA; "
                             "workers take the GPUs in turn)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads per worker (default: the cores shared among the workers); 1 keeps a "
                             "worker fast on a machine other work also loads (docs/notes/issue-23.md)")
    parser.add_argument("--device", choices=DEVICES,
                        help="where runs execute (default: the study's `device`, else auto: CUDA when present); "
                             "cuda stops at once when this machine has no CUDA")
    parser.add_argument("--order", choices=ORDERS, default="longest",
                        help="after pretraining: the longest runs first (default; the shortest wall time), or size "
                             "by size from the smallest, from-scratch runs and fine-tunes interleaved (what a "
                             "deadline leaves is whole sizes)")
    parser.add_argument("--stop-after", type=float, metavar="SECONDS",
                        help="start no run later than SECONDS after this command began; runs in flight finish, the "
                             "rest stay to do (the same command later does them)")
    parser.add_argument("--reuse", type=Path, nargs="+", default=[], metavar="DIR",
                        help="copy in the runs other study directories finished under the same ids (e.g. "
                             "runs/cpu-v4 for a study that changes one setting of it) instead of training them; "
                             "several: each run from the first that has it")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their compute, run nothing")
    parser.add_argument("--no-analysis", action="store_true", help="skip the analysis after training")
    parser.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                        help="how runs are shown while they execute: bar (a redrawing tqdm bar, for a terminal), "
                             "plain (a line per ended run and a summary line every minute, for logs: CI, SLURM, "
                             "nohup), or auto (default: bar when stderr is a terminal, else plain)")
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


@dataclass(frozen=True)
class LocalPlan:
    """How a study runs on this machine: the device every worker uses, and the workers."""

    device: str                        # "cpu" or "cuda"
    workers: int
    threads: int                       # torch threads per worker
    gpus: tuple[str, ...] = ()         # CUDA_VISIBLE_DEVICES entries, taken by the workers in turn


def local_plan(device: str, workers: int = 0, threads: int = 0) -> LocalPlan:
    """`device` ("auto", "cpu", "cuda") resolved on this machine; StudyError when it asks for missing CUDA.

    CPU: one worker per core, one thread each (small models run best so). CUDA: one worker per visible GPU,
    the cores shared among them; `workers` overrides the count (more workers than GPUs share GPUs), `threads`
    the threads per worker."""
    from effdata.training.device import available_cores, cuda_missing, visible_gpus  # noqa: PLC0415

    missing = None if device == "cpu" else cuda_missing()
    if device == "cuda" and missing:
        raise StudyError(f"device cuda: CUDA is not available on this machine ({missing}); run on a machine "
                         f"with a GPU, or use --device cpu")
    cores = available_cores()
    if device == "cpu" or missing:
        workers = workers or cores
        return LocalPlan("cpu", workers, threads or max(1, cores // workers))
    gpus = tuple(visible_gpus())
    workers = workers or len(gpus)
    return LocalPlan("cuda", workers, threads or max(1, cores // workers), gpus)


def prepare_data(study: Study, pretrains: tuple[str, ...], home: Path | None) -> dict[str, TokenizedCorpus]:
    """Build (or validate) every corpus the study reads, before any training starts. What is built is
    shown as it starts (the first time: corpora, the tokenizer, token files; cached afterwards)."""
    from effdata.data.tokenizer import DEFAULT_VOCAB_SIZE  # noqa: PLC0415
    from effdata.data.tokens import prepare  # noqa: PLC0415

    names = list(dict.fromkeys((study.target, *pretrains)))
    data = {}
    with preparation_shown(len(names)) as shown:
        for index, name in enumerate(names, 1):
            shown.corpus = (index, name)
            data[name] = prepare(name, study.vocab_size or DEFAULT_VOCAB_SIZE, home,
                                 tokenizer_corpora=study.tokenizer_corpora)
    return data


def cost_model(study: Study, data: dict[str, TokenizedCorpus]) -> CostModel:
    train = data[study.target].splits["train"]
    return CostModel(chars_per_token=train.n_chars / max(1, train.n_tokens), vocab_size=data[study.target].vocab_size)


def print_plan(runs: list[StudyRun], store: Store, study: Study, data: dict[str, TokenizedCorpus],
               device: str) -> None:
    """Every run with its status and compute; with device cuda, the expected GPU time too."""
    cost = cost_model(study, data)
    gpu = device == "cuda"
    total_flops, todo = 0.0, 0
    print(f"{'run':<52} {'status':<7} {'N':>11} {'tokens≤':>13} {'FLOPs≤':>9}" + (f" {'GPU h≤':>7}" if gpu else "")
          + "  depends on")
    for run in runs:
        done = store.is_done(run.run_id)
        if not done:
            total_flops += cost.flops(run)
            todo += 1
        hours = f" {cost.gpu_seconds(run) / 3600:>7.2f}" if gpu else ""
        print(f"{run.run_id:<52} {'done' if done else 'todo':<7} {run.spec.shape.n_params:>11,} "
              f"{cost.tokens(run):>13,} {cost.flops(run):>9.2e}{hours}  {', '.join(run.depends_on) or '-'}")
    print(f"\n{len(runs)} runs, {todo} to do, at most {total_flops:.2e} training FLOPs (6·N·tokens) to do")
    print_budgets(runs, data)
    if gpu:
        print_gpu_time([r for r in runs if not store.is_done(r.run_id)], cost)


def print_budgets(runs: list[StudyRun], data: dict[str, TokenizedCorpus]) -> None:
    """Each pretraining budget in epochs of its corpus's train split (once per size, whatever the seeds)."""
    for corpus in dict.fromkeys(r.spec.corpus for r in runs if r.mode == "pretrain"):
        per_size = {r.spec.size: pretrain_epochs(r, data) for r in runs if r.mode == "pretrain" and r.spec.corpus == corpus}
        budgets = ", ".join(f"{size} {epochs:.2f}" for size, epochs in per_size.items())
        print(f"pretraining budgets in epochs of {corpus} ({data[corpus].splits['train'].n_tokens:,} train "
              f"tokens): {budgets}")


def print_gpu_time(todo: list[StudyRun], cost: CostModel) -> None:
    """Expected GPU-hours of the runs to do, at most, and the longest chain (a pretraining, then its
    longest fine-tune) that bounds the wall time on many GPUs."""
    hours = {r.run_id: cost.gpu_seconds(r) / 3600 for r in todo}
    total = sum(hours.values())
    evaluation = sum(cost.eval_flops(r) / A100.evaluate for r in todo) / 3600
    chain = max((hours[r.run_id] + max((hours[f.run_id] for f in todo if r.run_id in f.depends_on), default=0.0)
                 for r in todo), default=0.0)
    print(f"expected GPU time, at most (every run to its full schedule): {total:.1f} GPU-hours on one "
          f"{A100.name} at an assumed {A100.train / 1e12:.0f} TFLOP/s training (bf16) and "
          f"{A100.evaluate / 1e12:.1f} TFLOP/s evaluation (fp32), {100 * evaluation / max(total, 1e-9):.0f}% of "
          f"it evaluation; longest chain {chain:.1f} h, so on G GPUs at least max({total:.1f}/G, {chain:.1f}) h")


def make_executor(args, store: Store, device: str):
    """(executor, how many runs it takes at a time)."""
    if getattr(args, "executor", "local") == "slurm":
        from effdata.study.slurm import slurm_executor  # noqa: PLC0415
        return slurm_executor(args, store.out_dir, device), args.max_parallel
    plan = local_plan(device, args.workers, args.threads)
    executor = LocalExecutor(store.out_dir, workers=plan.workers, threads_per_worker=plan.threads, home=args.home,
                             device=plan.device, gpus=list(plan.gpus))
    return executor, plan.workers


def main(argv: list[str] | None = None) -> int:
    began = time.monotonic()
    args = build_parser().parse_args(argv)
    if args.stop_after is not None and not args.stop_after > 0:
        print(f"effdata.run: --stop-after must be a positive number of seconds, got {args.stop_after:g}",
              file=sys.stderr)
        return 2
    deadline = None if args.stop_after is None else began + args.stop_after
    try:
        study = load_study(args.study)
        device = args.device or study.device
        pretrains = tuple(args.pretrain) if args.pretrain else study.pretrain.corpora
        out_dir = args.out or Path("runs") / study.name
        store = Store(out_dir)
        for source in args.reuse:
            if not Store(source).runs_dir.is_dir():
                raise StudyError(f"--reuse {source}: not a study directory (no runs/ in it)")
        runs = study_runs(study, pretrains)
        if not args.dry_run and getattr(args, "executor", "local") == "local":
            local_plan(device, args.workers)  # CUDA asked for and missing: stop now, before the data
        quiet_libraries()
        data = prepare_data(study, pretrains, args.home)
        for warning in check_plan(runs, data):
            print(f"effdata.run: warning: {warning}", file=sys.stderr)
        if args.dry_run:
            print_plan(runs, store, study, data, device)
            return 0
        with study_lock(out_dir):
            store.claim(study)
            for source in args.reuse:
                print(f"reused {len(store.adopt(source, runs))} finished runs from {source}", file=sys.stderr)
            if (note := sourced_pretraining_note(study, runs, store)) is not None:
                print(f"effdata.run: note: {note}", file=sys.stderr)
            executor, parallel = make_executor(args, store, device)
            if getattr(args, "executor", "local") == "local" and (
                    mix := precision_mix_warning(finished_dtypes(store), store, runs, local_precision(device))):
                print(f"effdata.run: warning: {mix}", file=sys.stderr)
            pretraining = ", ".join(pretrains) if study.pretrained_sizes else "none, from scratch only"
            print(f"study {study.name}: {len(runs)} runs in {out_dir} (pretraining: {pretraining}; "
                  f"{parallel} at a time)", file=sys.stderr)
            outcome = schedule(store, runs, executor, max_parallel=parallel, estimate=cost_model(study, data).flops,
                               progress=args.progress, order=args.order, deadline=deadline)
            table = store.write_table()
    except KeyboardInterrupt:
        print("effdata.run: interrupted; finished runs are kept, run the same command to resume",
              file=sys.stderr)
        return 130
    except StudyError as exc:
        print(f"effdata.run: {exc}", file=sys.stderr)
        return 2
    except (CorpusError, DataError) as exc:
        # Missing sources, unknown corpora: their message says what to do.
        print(f"effdata.run: {exc}", file=sys.stderr)
        return 2
    print(f"{len(outcome.done)} runs done now, {len(outcome.skipped)} done before, "
          f"{len(outcome.failed)} failed, {len(outcome.blocked)} blocked, {len(outcome.deferred)} not started "
          f"(--stop-after); results table: {table}", file=sys.stderr)
    for run_id, why in {**outcome.failed, **outcome.blocked}.items():
        print(f"  {run_id}: {why}", file=sys.stderr)
    if not args.no_analysis:
        # a [sweep] study's table gets the sweep analysis, which reads no pretraining by count
        run_analysis(table, out_dir, pretrains, () if study.sweep else study.pretrain.checkpoint_tokens)
    return 0 if outcome.ok else 1


def finished_dtypes(store: Store) -> dict[str, str]:
    """The precision each finished run computed in (its record's `dtype`), by run id."""
    return {r["run_id"]: r["metrics"]["dtype"] for r in store.records()
            if r["status"] == "ok" and (r.get("metrics") or {}).get("dtype")}


def local_precision(device: str):
    """(precision setting, d_model) -> the precision a run computes in on this machine's `device`."""
    import torch  # noqa: PLC0415

    from effdata.training.device import precision_name, precision_plan  # noqa: PLC0415
    resolved = torch.device(local_plan(device).device)
    return lambda precision, d_model: precision_name(*precision_plan(precision, resolved, d_model))


def precision_mix_warning(finished: dict[str, str], store: Store, runs: list[StudyRun], resolve) -> str | None:
    """Said when the runs left to do will compute in a precision that none of the finished ones did. Precision
    "auto" resolves on the machine that runs (bf16 only with fast bf16 matmul), so a study resumed or extended on
    another machine, or --reuse'd from one, mixes precisions, and nothing said so before the analysis: the
    twenty-sixth session's fp32 runs, compared with bf16 ones, put precision on the diagonal of a 2×2
    (analysis/cpu-fixed-tokens/four-layer/lr/PREDICTION21.md)."""
    todo, before = [r for r in runs if not store.is_done(r.run_id)], sorted(set(finished.values()))
    if not todo or not before:   # a fresh study, or nothing left: resolve (a matmul probe on CPU) is not called
        return None
    here = sorted({resolve(r.spec.settings.precision, r.spec.shape.d_model) for r in todo})
    if set(here) <= set(before):
        return None
    return (f"this study's {len(finished)} finished runs computed in {', '.join(before)}, and its {len(todo)} runs "
            f"left would compute in {', '.join(here)} on this machine: its table will mix precisions (precision "
            "'auto' is bf16 only where bf16 matmul is fast); pin [train] precision to keep one")


def sourced_pretraining_note(study: Study, runs: list[StudyRun], store: Store) -> str | None:
    """A line when [pretrain] studies' pretraining runs are not finished here: this study would pretrain them again
    (the same runs), where `--reuse` of the folders that hold them copies them in."""
    if not study.pretrain_sources:
        return None
    todo = [r for r in runs if r.mode == "pretrain" and not store.is_done(r.run_id)]
    if not todo:
        return None
    folders = " ".join(f"runs/{source.name}" for source in study.pretrain_sources)
    return (f"{len(todo)} pretraining run(s) of [pretrain] studies are not in this folder and will be trained here; "
            f"to copy them in finished, --reuse the folders that hold them (by default: {folders})")


def run_analysis(table: Path, out_dir: Path, pretrains: tuple[str, ...], by_tokens: tuple[int, ...] = ()) -> None:
    """Analyse every pretraining distribution the study directory holds, this invocation's first; checkpoints at
    `by_tokens` (`[pretrain] checkpoint_tokens`) each read as one pretraining across sizes."""
    import pandas as pd  # noqa: PLC0415

    from effdata.analysis.core.checkpoints import by_tokens as checkpoints_by_tokens  # noqa: PLC0415
    from effdata.analyze import analyze  # noqa: PLC0415

    try:
        held = pd.read_csv(table)
        if by_tokens:
            held = checkpoints_by_tokens(held, by_tokens)
        finetuned = held.loc[held["mode"] == "finetune", "pretrain"].dropna().unique().tolist()
        compare = list(dict.fromkeys([*pretrains, *sorted(finetuned)]))
        analyze(table, out_dir / "analysis", compare=compare, by_tokens=by_tokens)
    except Exception as exc:  # noqa: BLE001  (training results are safe on disk; say why analysis failed)
        again = f"python -m effdata.analyze {table} --out {out_dir / 'analysis'}"
        if by_tokens:
            again += " --checkpoints-by-tokens " + " ".join(str(count) for count in by_tokens)
        print(f"effdata.run: analysis failed ({type(exc).__name__}: {exc}); rerun it with {again}", file=sys.stderr)
        return
    print(f"report: {out_dir / 'analysis' / 'REPORT.md'}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
