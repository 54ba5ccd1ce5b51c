"""effdata.effective: D_E by monotone interpolation, extrapolation and the flags."""
import numpy as np
import pandas as pd
import pytest
from synthetic import TRUE_TEXT, A, B, l_inf, make_runs, scratch_loss, transferred

from effdata.analysis.core.curves import isotonic_decreasing
from effdata.analysis.core.effective import ScratchCurve, compute_effective
from effdata.analysis.core.table import load_results


def effective_of(df):
    return compute_effective(load_results(df))


def test_noiseless_d_t_recovered_by_interpolation():
    eff = effective_of(make_runs())
    table = eff.table
    truth = transferred(table["d_f"], table["n_params"], **TRUE_TEXT)
    # Tolerance: PCHIP on 16 scratch points over 4.5 decades reads D_T within 0.1%.
    assert np.max(np.abs(np.log(table["d_t"] / truth))) < 1e-3
    assert not table["extrapolated"].any() and not table["ossified"].any()
    np.testing.assert_allclose(table["fraction"], table["d_t"] / table["d_e"])
    np.testing.assert_allclose(table["multiplier"], table["d_e"] / table["d_f"])


def test_points_past_the_measured_range_are_extrapolated_with_the_law():
    # Scratch runs stop at 1e7, so most D_E (1e7..1e8) need the per-N law.
    df = make_runs(d_scratch=tuple(np.geomspace(1e4, 1e7, 8)))
    table = effective_of(df).table
    assert table["extrapolated"].sum() > len(table) // 2
    assert (table.loc[table["extrapolated"], "flags"].str.contains("extrapolated")).all()
    truth = transferred(table["d_f"], table["n_params"], **TRUE_TEXT)
    # The synthetic scratch curve *is* the law, so extrapolation is exact up to the fit (1%).
    assert np.max(np.abs(np.log(table["d_t"] / truth))) < 1e-2


def test_low_data_regime_uses_d_of_n():
    df = make_runs()
    eff = effective_of(df)
    n = 1e6
    expected = (A / (0.01 * l_inf(n))) ** (1 / B)   # L_inf + A D^-b = 1.01 L_inf
    assert eff.curve_at(n).d_low == pytest.approx(expected, rel=0.02)
    # Every synthetic D_F (<= 1e7) is far below 10% of D(N) (~1e12): all low data.
    assert eff.table["low_data"].all()


def test_low_data_flag_off_for_large_d_f():
    # Scratch L = 1 + 10 D^-0.5, so D(N) = (10 / 0.01)^2 = 1e6 and the low-data limit is 1e5.
    d = np.geomspace(1e3, 1e6, 7)
    rows = [{"pretrain": "none", "n_params": 1e5, "data_chars": x, "loss": 1 + 10 * x ** -0.5} for x in d]
    rows += [{"pretrain": "text", "n_params": 1e5, "data_chars": d_f, "loss": 1 + 10 * (3 * d_f) ** -0.5}
             for d_f in (1e4, 3e5)]
    eff = effective_of(pd.DataFrame(rows))
    assert eff.curve_at(1e5).d_low == pytest.approx(1e6, rel=0.01)
    assert eff.table["low_data"].tolist() == [True, False]
    # PCHIP through nodes half a decade apart: D_E within 3%.
    np.testing.assert_allclose(eff.table["multiplier"], 3.0, rtol=3e-2)


def test_ossified_points_are_kept_and_flagged():
    df = make_runs()
    ft = df.index[(df["mode"] == "finetune") & (df["n_params"] == 1e5)][-1]
    df.loc[ft, "loss"] = scratch_loss(1e5, df.loc[ft, "data_chars"]) + 0.02   # worse than scratch
    table = effective_of(df).table
    row = table[(table["n_params"] == 1e5) & (table["d_f"] == df.loc[ft, "data_chars"])].iloc[0]
    assert row["ossified"] and row["d_t"] < 0 and "ossified" in row["flags"]
    assert len(table) == (df["mode"] == "finetune").sum()


def test_loss_below_l_inf_is_beyond_reach():
    df = make_runs()
    ft = df.index[df["mode"] == "finetune"][0]
    df.loc[ft, "loss"] = l_inf(df.loc[ft, "n_params"]) * 0.9
    eff = effective_of(df)
    row = eff.table.iloc[0]
    assert row["beyond_reach"] and row["extrapolated"] and np.isinf(row["d_e"])
    assert any("beyond reach" in w for w in eff.warnings)


def test_pretrain_without_scratch_at_same_n_warns():
    df = make_runs()
    extra = df[(df["mode"] == "finetune")].iloc[:2].assign(n_params=5e5)
    eff = effective_of(pd.concat([df, extra], ignore_index=True))
    assert eff.table["no_scratch"].sum() == 2
    assert any("no from-scratch runs of the same N" in w for w in eff.warnings)


def test_non_monotone_scratch_curve_is_pooled_and_inverted():
    d = np.geomspace(1e5, 1e8, 7)
    loss = 1.0 + 50 * d ** -0.3
    loss[3] = loss[2] + 0.01      # a noisy bump: loss rises with data
    curve = ScratchCurve.from_points(1e6, d, loss)
    assert curve.pooled
    grid = np.geomspace(1e5, 1e8, 200)
    assert np.all(np.diff(curve.loss_at(grid)) <= 1e-12)
    target = float(curve.loss_at([3e6])[0])
    d_e, extrapolated = curve.invert(target)
    assert d_e == pytest.approx(3e6, rel=1e-6) and not extrapolated


def test_monotone_fit_matches_the_textbook_pool_adjacent_violators_example():
    fitted = isotonic_decreasing(np.array([[3.0, 1.0, 2.0, 0.5]]), np.ones(4))[0]
    np.testing.assert_allclose(fitted, [3.0, 1.5, 1.5, 0.5])
    weighted = isotonic_decreasing(np.array([[3.0, 1.0, 2.0, 0.5]]), np.array([1.0, 3.0, 1.0, 1.0]))[0]
    np.testing.assert_allclose(weighted, [3.0, 1.25, 1.25, 0.5])


def test_curve_is_continuous_where_extrapolation_takes_over():
    curve = ScratchCurve.from_points(1e6, np.geomspace(1e5, 1e8, 7), scratch_loss(1e6, np.geomspace(1e5, 1e8, 7)))
    for edge in (curve.d_min, curve.d_max):
        inside, outside = curve.loss_at([edge * (1 + 1e-9)])[0], curve.loss_at([edge * (1 - 1e-9)])[0]
        assert inside == pytest.approx(outside, abs=1e-6)
