"""Synthetic results tables from known laws, for testing the analysis layer (no torch).

Two shapes of study:

* `make_runs` (the original): from scratch L(N, D) = L_inf(N) + A * D^(-b), L_inf(N) = 0.8 + 30 N^(-1/4),
  five N from 1e5 to 1e7, from-scratch runs far past every D_E. The per-N law of effective.py has exactly
  this form, so even extrapolation is exact.
* `make_cpu_runs`: shaped like `jobs/cpu.toml` (the committed CPU study, v1 and v2): the same five N (25 K ... 559 K),
  from-scratch runs at 1e4 ... 3e6 characters, fine-tunes at 1e4 ... 3e5. Its from-scratch curve is Kaplan's
  L = [(N_c/N)^(a_N/a_D) + D_c/D]^a_D with constants chosen to reproduce the committed curves (loss 6.8 at
  1e4 characters, 4.3 at 3e6 for N = 25 K; 3.9 at 3e6 for N = 559 K). That is *not* of the per-N law's form,
  so D_E read off the law beyond 3e6 characters is biased, as in a real study.

Fine-tuned: L_ft(N, D_F) = L_scratch(N, D_F + D_T), D_T = k D_F^alpha N^beta * exp(log_noise * eps): the
analyzer should read back D_T and fit k, alpha, beta. `log_noise` is scatter of the grid point about the
law (the same for every seed of the point); `loss_noise` is per-run noise, loss * (1 + loss_noise * eps),
on from-scratch and fine-tuned runs alike (a number, or a function of N: `falling_noise`, or of mode and data size:
`NoiseByData`, `REPLICATES_NOISE`); `seeds` runs per
grid point.

The from-scratch law of `make_runs` is also the Chinchilla form E + A/N^alpha + B/D^beta with
TRUE_SCRATCH (D in chars), so the same tables test the Chinchilla fit and the planner; `scratch_runs`
draws from-scratch tables with noise on log loss, shaped like published points (no pretrain or mode column).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TRUE_TEXT = {"k": 1.9e4, "alpha": 0.18, "beta": 0.38}
TRUE_CODE = {"k": 2.1e5, "alpha": 0.096, "beta": 0.38}
A, B = 95.0, 0.3
N_VALUES = (1e5, 3e5, 1e6, 3e6, 1e7)
D_F_VALUES = tuple(np.geomspace(1e5, 1e7, 5))
D_SCRATCH = tuple(np.geomspace(1e5, 3e9, 16))
CHARS_PER_TOKEN = 3.5
TRUE_SCRATCH = {"E": 0.8, "A": 30.0, "alpha": 0.25, "B": A, "beta": B}   # scratch_loss in Chinchilla's terms

# jobs/cpu.toml: N of n25k ... n500k, data sizes in characters.
CPU_N = (25472, 56640, 100096, 200064, 559392)
CPU_SCRATCH = (1e4, 3e4, 1e5, 3e5, 1e6, 3e6)
CPU_D_F = (1e4, 3e4, 1e5, 3e5)
# Kaplan-form from-scratch curve fitted by hand to v1, analysis/cpu-fixed-budget (D in characters).
CPU_KAPLAN = {"alpha_d": 0.10, "ratio": 0.74, "n_c": 4.4e12, "d_c": 1.5e12}
# D_E/D_F from 1.4 to 8.7 and every D_E inside 1e4 ... 3e6 (the committed study's text+code is 1.5-7.5).
CPU_INSIDE = {"k": 8.0, "alpha": 0.45, "beta": 0.38}
# Strong transfer: D_E of 14 of the 20 grid points lies beyond the largest from-scratch run (3e6).
CPU_BEYOND = {"k": 400.0, "alpha": 0.45, "beta": 0.38}


def l_inf(n_params):
    return 0.8 + 30.0 * np.asarray(n_params, float) ** -0.25


def scratch_loss(n_params, d):
    return l_inf(n_params) + A * np.asarray(d, float) ** (-B)


def cpu_scratch_loss(n_params, d):
    """Kaplan's L(N, D) with CPU_KAPLAN: the from-scratch curve of `make_cpu_runs`."""
    c = CPU_KAPLAN
    n_term = (c["n_c"] / np.asarray(n_params, float)) ** c["ratio"]
    return (n_term + c["d_c"] / np.asarray(d, float)) ** c["alpha_d"]


def transferred(d_f, n_params, k, alpha, beta, alpha_per_decade: float = 0.0, beta_per_decade: float = 0.0,
                n_ref: float = 1e5):
    """D_T = k·D_F^α·N^β; with `alpha_per_decade`, α changes by that much per decade of N about `n_ref`; with
    `beta_per_decade`, so does β = d ln D_T / d ln N (ln D_T a parabola in ln N). Laws of other forms, for the
    audit's form checks (effdata/analysis/audit/form.py)."""
    n_params = np.asarray(n_params, float)
    alpha = alpha + alpha_per_decade * np.log10(n_params / n_ref)
    bend = np.exp(0.5 * beta_per_decade * np.log(10) * np.log10(n_params / n_ref) ** 2)
    return k * np.asarray(d_f, float) ** alpha * n_params ** beta * bend


def make_runs(laws: dict[str, dict] | None = None, n_values=N_VALUES, d_f_values=D_F_VALUES,
              d_scratch=D_SCRATCH, log_noise: float = 0.0, seed: int = 0, seeds: int = 1,
              loss_noise: float = 0.0, scratch=scratch_loss, pretraining: bool = False,
              pretraining_noise: float | None = None, checkpoint_noise: float | None = None) -> pd.DataFrame:
    """A results table (DESIGN.md columns): `seeds` rows per from-scratch and fine-tuned grid point.

    With `pretraining_noise` (a number), fine-tune seed s of (name, N) starts from its own pretraining run
    (column `pretrain_run`), whose seed multiplies all that run's fine-tuned losses by (1 + pretraining_noise * z).
    With `checkpoint_noise` too, names with one root (`text`, `text@10tpp`) are checkpoints of one run: z is drawn
    once per (root, N, seed), and each checkpoint's fine-tunes are multiplied by (1 + checkpoint_noise * c) more."""
    laws = {"text": TRUE_TEXT} if laws is None else laws
    rng = np.random.default_rng(seed)
    rows = []
    for n in n_values:
        for d in d_scratch:
            rows += _seed_rows({"pretrain": "none", "mode": "scratch", "n_params": n, "data_chars": d},
                               float(scratch(n, d)), seeds, loss_noise, rng)
        run_shifts: dict[str, np.ndarray] = {}
        for name, law in laws.items():
            shift, run = _pretraining_shift(name, seeds, pretraining_noise, checkpoint_noise, run_shifts, rng)
            for d_f in d_f_values:
                d_t = transferred(d_f, n, **law) * np.exp(log_noise * rng.standard_normal())
                point = _seed_rows({"pretrain": name, "mode": "finetune", "n_params": n, "data_chars": d_f},
                                   float(scratch(n, d_f + d_t)), seeds, loss_noise, rng)
                rows += point if shift is None else [{**row, "loss": row["loss"] * shift[row["seed"]],
                                                      "pretrain_run": f"{run}-{n:g}-s{row['seed']}"} for row in point]
    df = pd.DataFrame(rows)
    df["data_tokens"] = np.round(df["data_chars"] / CHARS_PER_TOKEN)
    df["status"], df["size"] = "ok", [f"n{n:.0e}" for n in df["n_params"]]
    tokens_seen = 20 * df["data_tokens"]
    df["flops"] = 6 * df["n_params"] * tokens_seen
    df["pretrain_flops"] = np.where(df["mode"] == "finetune", 6 * df["n_params"] * 1e9, 0.0)
    if pretraining:
        df = pd.concat([df, pretraining_rows(laws, n_values)], ignore_index=True)
    return df


def _pretraining_shift(name, seeds, pretraining_noise, checkpoint_noise, run_shifts, rng):
    """(each seed's factor on the fine-tunes of `name`, or None; the pretraining run's name): `make_runs`."""
    if pretraining_noise is None:
        return None, name
    if checkpoint_noise is None:      # each name its own run: the draws the tables made before checkpoints
        return 1 + pretraining_noise * rng.standard_normal(seeds), name
    root = name.split("@")[0]
    if root not in run_shifts:
        run_shifts[root] = pretraining_noise * rng.standard_normal(seeds)
    return 1 + run_shifts[root] + checkpoint_noise * rng.standard_normal(seeds), root


def falling_noise(largest: float = 0.02, smallest: float = 0.005, n_values=CPU_N):
    """sigma(N) falling as a power of N from `largest` at the smallest N to `smallest` at the largest, as
    analysis/cpu-seeds measured it (1.1% at 6.6 K to 0.24% at 500 K)."""
    slope = np.log(smallest / largest) / np.log(max(n_values) / min(n_values))
    return lambda n: float(largest * (n / min(n_values)) ** slope)


@dataclass(frozen=True)
class NoiseByData:
    """sigma of one run by its mode and data size, interpolated in log D and held beyond the ends."""

    scratch: dict[float, float]
    finetune: dict[float, float]

    def of(self, point: dict) -> float:
        table = self.finetune if point["mode"] == "finetune" else self.scratch
        sizes = sorted(table)
        return float(np.interp(np.log(point["data_chars"]), np.log(sizes), [table[d] for d in sizes]))


# The run noise analysis/cpu-replicates measured on v4 (five and six seeds of every run; docs/METHOD.md §6): from
# scratch, rising with D and not differing by N (Bartlett p = 0.12); a fine-tune noisier than a from-scratch run of
# its size, its pretraining run's shift included. Unmeasured sizes (from scratch beyond 3e5, fine-tunes beyond 3e4)
# hold the nearest measured value.
REPLICATES_NOISE = NoiseByData(scratch={1e4: 0.0029, 3e4: 0.0069, 1e5: 0.0076, 3e5: 0.011},
                               finetune={1e4: 0.011, 3e4: 0.015})
# The same noise with its structure: a fine-tune's 1.06 % at D_F = 1e4 and 1.41 % at 3e4 (analysis/cpu-replicates'
# Seeds section, six seeds) is its pretraining run's shift, 0.58 %, and its checkpoint's, 0.78 % (pooled over the
# table's 12 pairs; one checkpoint per run here, so one shift of sqrt(0.58² + 0.78²) = 0.97 % per run:
# REPLICATES_RUN_SHIFT), and the rest per point, sqrt(1.06² − 0.97²) = 0.42 % and sqrt(1.41² − 0.97²) = 1.02 %.
REPLICATES_SHARED_NOISE = NoiseByData(scratch=REPLICATES_NOISE.scratch, finetune={1e4: 0.0042, 3e4: 0.0102})
REPLICATES_RUN_SHIFT = 0.0097


def _seed_rows(point: dict, loss: float, seeds: int, loss_noise, rng) -> list[dict]:
    # No draw without noise, so the noiseless and log_noise-only tables keep their random stream.
    if isinstance(loss_noise, NoiseByData):
        loss_noise = loss_noise.of(point)
    elif callable(loss_noise):
        loss_noise = loss_noise(point["n_params"])
    noise = 1 + loss_noise * rng.standard_normal(seeds) if loss_noise else np.ones(seeds)
    return [{**point, "seed": s, "loss": loss * noise[s]} for s in range(seeds)]


def make_cpu_runs(laws: dict[str, dict] | None = None, seeds: int = 3, loss_noise: float = 0.01,
                  log_noise: float = 0.0, seed: int = 0, **kwargs) -> pd.DataFrame:
    """A study shaped like jobs/cpu.toml (see the module docstring); `CPU_INSIDE` by default."""
    return make_runs({"text": CPU_INSIDE} if laws is None else laws, n_values=CPU_N, d_f_values=CPU_D_F,
                     d_scratch=CPU_SCRATCH, log_noise=log_noise, seed=seed, seeds=seeds,
                     loss_noise=loss_noise, scratch=cpu_scratch_loss, **kwargs)


def pretraining_rows(names, n_values, tokens: float = 4e6) -> pd.DataFrame:
    """One pretraining run per (name, N): a fixed token budget, own loss falling with N."""
    rows = []
    for i, name in enumerate(sorted(names)):
        for n in n_values:
            rows.append({"pretrain": name, "mode": "pretrain", "n_params": n, "seed": 0, "status": "ok",
                         "size": f"n{n:.0e}", "tokens_seen": tokens, "data_chars": 1e8,
                         "pretrain_valid_loss": 3.5 + 0.1 * i + 20 * n ** -0.25,
                         "loss": 6.0 + 0.5 * i + 10 * n ** -0.25, "flops": 6 * n * tokens})
    return pd.DataFrame(rows)


def scratch_runs(n_values=N_VALUES, d_values=D_SCRATCH, log_noise: float = 0.0, seed: int = 0,
                 law: dict | None = None) -> pd.DataFrame:
    """From-scratch runs only, loss = law(N, D) * exp(log_noise * eps), D in characters and tokens."""
    law = TRUE_SCRATCH if law is None else law
    rng = np.random.default_rng(seed)
    n, d = (grid.ravel() for grid in np.meshgrid(np.asarray(n_values, float), np.asarray(d_values, float)))
    loss = (law["E"] + law["A"] * n ** -law["alpha"] + law["B"] * d ** -law["beta"]) * \
        np.exp(log_noise * rng.standard_normal(n.size))
    return pd.DataFrame({"n_params": n, "data_chars": d, "data_tokens": d / CHARS_PER_TOKEN, "loss": loss})


# Shapes at one N (a shape study): the same N, their own from-scratch curves (the deep one's 2% above the
# wide one's, so that a D_E read off the wrong curve is far off) and D_T = factor × CPU_INSIDE's law.
SHAPE_N = 200064.0
SHAPE_SCRATCH = (3e4, 1e5, 3e5, 1e6, 3e6)
SHAPE_D_F = (3e4, 1e5, 3e5)
TWO_SHAPES = {"wide": {"n_layer": 2, "d_model": 92, "scratch": 1.00, "transfer": 1.0, "pretraining": 4.0},
              "deep": {"n_layer": 8, "d_model": 44, "scratch": 1.02, "transfer": 3.0, "pretraining": 4.0}}


def make_shape_runs(shapes: dict | None = None, n_params: float = SHAPE_N, law: dict | None = None, seeds: int = 3,
                    loss_noise: float = 0.005, seed: int = 0, pretrain: str = "text") -> pd.DataFrame:
    """A shape study at one N: per shape, from-scratch runs, a pretraining run per seed (own loss
    `pretraining`, the same for every shape unless told) and fine-tunes with D_T = transfer × law."""
    shapes = TWO_SHAPES if shapes is None else shapes
    law = CPU_INSIDE if law is None else law
    rng = np.random.default_rng(seed)
    rows = []
    for name, s in shapes.items():
        scratch = lambda d, s=s: s["scratch"] * cpu_scratch_loss(n_params, d)  # noqa: E731
        shape = {"size": name, "n_layer": s["n_layer"], "d_model": s["d_model"], "n_params": n_params}
        for d in SHAPE_SCRATCH:
            rows += [{**shape, **r} for r in _seed_rows({"pretrain": "none", "mode": "scratch", "data_chars": d},
                                                        float(scratch(d)), seeds, loss_noise, rng)]
        for d_f in SHAPE_D_F:
            d_t = s["transfer"] * transferred(d_f, n_params, **law)
            rows += [{**shape, **r} for r in _seed_rows({"pretrain": pretrain, "mode": "finetune", "data_chars": d_f},
                                                        float(scratch(d_f + d_t)), seeds, loss_noise, rng)]
        for r in _seed_rows({"pretrain": pretrain, "mode": "pretrain", "data_chars": np.nan}, s["pretraining"], seeds,
                            loss_noise, rng):
            rows.append({**shape, **r, "pretrain_valid_loss": r["loss"], "loss": 8.0, "tokens_seen": 2e6})
    df = pd.DataFrame(rows)
    df["status"] = "ok"
    df["data_tokens"] = np.round(df["data_chars"] / CHARS_PER_TOKEN)
    return df


# Pretraining budgets (analysis/budget.py): D_T = k D_F^alpha N^beta P^gamma, P the pretraining tokens per
# parameter. k puts P = 30 on CPU_INSIDE's law, so every D_E of the budgets below (3 ... 157 tokens per
# parameter) lies inside the from-scratch range, D_E/D_F from 1.2 to 8.7.
TRUE_BUDGET = {"k": CPU_INSIDE["k"] / 30 ** 0.3, "alpha": 0.45, "beta": 0.38, "gamma": 0.3}
PER_PARAM = {"text": 30.0, "text@10tpp": 10.0, "text@3tpp": 3.0}    # jobs/cpu.toml v2
FIXED_TOKENS = 4e6                                                   # jobs/cpu-fixed-budget.toml v1


def make_budget_runs(law: dict | None = None, budgets: dict | None = None, fixed_tokens: float | None = None,
                     seeds: int = 1, loss_noise: float = 0.0, log_noise: float = 0.0, seed: int = 0,
                     own_column: bool = True, target: str | None = None) -> pd.DataFrame:
    """A CPU-shaped study of pretraining budgets: per name, P tokens per parameter (`budgets`, name -> P), or
    with `fixed_tokens` the same tokens at every N (P = fixed_tokens / N; `budgets` then names the
    distributions, values ignored). Pretraining rows carry tokens_seen; `own_column` adds the fine-tunes'
    `pretrain_tokens_per_param` (as v2 tables have; v1 tables lack it). `target` adds that column."""
    law = TRUE_BUDGET if law is None else law
    budgets = (PER_PARAM if fixed_tokens is None else {"text": None}) if budgets is None else budgets
    rng = np.random.default_rng(seed)
    rows = []
    for n in CPU_N:
        for d in CPU_SCRATCH:
            rows += _seed_rows({"pretrain": "none", "mode": "scratch", "n_params": n, "data_chars": d},
                               float(cpu_scratch_loss(n, d)), seeds, loss_noise, rng)
        for name, p in budgets.items():
            p = fixed_tokens / n if fixed_tokens is not None else p
            rows.append({"pretrain": name, "mode": "pretrain", "n_params": n, "seed": 0, "tokens_seen": p * n,
                         "loss": 6.0, "pretrain_valid_loss": 3.5 + 20 * (p * n) ** -0.25})
            for d_f in CPU_D_F:
                d_t = law["k"] * d_f ** law["alpha"] * n ** law["beta"] * p ** law["gamma"] * \
                    np.exp(log_noise * rng.standard_normal())
                point = {"pretrain": name, "mode": "finetune", "n_params": n, "data_chars": d_f}
                point.update({"pretrain_tokens_per_param": p} if own_column else {})
                rows += _seed_rows(point, float(cpu_scratch_loss(n, d_f + d_t)), seeds, loss_noise, rng)
    df = pd.DataFrame(rows)
    df["status"], df["size"] = "ok", [f"n{n / 1e3:.0f}k" for n in df["n_params"]]
    if target is not None:
        df["target"] = target
    return df


# A run's final model and a mid-run checkpoint of it (`text@10tpp`, half the transfer): make_runs' checkpoint_noise.
CHECKPOINT_LAWS = {"text": {"k": 8.0, "alpha": 0.45, "beta": 0.38}, "text@10tpp": {"k": 4.0, "alpha": 0.45, "beta": 0.38}}


def nested_runs(runs: int = 3, replicates: int = 4, shared: float = 0.01, interaction: float = 0.0,
                own: float = 0.01, seed: int = 0) -> pd.DataFrame:
    """A CPU-shaped table whose sizes are each pretrained `runs` times: run 0's fine-tunes `replicates` times at
    every point (seeds 0, 10, 11, ...: `[extra_seeds] pretraining = "shared"`), the others once. A fine-tune's loss is
    the truth times a shift per (run, N) (`shared`), one per (run, point) (`interaction`) and one per fine-tune
    (`own`)."""
    base = make_cpu_runs(seeds=1, loss_noise=0.0, seed=seed)
    rng = np.random.default_rng(seed)
    scratch, tuned = base[base["mode"] == "scratch"], base[base["mode"] == "finetune"]
    rows = []
    for n, point_rows in tuned.groupby("n_params"):
        shift = 1 + shared * rng.standard_normal(runs)
        for r in range(runs):
            for row in point_rows.to_dict("records"):
                cell = shift[r] * (1 + interaction * rng.standard_normal())
                for j in range(replicates if r == 0 else 1):
                    rows.append({**row, "seed": r if j == 0 else 9 + j, "pretrain_run": f"{row['pretrain']}-{n:g}-s{r}",
                                 "loss": row["loss"] * cell * (1 + own * rng.standard_normal())})
    return pd.concat([scratch, pd.DataFrame(rows)], ignore_index=True)
