"""Drift: the cheapest runs of each committed study table, re-run now, must come out bit for bit.

Issue 23: `make demo` was reported not to reproduce `analysis/quick/results.csv`, and no test would have
noticed, because none re-ran a committed run. This one does, for every table the current code is meant to
reproduce (`RERUN`): it plans the table's job file as `effdata.run` does, picks its cheapest from-scratch
run (smallest N, then smallest D, then seed) and, for the default demo, also its cheapest text pretraining
and that run's cheapest fine-tune, and runs them through the normal runner path (`prepare_data`, `Store`,
`LocalExecutor`, `schedule`: what `make demo` runs, one torch thread per worker) in a fresh home (corpora,
tokenizer and tokens built from this machine's sources, as on a fresh clone) and a fresh study directory.
`loss`, `steps` and `best_step` of every row the re-run writes (a pretraining's mid-run checkpoint rows
too) must equal the committed row's exactly (==). A change to training, evaluation, data or the tokenizer
that moves a committed number fails here the day it lands; then either the change is reverted or the
table is re-run and re-committed with it (and its entry moves to `KNOWN_TO_DIFFER` until it is).

Tables made by older code that is known to differ are in `KNOWN_TO_DIFFER` with the reason and the commit
that changed their numbers, and are not re-run (their job files still plan their run ids: tests/test_study.py).
`NOT_RE_RUN` holds tables whose cheapest runs were found to reproduce but are left out for time, each with
why. A committed table in none of the three fails `test_every_committed_table_is_accounted_for`.

What "bit for bit" rests on: CPU, one torch thread, bf16 eager, and the torch build every committed table ran
with, the Makefile's TORCH_PIN (2.13.0 CPU). Another CPU (other bf16 kernels) may differ in the last bits; the
message shows the difference. A CPU without fast bf16 matmul (no AVX512-BF16 or AMX: the AMD EPYC with AVX2 that ran
CI on 8 December, bf16 matmul at 1.3 GFLOP/s against 65 in fp32) resolves precision "auto" to fp32, another
computation than the committed bf16 rows': the test skips, saying so. Another torch differs by more and the test skips, saying so: under the H200's
torch 2.11.0 (Python 3.11 here) the cheapest runs moved by 0.06–1.6 % in loss and a length search kept 91
steps where 2.13.0 kept 61 (docs/notes/issue-21.md, "The H200's versions on CPU").

Seen failing, and how to see it again (docs/notes/issue-23-quick.md): set `TrainSettings.beta2` to 0.951
(a default no committed run id holds, so planning is unchanged) and run
`pytest tests/test_committed_runs.py -x -q`: it fails on the first table, cpu-v2, with `scratch-n25k-1e4c-s0`: loss
6.8237613466361635 committed, 6.823702656978036 now (-5.87e-05); with `-k quick-v3`, on all five rows, the
w25k text pretraining by +0.095 nats and its mid-run checkpoints by -0.11 and -0.12.

Where it runs: `make check-reports` (marked `reports`), beside the committed reports' regeneration, not `make test`;
CI runs both. It is a check of the committed tables as much as of the code, and its fresh home made it the suite's
largest test: 88, 38 and 13 CPU-s for quick-v4, cpu-v2 and cpu-seeds (139 of `make test`'s 920 CPU-s, measured
per test by benchmarks/cpu_per_test.py; the home's corpora, tokenizer and tokens 67 of quick-v4's
88). `make test` keeps a drift check of its own on tiny models (tests/test_train.py,
`test_same_numbers_as_before_the_split`). After a change to training, evaluation, data or the tokenizer, run
`make check-reports` too.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from effdata.spec import StudyRun
from effdata.study.study import load_study, study_runs

ROOT = Path(__file__).resolve().parent.parent
COMPARED = ("loss", "steps", "best_step")
PRETRAINS = ("text", "text+code")  # as the committed tables hold them; the runs picked need only their own


@dataclass(frozen=True)
class Table:
    job: str                   # the job file that made the table
    rows: str                  # the committed CSV the re-run rows are compared with
    pretraining: bool = False  # also the cheapest text pretraining and its cheapest fine-tune
    seed: int | None = None    # only this seed's runs (a table whose other seeds another table re-runs)


RERUN = {
    # v2's cosine schedule with early stopping (length_search off), the tuned LR rule.
    "cpu-v2": Table("jobs/cpu-v2.toml", "analysis/cpu-v2/results.csv"),
    # The default demo: the length search, the width ladder, budget pretraining with mid-run checkpoints and a
    # fine-tune (each of its runs is also the cpu-v4 study's run of the same id).
    "quick-v4": Table("jobs/quick.toml", "analysis/quick/results.csv", pretraining=True),
    # Extra seeds: seed 2's cheapest from-scratch run (v4's seed 0 is covered by quick-v4).
    "cpu-seeds": Table("jobs/cpu-seeds.toml", "analysis/cpu-seeds/results.csv", seed=2),
}

# Committed table -> (job file, why the current code makes other numbers, the commit that changed them).
KNOWN_TO_DIFFER = {
    "analysis/cpu-fixed-budget/results.csv": (
        "jobs/cpu-fixed-budget.toml",
        ("v1 ran before issue 13 changed evaluation (37b4ce3 fused chunked evaluation, 8be49c3 SDPA in the run's "
         "precision; merged in ea7ca30): its cheapest run, scratch-n25k-1e4c-s0, now has init_loss 7.6231228 against "
         "7.6231235 committed and loss 6.8170160 against 6.8170275 (same steps and best step); the same change moved "
         "the quick table's n25k init_loss from 7.621985 to 7.621982 when it was re-run (50d38e0). Not bisected "
         "between the two commits"),
        "ea7ca30"),
}

# Committed table -> why it is not re-run here although its cheapest runs reproduce.
NOT_RE_RUN = {
    "analysis/shape/results.csv": "its cheapest from-scratch run (s50k-l8, 3e4 characters) reproduced at 34636a3; left "
                                  "out for time (30 s here under load): the cpu-v2 table's run covers the same path",
    "analysis/lr/results.csv": "its cheapest from-scratch run (n25k, 1e5 characters, lr_scale 0.5) reproduced at "
                               "34636a3; left out for time (328 steps): the cpu-v2 table's run covers the same path",
    "analysis/lr/batch/results.csv": "its cheapest from-scratch run (n25k, 1e5 characters, batch 8) reproduced at "
                                     "34636a3; left out for time, as the lr table",
    "analysis/lr/warmup/results.csv": "its cheapest from-scratch run (n25k, 1e5 characters, 1 % warm-up) and its "
                                      "pretraining reproduced at 34636a3; left out for time, as the lr table",
    "analysis/cpu/results.csv": "the v4 study (jobs/cpu.toml): the quick-v4 table's 54 runs are its runs of the same ids "
                                "(copied, not re-run), so the quick-v4 re-run above covers it",
    "analysis/cpu-v3/results.csv": "the v3 study (jobs/cpu-v3.toml), made by the same code as the quick-v3 table that "
                                   "was re-run here until v4 replaced it (every one of the 66 rows they shared was equal)",
    "analysis/lr/search/results.csv": "issue 23's LR re-sweep (jobs/lr-search.toml + jobs/lr-search-low.toml), made by this "
                                      "code; its lr_scale 1 points are v4's settings and w100k on 1e5 characters equals "
                                      "v4's run bit for bit (5.477086): the quick-v4 re-run covers the same path",
    "analysis/lr/pretrain/results.csv": "issue 23's pretraining-LR check: v4's w100k rows beside jobs/lr-pretrain-*.toml's "
                                        "(their from-scratch rows are v4's); made by this code, not re-run here for time",
    **{f"analysis/cpu-ft-lr/{name}/results.csv": (
        "the fine-tuning LR check (jobs/cpu-ft-lr-*.toml, made by this code): its from-scratch and pretraining rows "
        "are v4's runs of the same ids (the quick-v4 re-run covers them); its fine-tunes differ from v4's in "
        "[finetune] lr_scale alone; not re-run here for time") for name in ("quarter", "eighth", "sixteenth", "double",
                                                                             "best", "sweep")},
    **{f"analysis/cpu-large-d/{name}results.csv": (
        "v4 extended to larger data (jobs/cpu-large-d*.toml, jobs/cpu-scratch-lr-*.toml; made by this code): its "
        "cheapest new from-scratch run trains on 3e5 characters for minutes, so it is not re-run here; the six re-runs "
        "of v4's 3e5 runs under its higher cap gave v4's losses bit for bit (analysis/cpu-large-d/NOTES.md)")
       for name in ("", "extension/", "scratch-lr-half/", "scratch-lr-quarter/", "best-scratch-lr/", "ft-lr-quarter/",
                    "ft-lr-eighth/", "ft-lr-double/", "best-lr/")},
    **{f"analysis/cpu-scratch-lr/{name}/results.csv": (
        "the from-scratch LR check on v4's range (jobs/cpu-scratch-lr-small-*.toml, made by this code): its "
        "pretraining and fine-tunes are v4's runs of the same ids, copied by --reuse (the quick-v4 re-run covers them); "
        "its from-scratch runs differ from v4's in [scratch] lr_scale alone (and, for ×0.125 on 3e5, max_steps, a "
        "compute limit only); not re-run here for time (the suite has about 40 s left of its 10 minutes)")
       for name in ("half", "quarter", "eighth", "double", "quadruple", "sweep", "best", "best-both")},
    **{f"analysis/cpu-pretrain-lr/{name}results.csv": (
        "v4 with every pretraining at ×0.5 its LR (jobs/cpu-pretrain-lr-half.toml, made by this code): its "
        "from-scratch runs are v4's (the quick-v4 re-run covers them); its pretrainings differ from v4's in "
        "[pretrain] lr_scale alone, its cheapest (w7k) takes a minute with its fine-tunes; not re-run here for time")
       for name in ("", "best/", "seed1/", "seed1-half/")},
    **{f"analysis/cpu-pretrain-seeds/{name}results.csv": (
        "v4 pretrained again with seeds 1 and 2 (jobs/cpu-pretrain-seeds*.toml, made by this code), joined to cpu-seeds: its "
        "from-scratch runs are cpu-seeds' (the quick-v4 re-run covers seed 0's settings), its pretrainings and "
        "fine-tunes differ from v4's in the seed alone; its cheapest pretraining (w7k) takes a minute with its "
        "fine-tunes; not re-run here for time") for name in ("", "seed1/", "seed2/")},
    "analysis/cpu-finetune-seeds/results.csv": (
        "analysis/cpu-pretrain-seeds's table with four more fine-tunes of each of v4's own pretraining runs at every "
        "point (jobs/cpu-finetune-seeds.toml, made by this code): they differ from v4's fine-tunes in the seed alone; "
        "not re-run here for time"),
    "analysis/start-loss/lr-double/results.csv": (
        "v4 with every text+code pretraining at ×2 its LR (jobs/cpu-pretrain-lr-double.toml, made by this code): its "
        "from-scratch runs are v4's (the quick-v4 re-run covers them); its pretrainings differ from v4's in "
        "[pretrain] lr_scale alone, as cpu-pretrain-lr's; not re-run here for time"),
    "analysis/cpu-pretrain-seeds5/results.csv": (
        "analysis/cpu-pretrain-seeds's table with v4 pretrained twice more, seeds 3 and 4, each fine-tuned at v4's "
        "points (jobs/cpu-pretrain-seeds34.toml, made by this code): they differ from v4's runs in the seed alone; "
        "not re-run here for time"),
    "analysis/cpu-replicates/results.csv": (
        "analysis/cpu-pretrain-seeds5's table with v4's from-scratch runs at seeds 1-4 where it lacked them "
        "(jobs/cpu-scratch-seeds.toml, jobs/cpu-scratch-seeds-w7k.toml) and every run of v4 with seed 5 "
        "(jobs/cpu-seed5.toml), made by this code: they differ from v4's runs in the seed alone (w7k on 3e5 "
        "characters also in its step cap); not re-run here for time"),
    **{f"analysis/cpu-w1m/{name}results.csv": (
        "v4 with w1m on top (jobs/cpu-w1m.toml, jobs/cpu-w1m-scratch-lr-*.toml, made by this code): its v4 rows are "
        "analysis/cpu's runs of the same ids, equal to the last digit (the quick-v4 re-run covers them); its cheapest "
        "new run, w1m from scratch on 1e4 characters, takes 26 s, which the suite (near its 10 minutes) cannot spare")
       for name in ("", "scratch-lr-half/", "scratch-lr-quarter/", "scratch-lr-eighth/", "best-scratch-lr/", "large-d/",
                    "to-1e6/")},
    "analysis/cpu-w200k-tokens/results.csv": (
        "v4's w200k pretrained on w500k's tokens (jobs/cpu-w200k-tokens.toml, made by this code): its from-scratch runs "
        "are v4's, copied by --reuse (the quick-v4 re-run covers them); its pretrainings differ from v4's in "
        "tokens_per_param alone and take 11 minutes each; not re-run here for time"),
    **{f"analysis/cpu-fixed-tokens/{name}results.csv": (
        "v4 with every size pretrained on w500k's tokens (jobs/cpu-fixed-tokens.toml, made by this code): its "
        "from-scratch runs and w500k's are v4's, copied by --reuse (the quick-v4 re-run covers them), its checkpoints' "
        "48 fine-tunes equal v4's to the last digit; its pretrainings differ from v4's in token_budget alone and take "
        "5-11 minutes each; not re-run here for time") for name in ("", "study/", "seed1/", "seed1-ladder/", "seed1-ladder/study/", "5m/", "5m/study/", "1m6/", "1m6/study/",
                                                   "30m/", "30m/study/", "30m/seed1/", "30m/seed1/study/", "10m/",
                                                   "10m/study/", "5m/seed1/", "5m/seed1/study/", "10m/seed1/",
                                                   "10m/seed1/study/", "1m6/seed1/", "1m6/seed1/study/", "10m/text/",
                                                   "10m/text/study/", "w1m/", "w1m/study/", "w1m/seed1/", "w1m/seed1/study/",
                                                   *(f"text-seed1/{c}/{t}" for c in ("1m6", "5m", "10m")
                                                     for t in ("", "study/")))},
    **{f"analysis/cpu-fixed-tokens/series/{name}results.csv": (
        "cpu-fixed-tokens' text+code pretrainings with checkpoints at six token counts (jobs/cpu-fixed-tokens-series.toml, "
        "made by this code): 72 of its fine-tunes equal the fixed-count studies' to the last digit "
        "(benchmarks/same_finetunes.py); its pretrainings take 4-33 minutes each; not re-run here for time")
       for name in ("", "study/", "seed1/study/", "30m/study/")},
    "analysis/cpu-fixed-tokens/one-layer/study/results.csv": (
        "one attention layer on cpu-fixed-tokens' tokens (jobs/cpu-fixed-tokens-one-layer.toml, made by this code): "
        "pretrainings of 8-15 minutes each; not re-run here for time"),
    **{f"analysis/cpu-fixed-tokens/four-layer/{name}results.csv": (
        "four attention layers, and the ladder's sizes at x2-x4 the LR, on cpu-fixed-tokens' tokens "
        "(jobs/cpu-fixed-tokens-four-layer*.toml, jobs/cpu-fixed-tokens-w200k-lr-double*.toml, "
        "jobs/cpu-fixed-tokens-w500k-lr-double-seed1.toml, jobs/cpu-fixed-tokens-w1m-lr-*.toml, "
        "jobs/cpu-fixed-tokens-ladder-lr-*.toml, jobs/cpu-fixed-tokens-small-lr-*.toml, "
        "jobs/cpu-fixed-tokens-w50k-w100k-lr-1.5.toml, jobs/cpu-fixed-tokens-ladder-lr-double-1e4.toml, "
        "jobs/cpu-fixed-tokens-w50k-four-layer*.toml, jobs/cpu-fixed-tokens-w50k*-seeds23.toml, "
        "jobs/cpu-fixed-tokens-*-warmup.toml, jobs/cpu-fixed-tokens-small-*fp32*.toml, made by this code): pretrainings of "
        "4-35 minutes each; not re-run "
        "here for time")
       for name in ("study/", "lr/half/", "lr/double/", "lr/double-seed1/", "lr/w200k-double/", "lr/ladder-double/",
                    "lr/ladder-quadruple/", "lr/ladder-triple/", "lr/w200k-double-seed1/", "lr/w500k-double-seed1/",
                    "lr/ladder-triple-seed1/", "lr/w1m-double/", "lr/w1m-triple/",
                    "lr/w1m-double-seed1/", "lr/w1m-triple-seed1/",
                    "lr/w100k-double/", "lr/w100k-triple/", "lr/w100k-double-seed1/", "lr/w100k-triple-seed1/",
                    "lr/small-half/", "lr/small-double/", "lr/small-triple/", "lr/w50k-w100k-1.5/",
                    "lr/ladder-double-1e4/", "lr/w50k-four-layer/", "lr/w50k-four-layer-double/",
                    "lr/w50k-four-layer-seeds23/", "lr/w50k-four-layer-double-seeds23/", "lr/w50k-seeds23/",
                    "lr/w50k-double-seeds23/", "lr/small-long-warmup/", "lr/w100k-double-long-warmup/",
                    "lr/small-double-short-warmup/", "lr/w100k-double-short-warmup/", "lr/small-fp32-short-warmup/",
                    "lr/small-double-fp32/")},
    **{f"analysis/cpu-fixed-tokens/four-layer/lr/dt/{name}results.csv": (
        "the LR studies' fine-tunes on 3e4 joined by benchmarks/pretrain_lr_table.py (its NOTES): every run "
        "is a committed table's above or the w1m studies', none re-run here")
       for name in ("", "seed0/", "seed1/", "w100k-w1m/", "ladder/", "ladder-1e4/", "ladder-1e4/seed0/",
                    "ladder-1e4/seed1/", "warmup/")},
    "analysis/cpu-fixed-tokens/heads/study/results.csv": (
        "w500k's width with 6 and 12 heads on cpu-fixed-tokens' tokens (jobs/cpu-fixed-tokens-heads.toml, made by this "
        "code): pretrainings of 21-34 minutes each; not re-run here for time"),
    **{f"analysis/cpu-fixed-tokens/heads/{name}/results.csv": (
        "w100k's width with 2 heads at x1 and x2 the LR on cpu-fixed-tokens' tokens "
        "(jobs/cpu-fixed-tokens-w100k-heads2*.toml, seeds 0-3, made by this code): pretrainings of 6-7 minutes each; not re-run "
        "here for time")
       for name in ("w100k-h2", "w100k-h2-double", "w100k-h2-seeds23", "w100k-h2-double-seeds23")},
    **{f"analysis/cpu-fixed-tokens/heads/{name}/results.csv": (
        "w200k's width with 3 heads and w50k's with 6, at x1 and x2 the LR on cpu-fixed-tokens' tokens "
        "(jobs/cpu-fixed-tokens-w200k-heads3*.toml, jobs/cpu-fixed-tokens-w50k-heads6*.toml, made by this code): "
        "pretrainings of 7-10 minutes each; not re-run here for time")
       for name in ("w200k-h3", "w200k-h3-double", "w50k-h6", "w50k-h6-double")},
    "analysis/cpu-fixed-tokens/heads/w1m-h8/results.csv": (
        "w1m's width with 8 heads at x2 the LR on cpu-fixed-tokens' tokens "
        "(jobs/cpu-fixed-tokens-w1m-heads8-lr-double.toml, made by this code): pretrainings of 27 minutes each; not "
        "re-run here for time"),
    **{f"analysis/cpu-fixed-tokens/min-steps/{name}/results.csv": (
        "the fixed-token studies' fine-tunes searched from 2 steps (jobs/cpu-fixed-tokens-min-steps-*.toml, made by "
        "this code): their pretrainings and from-scratch runs are the fixed-token studies' (copied by --reuse), the "
        "fine-tunes differ from theirs in [finetune] min_steps alone and need those pretrainings' checkpoints (5-33 "
        "minutes each); not re-run here for time") for name in ("1m6", "5m", "10m", "15m", "30m")},
    "analysis/dynamics/results.csv": "issue 22's short study (jobs/dynamics.toml), made by this code; not re-run here "
                                     "(left out for time, and not checked by hand)",
    "analysis/dynamics-batch/results.csv": "issue 22's batch experiment (jobs/dynamics-batch.toml), made by this code; "
                                           "not re-run here (left out for time, and not checked by hand)",
}


def cheapest_runs(runs: list[StudyRun], pretraining: bool) -> list[StudyRun]:
    """The cheapest from-scratch run; with `pretraining`, also the smallest size's text pretraining (what
    `make demo` pretrains) and its cheapest fine-tune on its final model."""
    def cost(run: StudyRun) -> tuple:
        return run.spec.shape.n_params, run.spec.data_chars or 0, run.spec.token_budget or 0, run.spec.seed

    picked = [min((r for r in runs if r.mode == "scratch"), key=cost)]
    if pretraining:
        pretrain = min((r for r in runs if r.mode == "pretrain" and r.pretrain == "text"), key=cost)
        finetunes = [r for r in runs if r.init_from_run == pretrain.run_id and r.init_from_checkpoint is None]
        picked += [pretrain, min(finetunes, key=cost)]
    return picked


def rerun(job: Path, picked: list[StudyRun], home: Path, out: Path) -> dict[str, dict[str, str]]:
    """Run `picked` of `job` as `effdata.run` does, in `home` and the study directory `out`; the rows of
    the results table it writes, by run id, as the CSV holds them."""
    from effdata.run import prepare_data  # torch: only in the test that trains
    from effdata.study.runner import LocalExecutor, schedule
    from effdata.study.store import Store

    study = load_study(job)
    prepare_data(study, tuple(dict.fromkeys(r.spec.corpus for r in picked if r.mode == "pretrain")), home)
    store = Store(out)
    store.claim(study)
    executor = LocalExecutor(out, workers=1, threads_per_worker=1, home=home, device="cpu")
    outcome = schedule(store, picked, executor, max_parallel=1, progress="plain")
    assert outcome.ok, f"re-run failed: {outcome.failed or outcome.blocked}"
    return read_rows(store.write_table())


def torch_pin() -> str:
    """The torch version `make` installs (the Makefile's TORCH_PIN), which made every committed table."""
    found = re.search(r"^TORCH_PIN \?= torch==(\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert found, "the Makefile has no TORCH_PIN ?= torch==VERSION line"
    return found.group(1)


def dtype_here(precision: str) -> str:
    """What a run of this precision setting computes in on this machine's CPU, as the records write it."""
    from effdata.run import local_precision
    return local_precision("cpu")(precision, 0)


def read_rows(table: Path) -> dict[str, dict[str, str]]:
    with open(table, newline="") as handle:
        return {row["run_id"]: row for row in csv.DictReader(handle)}


def differences(committed: dict[str, str], now: dict[str, str]) -> list[str]:
    """The compared columns that are not equal, as floats (a CSV may write 100 or 100.0 for one value)."""
    out = []
    for column in COMPARED:
        old, new = float(committed[column]), float(now[column])
        if old != new:
            out.append(f"{column} {old!r} committed, {new!r} now ({new - old:+.3g})")
    return out


def test_every_committed_table_is_accounted_for():
    """A new committed table must be re-run here, or listed with the reason it is not."""
    committed = {str(p.relative_to(ROOT)) for p in ROOT.glob("analysis/**/results.csv")}
    rerun_tables = {t.rows for t in RERUN.values() if t.rows.startswith("analysis/")}
    assert committed == rerun_tables | set(KNOWN_TO_DIFFER) | set(NOT_RE_RUN)
    for job, why, commit in KNOWN_TO_DIFFER.values():
        assert (ROOT / job).exists() and why and re.fullmatch(r"[0-9a-f]{7,40}", commit)
    for table in RERUN.values():
        assert (ROOT / table.job).exists() and (ROOT / table.rows).exists()


@pytest.fixture(scope="module")
def fresh_home(tmp_path_factory) -> Path:
    """One empty home for the module: built from the sources by the first re-run, as on a fresh clone."""
    return tmp_path_factory.mktemp("home")


@pytest.mark.slow
@pytest.mark.reports  # make check-reports, with the reports' regeneration: 139 of make test's 920 CPU-s (22nd session)
@pytest.mark.parametrize("name", list(RERUN))
def test_the_cheapest_committed_runs_come_out_bit_for_bit(name, fresh_home, tmp_path):
    import torch  # only in the test that trains
    pinned, running = torch_pin(), torch.__version__.split("+")[0]
    if running != pinned:
        pytest.skip(f"the committed tables ran on torch {pinned} (the Makefile's TORCH_PIN) and this is torch "
                    f"{running}: bit for bit holds on that build only")
    table = RERUN[name]
    committed = read_rows(ROOT / table.rows)
    runs = study_runs(load_study(ROOT / table.job), PRETRAINS)
    picked = cheapest_runs([r for r in runs if table.seed in (None, r.spec.seed)], table.pretraining)
    missing = [r.run_id for r in picked if r.run_id not in committed]
    assert not missing, f"{table.rows} has no row for {missing}: {table.job} no longer plans the table's runs"
    other = {r.run_id: (committed[r.run_id]["dtype"], here) for r in picked
             if (here := dtype_here(r.spec.settings.precision)) != committed[r.run_id]["dtype"]}
    if other:
        pytest.skip(f"{name}: this CPU runs {other} (committed, here): another computation, not drift (precision "
                    "'auto' is bf16 only where bf16 matmul is fast: AVX512-BF16 or AMX)")
    rows = rerun(ROOT / table.job, picked, fresh_home, tmp_path / "out")
    assert {r.run_id for r in picked} <= rows.keys()
    drift = {run_id: d for run_id in sorted(committed.keys() & rows.keys())
             if (d := differences(committed[run_id], rows[run_id]))}
    assert not drift, f"{name}: the re-run differs from {table.rows}: {drift}"
