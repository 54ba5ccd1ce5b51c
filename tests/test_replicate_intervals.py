"""benchmarks/replicate_intervals.py: its table's arithmetic on replicates whose answers are known (the analyses
it runs are the pipeline's own, tested elsewhere)."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from scripts import load_script


def _laws(values, half_widths, pretrain="text"):
    return {seed: {pretrain: {"fitted": True, "beta": v, "intervals": {"beta": [v - h, v + h]}}}
            for seed, (v, h) in enumerate(zip(values, half_widths))}


def test_the_spread_the_implied_sd_the_intervals_that_hold_and_the_t_test():
    script = load_script("replicate_intervals")
    row = script.summary(_laws([0.4, 0.5, 0.6], [0.1645] * 3), "text", "beta").split(" | ")
    assert row[3:6] == ["0.1", "0.1", "3 of 3"]          # sd 0.1 between them, 0.1 implied, every interval holds
    p = stats.ttest_1samp([0.4, 0.5, 0.6], 0.0).pvalue
    assert row[6].startswith("0.5 [") and f"p = {script.sig(p)}" in row[6]
    narrow = script.summary(_laws([0.4, 0.5, 0.6], [0.01] * 3), "text", "beta").split(" | ")
    assert narrow[4:6] == ["0.00608", "1 of 3"]   # far narrower than the spread: only the middle one, by symmetry
    assert "fewer than two" in script.summary(_laws([0.4], [0.1]), "text", "beta")


def test_a_whole_replicate_has_every_run_mode():
    script = load_script("replicate_intervals")
    rows = pd.DataFrame({"mode": ["pretrain", "finetune", "scratch", "pretrain", "finetune", "scratch", "scratch"],
                         "seed": [0, 0, 0, 1, 1, 2, 1]})
    assert script.whole_seeds(rows) == [0, 1]
    assert script.given_options("--pretraining-noise 0.0055 --checkpoint-noise 0.0083") == pytest.approx(
        {"pretraining_noise": 0.0055, "checkpoint_noise": 0.0083})
    assert script.given_options("--loss-noise 1e4:0.003,3e5:0.011") == {"loss_noise": {1e4: 0.003, 3e5: 0.011}}
    assert script.given_options("--noise-from analysis/cpu-replicates") == {"noise_from": "analysis/cpu-replicates"}


def test_a_replicate_borrows_the_next_seeds_scratch_runs_below_a_size():
    script = load_script("replicate_intervals")
    rows = pd.DataFrame({"mode": ["scratch"] * 6 + ["finetune"] * 3, "seed": [0, 1, 2, 0, 1, 2, 0, 1, 2],
                         "data_chars": [1e4, 1e4, 1e4, 3e5, 3e5, 3e5, 1e4, 1e4, 1e4]})
    assert list(script.replicate_rows(rows, [0, 1, 2], 0, None).index) == [0, 3, 6]
    # seed 2 borrows seeds 0 and 1 (wrapping round), on 1e4 only
    assert list(script.replicate_rows(rows, [0, 1, 2], 2, (2, 1e5)).index) == [0, 1, 2, 5, 8]


def test_per_point_compares_each_points_interval_with_the_spread_between_replicates():
    # Two points, four replicates: log D_E spread sd 0.1 at each; intervals implying 0.1 (a) and 0.05 (b).
    script = load_script("replicate_intervals")
    log_d_e = [-0.15, -0.05, 0.05, 0.15]
    scale = 0.1 / pd.Series(log_d_e).std()
    rows = [{"pretrain": "text", "n_params": 1e5, "d_f": d_f, "d_e": 1e5 * np.exp(scale * x), "d_t": np.nan,
             "d_e_lo": 1e5 * np.exp(scale * x - half), "d_e_hi": 1e5 * np.exp(scale * x + half)}
            for d_f, half in ((1e4, 0.1 * 1.645), (3e4, 0.05 * 1.645)) for x in log_d_e]
    table = script.per_point(pd.DataFrame(rows), ["text"]).splitlines()
    assert table[2].startswith("| text | 2 | 0.1 | 0.075 | 0.75 (0.625–0.875) |")
    assert len(script.per_point(pd.DataFrame(rows[:3] + rows[4:7]), ["text"]).splitlines()) == 2   # < 4 replicates
    assert script.per_point_by_d_f(pd.DataFrame(rows), ["text"]).splitlines()[2:] == [
        "| text | 1e+04 | 1 | 1 (1–1) |", "| text | 3e+04 | 1 | 0.5 (0.5–0.5) |"]


def test_beta_propagated_from_each_points_spread():
    # Four points (N 1e4, 1e6 at D_F 1e4, 1e5), three replicates each, log D_T spread 0.1 at each. Least squares:
    # beta = (y(1e6) - y(1e4)) / ln(100) averaged over the two D_F, so its sd is 0.1 * sqrt(2 * 2) / (2 * ln 100) =
    # 0.1 / ln 100. A point with D_T <= 0 in two of four replicates (censored: two left) is left out.
    script = load_script("replicate_intervals")
    offsets = [-0.1, 0.0, 0.1]
    rows = [{"pretrain": "text", "n_params": n, "d_f": d_f, "d_t": 1e4 * np.exp(o)}
            for n in (1e4, 1e6) for d_f in (1e4, 1e5) for o in offsets]
    rows += [{"pretrain": "text", "n_params": 1e5, "d_f": 1e4, "d_t": d} for d in (5e3, 6e3, -1.0, -2.0)]
    assert script.propagated_beta(pd.DataFrame(rows), "text") == pytest.approx(0.1 / np.log(100))


def test_alpha_at_each_n_is_the_two_point_slope_and_a_dash_where_one_ossified():
    script = load_script("replicate_intervals")
    rows = [{"pretrain": "text", "size": size, "n_params": n, "d_f": d_f, "replicate": r,
             "d_t": 1e3 * (d_f / 1e4) ** alpha if alpha is not None else (-1.0 if d_f > 1e4 else 1e3)}
            for size, n, alphas in (("w7k", 6.6e3, (-1.0, None)), ("w25k", 2.5e4, (0.25, 0.5)))
            for r, alpha in enumerate(alphas) for d_f in (1e4, 3e4)]
    table = script.alpha_at_each_n(pd.DataFrame(rows), "text").splitlines()
    assert table[0] == "| replicate | w7k | w25k |"
    assert table[2:] == ["| 0 | -1 | 0.25 |", "| 1 | — | 0.5 |"]


def test_beta_with_each_n_left_out_is_averaged_over_the_replicates_that_have_it():
    script = load_script("replicate_intervals")
    without_large = [0.0, 0.1, 0.2, np.nan]          # the fourth replicate could not refit it
    laws = {seed: {"text": {"fitted": True, "beta": 0.9, "beta_left_out": {"w7k": b, "w500k": without_large[seed]}}}
            for seed, b in enumerate([0.4, 0.5, 0.6, 0.5])}
    laws[4] = {"text": {"fitted": False}}
    laws[5] = {"text": {"fitted": True, "beta": 0.3, "beta_left_out": {"w500k": 0.3}}}   # no w7k point: β is without it
    row = script.beta_left_out(laws, "text").splitlines()
    assert row[0] == "| pretraining | without w7k | without w500k |"     # tables from before the least-squares column
    t = lambda values: [script.sig(v) for v in stats.ttest_1samp(values, 0.0).confidence_interval(0.90)]  # noqa: E731
    assert row[2] == (f"| text | 0.46 [{', '.join(t([0.4, 0.5, 0.6, 0.5, 0.3]))}] (5) | "
                      f"0.15 [{', '.join(t([0.0, 0.1, 0.2, 0.3]))}] (4) |")
    laws[0]["text"]["beta_left_out"] = {script.LEAST_SQUARES: 0.3, **laws[0]["text"]["beta_left_out"]}
    assert script.beta_left_out(laws, "text").splitlines()[0] == (
        "| pretraining | every N, least squares | without w7k | without w500k |")
    assert script.beta_left_out(laws, "text").splitlines()[2].startswith("| text | — |")   # one replicate has it
