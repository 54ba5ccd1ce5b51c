"""The gradient noise scale: the estimator by hand, on linear regression with a known gradient covariance,
and measured during a run without changing its numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_train import data, run, settings, spec

from effdata.spec import SpecError, TrainSettings
from effdata.training.noise import estimate, measure


def test_the_two_batch_estimator_inverts_the_expected_norms():
    trace, grad_sq, b_small, b_big = 30.0, 2.0, 4, 16
    small, big = grad_sq + trace / b_small, grad_sq + trace / b_big   # E|G_B|² = |G|² + tr(Σ)/B
    assert estimate(small, big, b_small, b_big) == pytest.approx((trace, grad_sq))


def test_linear_regression_gives_back_its_known_noise_scale():
    """Loss ½(x·w − y)², x ~ N(0, I_d), y = x·w* + ε, ε ~ N(0, σ²). At w = w* + δ the per-example gradient
    x(x·δ − ε) has mean δ and covariance δδᵀ + (|δ|² + σ²)·I (Isserlis), so tr(Σ) = |δ|² + d(|δ|² + σ²),
    |G|² = |δ|² and B_simple = 1 + d(1 + σ²/|δ|²): 31 for d = 10, |δ| = 1, σ² = 2."""
    d, sigma2, batch, batches = 10, 2.0, 64, 400
    gen = torch.Generator().manual_seed(0)
    w_star = torch.randn(d, generator=gen, dtype=torch.float64)
    delta = torch.randn(d, generator=gen, dtype=torch.float64)
    delta /= delta.norm()
    w = torch.nn.Parameter(w_star + delta)

    def loss_fn(rows: torch.Tensor) -> torch.Tensor:
        x, y = rows[:, :d], rows[:, d]
        return 0.5 * ((x @ w - y) ** 2).mean()

    windows = []
    for _ in range(batches):
        x = torch.randn(batch, d, generator=gen, dtype=torch.float64)
        y = x @ w_star + np.sqrt(sigma2) * torch.randn(batch, generator=gen, dtype=torch.float64)
        windows.append(torch.cat([x, y[:, None]], dim=1))
    got = measure(loss_fn, [w], windows, torch.device("cpu"))
    assert got.grad_sq == pytest.approx(1.0, rel=0.1)
    assert got.trace == pytest.approx(1 + d * (1 + sigma2), rel=0.05)
    assert got.b_simple == pytest.approx(1 + d * (1 + sigma2), rel=0.1)
    assert w.grad is None   # measured beside training, never into .grad


def test_a_run_measuring_the_noise_scale_has_the_numbers_of_one_without(tmp_path):
    plain = run(spec(n_tokens=6000), data(6000), tmp_path, "plain")
    measured = run(spec(n_tokens=6000, settings=settings(noise_scale=2)), data(6000), tmp_path, "noise")
    assert (measured["evals"], measured["loss"]) == (plain["evals"], plain["loss"])
    points = measured["curve"]
    assert all(p["grad_sq"] is not None and p["noise_trace"] > 0 and p["noise_s"] > 0 for p in points)
    assert sum(p["b_simple"] is not None and p["b_simple"] > 0 for p in points) >= len(points) // 2
    assert "b_simple" not in plain["curve"][0]


def test_the_noise_scale_is_off_by_default_and_checked():
    assert TrainSettings().noise_scale == 0
    with pytest.raises(SpecError, match="noise_scale must be >= 0"):
        TrainSettings(noise_scale=-1)
    with pytest.raises(SpecError, match="noise_scale"):
        TrainSettings(noise_scale=2, batch_size=1)
