"""python -m effdata.plan --compute: N_opt(C) under Kaplan's allocation beside Chinchilla's, on laws with known answers."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from effdata.analysis.dynamics.answers import (
    frontier,
    frontier_at_compute,
    frontier_exponent,
    loss_at_compute,
    optimal_at_loss,
)
from effdata.analysis.dynamics.law import LearningCurveFit
from effdata.analysis.dynamics.noise import NoiseScaleFit
from effdata.analysis.plan.allocation import (
    allocate,
    allocator,
    chinchilla_n_opt,
    kaplan_n_opt,
)
from effdata.analysis.plan.planner import read_fits
from effdata.plan import main

HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
# Kaplan et al. 2020's learning-curve and critical-batch exponents (§5), N_c and S_c of eq. 1.6, B* of eq. 1.4.
KAPLAN_CURVE = LearningCurveFit(True, steps="S_min", alpha_n=0.076, alpha_s=0.76, log_a=0.076 * math.log(8.8e13),
                                log_b=0.76 * math.log(2.1e3), sizes=[1e6, 1e9], step_range=(1e3, 1e5),
                                loss_range=(2.0, 4.0), batch_tokens=5e5)
KAPLAN_NOISE = NoiseScaleFit(True, b_star=2e8, alpha_b=0.21)


def _slope(f, low=1e18, high=1e22) -> float:
    return math.log(f(high) / f(low)) / math.log(high / low)


def test_chinchilla_closed_form_gives_the_papers_exponent_and_minimises_the_loss_at_fixed_compute():
    assert _slope(lambda c: chinchilla_n_opt(HOFFMANN, c)) == pytest.approx(0.28 / 0.62)     # 0.45
    c = 1e21
    n_opt = chinchilla_n_opt(HOFFMANN, c)
    g = (0.34 * 406.4 / (0.28 * 410.7)) ** (1 / 0.62)
    assert n_opt == pytest.approx(g * (c / 6) ** (0.28 / 0.62))
    n = np.geomspace(n_opt / 3, n_opt * 3, 2001)       # no N on a fine grid beats it at C = 6·N·D
    loss = 1.69 + 406.4 / n ** 0.34 + 410.7 / (c / (6 * n)) ** 0.28
    assert n[np.argmin(loss)] == pytest.approx(n_opt, rel=2e-3)


def test_kaplans_l_n_d_at_fixed_compute_has_exponent_alpha_d_over_the_sum():
    params = {"alpha_n": 0.076, "alpha_d": 0.103, "n_c": 6.4e13, "d_c": 1.8e13}
    assert _slope(lambda c: kaplan_n_opt(params, c)) == pytest.approx(0.103 / 0.179)
    c = 1e20
    n_opt = kaplan_n_opt(params, c)
    n = np.geomspace(n_opt / 3, n_opt * 3, 2001)
    loss = ((6.4e13 / n) ** (0.076 / 0.103) + 1.8e13 / (c / (6 * n))) ** 0.103
    assert n[np.argmin(loss)] == pytest.approx(n_opt, rel=2e-3)


def test_the_frontier_in_closed_form_is_kaplans_and_agrees_with_the_grid():
    exponent = frontier_exponent(KAPLAN_CURVE, KAPLAN_NOISE)
    # Kaplan §6: N_opt ∝ C^(α_C^min/α_N), α_C^min = 1/(1/α_S + 1/α_B + 1/α_N): 0.052 from these rounded exponents
    # (he quotes 0.054, so 0.71, beside the 0.73 fitted on his runs)
    alpha_c_min = 1 / (1 / 0.076 + 1 / 0.76 + 1 / 0.21)
    assert exponent == pytest.approx(alpha_c_min / 0.076) and exponent == pytest.approx(0.684, abs=1e-3)
    assert _slope(lambda c: frontier_at_compute(KAPLAN_CURVE, KAPLAN_NOISE, c).n_opt) == pytest.approx(exponent)
    for grid_point in frontier(KAPLAN_CURVE, KAPLAN_NOISE, [2.5, 3.0]):
        exact = optimal_at_loss(KAPLAN_CURVE, KAPLAN_NOISE, grid_point.loss)
        assert exact.c_min <= grid_point.c_min * (1 + 1e-9) and exact.c_min == pytest.approx(grid_point.c_min, rel=1e-3)
        at_c = frontier_at_compute(KAPLAN_CURVE, KAPLAN_NOISE, exact.c_min)
        assert at_c.loss == pytest.approx(grid_point.loss) and at_c.n_opt == pytest.approx(exact.n_opt)
        # the loss each N reaches with that compute is lowest at N_opt, and is the frontier's loss there
        losses = [loss_at_compute(KAPLAN_CURVE, KAPLAN_NOISE, exact.n_opt * f, exact.c_min) for f in (0.5, 1, 2)]
        assert losses[1] == pytest.approx(grid_point.loss) and losses[1] < min(losses[0], losses[2])


def test_the_frontier_needs_s_min_and_the_critical_batch():
    plain = LearningCurveFit(True, steps="S", alpha_n=0.1, alpha_s=0.5, log_a=1.0, log_b=1.0)
    with pytest.raises(ValueError, match="needs L\\(N, S_min\\) and a fitted B_crit"):
        frontier_exponent(plain, KAPLAN_NOISE)


def test_paper_fits_allocate_side_by_side_and_each_law_prefers_its_own_allocation():
    found = allocator(read_fits("paper:hoffmann"))
    by_key = {rule.key: rule for rule in found.rules}
    assert set(by_key) == {"kaplan", "chinchilla", "paper-kaplan", "paper-chinchilla"}
    assert by_key["chinchilla"].exponent == pytest.approx(0.28 / 0.62)
    assert any("no `dynamics` block" in why for why in found.missing)
    rows = allocate(found, [1e21])
    assert {r.rule.key: r.tokens / r.n for r in rows}["paper-chinchilla"] == pytest.approx(20)
    assert {r.rule.key: r.n for r in rows}["chinchilla"] == pytest.approx(chinchilla_n_opt(HOFFMANN, 1e21))
    for judge in ("kaplan", "chinchilla"):
        assert min(rows, key=lambda r: r.losses[judge]).rule.key == judge


def test_allocations_outside_the_fitted_ranges_say_so():
    rows = allocate(allocator(read_fits("paper:hoffmann")), [1e12])     # N far below Hoffmann et al.'s 7e7
    chinchilla = next(r for r in rows if r.rule.key == "chinchilla")
    assert any("below the chinchilla law's 7e7–1.6e10" in flag for flag in chinchilla.flags)


def test_cli_writes_the_allocation_and_its_figure(tmp_path, capsys):
    out = tmp_path / "alloc"
    assert main(["paper", "--compute", "1e20", "1e22", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "## N_opt ∝ C^a" in printed and "## C = 1e+22 FLOPs" in printed
    assert (out / "ALLOCATION.md").read_text().startswith("# Compute allocation for C = 1e+20, 1e+22 FLOPs")
    assert (out / "allocation.png").stat().st_size > 20_000 and (out / "allocation.svg").exists()


@pytest.mark.parametrize("case, args, message", [
    ("zero", ["--compute", "0"], "every compute C must be a positive number of FLOPs (got 0.0)"),
    ("negative", ["--compute=-1e12"], "every compute C must be a positive number of FLOPs (got -1000000000000.0)"),
    ("no law", ["--compute", "1e15"], ("these fits have no law to allocate compute with (Kaplan's frontier: this "
                                       "fits.json has no `dynamics` block")),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, case, args, message):
    fits = read_fits("paper")
    if case == "no law":
        fits = {"chinchilla": {"fitted": False, "reason": "not fitted"}}
    path = tmp_path / "fits.json"
    path.write_text(json.dumps(fits))
    out = tmp_path / "out"
    assert main([str(path), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("effdata.plan: ") and message in err
    assert not out.exists()
