"""Synthetic results tables from known laws, for testing the analysis layer (no torch).

From scratch: L(N, D) = L_inf(N) + A * D^(-b), with L_inf(N) = 0.8 + 30 N^(-1/4).
Fine-tuned:   L_ft(N, D_F) = L_scratch(N, D_F + D_T), D_T = k D_F^alpha N^beta * exp(sigma * eps),
so the analyzer should read back D_T (up to the interpolation error) and fit k, alpha, beta.

The from-scratch law is the Chinchilla form E + A/N^alpha + B/D^beta with TRUE_SCRATCH (D in chars), so
the same tables test the Chinchilla fit and the planner; `scratch_runs` draws from-scratch tables with
noise on log loss, shaped like published points (no pretrain or mode column).
"""
from __future__ import annotations

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


def l_inf(n_params):
    return 0.8 + 30.0 * np.asarray(n_params, float) ** -0.25


def scratch_loss(n_params, d):
    return l_inf(n_params) + A * np.asarray(d, float) ** (-B)


def transferred(d_f, n_params, k, alpha, beta):
    return k * np.asarray(d_f, float) ** alpha * np.asarray(n_params, float) ** beta


def make_runs(laws: dict[str, dict] | None = None, n_values=N_VALUES, d_f_values=D_F_VALUES,
              d_scratch=D_SCRATCH, log_noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """A results table (DESIGN.md columns) with scratch runs and fine-tuned runs per law."""
    laws = {"text": TRUE_TEXT} if laws is None else laws
    rng = np.random.default_rng(seed)
    rows = []
    for n in n_values:
        for d in d_scratch:
            rows.append({"pretrain": "none", "mode": "scratch", "n_params": n, "data_chars": d,
                         "loss": float(scratch_loss(n, d))})
        for name, law in laws.items():
            for d_f in d_f_values:
                d_t = transferred(d_f, n, **law) * np.exp(log_noise * rng.standard_normal())
                rows.append({"pretrain": name, "mode": "finetune", "n_params": n, "data_chars": d_f,
                             "loss": float(scratch_loss(n, d_f + d_t))})
    df = pd.DataFrame(rows)
    df["data_tokens"] = np.round(df["data_chars"] / CHARS_PER_TOKEN)
    df["seed"], df["status"], df["size"] = 0, "ok", [f"n{n:.0e}" for n in df["n_params"]]
    tokens_seen = 20 * df["data_tokens"]
    df["flops"] = 6 * df["n_params"] * tokens_seen
    df["pretrain_flops"] = np.where(df["mode"] == "finetune", 6 * df["n_params"] * 1e9, 0.0)
    return df


def scratch_runs(n_values=N_VALUES, d_values=D_SCRATCH, log_noise: float = 0.0, seed: int = 0,
                 law: dict | None = None) -> pd.DataFrame:
    """From-scratch runs only, loss = law(N, D) * exp(log_noise * eps), D in characters and tokens."""
    law = TRUE_SCRATCH if law is None else law
    rng = np.random.default_rng(seed)
    n, d = (grid.ravel() for grid in np.meshgrid(np.asarray(n_values, float), np.asarray(d_values, float)))
    loss = (law["E"] + law["A"] * n ** -law["alpha"] + law["B"] * d ** -law["beta"]) * \
        np.exp(log_noise * rng.standard_normal(n.size))
    return pd.DataFrame({"n_params": n, "data_chars": d, "data_tokens": d / CHARS_PER_TOKEN, "loss": loss})
