"""effdata.analysis.core.curves: the batched curve numerics against scipy's one-curve-at-a-time answers."""
import numpy as np
import pytest
from scipy.interpolate import PchipInterpolator
from scipy.optimize import brentq, least_squares
from synthetic import CPU_N, CPU_SCRATCH, cpu_scratch_loss

from effdata.analysis.core.curves import (
    Laws,
    block_starts,
    fit_laws,
    invert_curves,
    isotonic_decreasing,
    pchip_slopes,
)


def textbook_pav(values, weights):
    """Pool-adjacent-violators for a non-increasing fit, the plain sequential way."""
    blocks = []
    for v, w in zip(values, weights):
        blocks.append([1, float(v), float(w)])
        while len(blocks) > 1 and blocks[-1][1] >= blocks[-2][1]:
            n2, v2, w2 = blocks.pop()
            n1, v1, w1 = blocks.pop()
            blocks.append([n1 + n2, (v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2])
    return np.repeat([v for _, v, _ in blocks], [n for n, _, _ in blocks]), len(blocks)


def test_isotonic_fit_equals_pool_adjacent_violators_on_random_rows():
    rng = np.random.default_rng(0)
    for _ in range(300):
        m = int(rng.integers(2, 12))
        y = np.cumsum(-rng.uniform(0, 0.3, m)) + 0.3 * rng.standard_normal(m)   # falling, with bumps
        w = rng.integers(1, 4, m).astype(float)
        expected, n_blocks = textbook_pav(y, w)
        fitted = isotonic_decreasing(y[None], w)
        np.testing.assert_allclose(fitted[0], expected, atol=1e-12)
        assert block_starts(fitted).sum() == n_blocks


def test_slopes_equal_scipy_pchip():
    rng = np.random.default_rng(1)
    for k in (2, 3, 6, 10):
        x = np.sort(rng.uniform(0, 10, (20, k)), axis=1)
        y = np.cumsum(-rng.uniform(0.01, 1, (20, k)), axis=1)
        slopes = pchip_slopes(x, y)
        for row in range(20):
            expected = PchipInterpolator(x[row], y[row]).derivative()(x[row])
            np.testing.assert_allclose(slopes[row], expected, rtol=1e-10, atol=1e-12)


def test_inversion_inside_equals_brentq_on_scipy_pchip():
    rng = np.random.default_rng(2)
    d = np.array(CPU_SCRATCH)
    loss = cpu_scratch_loss(1e5, d) * (1 + 0.01 * rng.standard_normal((40, len(d))))
    targets = rng.uniform(cpu_scratch_loss(1e5, 2e6), cpu_scratch_loss(1e5, 1.5e4), (40, 7))
    no_law = Laws(*(np.full(40, np.nan),) * 3, d_ref=1.0)
    d_e, extrapolated = invert_curves(np.log(d), loss, np.ones(len(d)), no_law, targets)
    for row in range(40):
        fitted = isotonic_decreasing(loss[row][None], np.ones(len(d)))[0]
        if len(np.unique(fitted)) < len(d):
            continue   # pooled rows: covered by test_effective's pooled-curve test
        curve = PchipInterpolator(np.log(d), fitted)
        for j, target in enumerate(targets[row]):
            if fitted[-1] <= target <= fitted[0]:
                root = brentq(lambda u: float(curve(u)) - target, np.log(d[0]), np.log(d[-1]), xtol=1e-13)
                assert d_e[row, j] == pytest.approx(np.exp(root), rel=1e-9) and not extrapolated[row, j]
            else:
                assert np.isnan(d_e[row, j]) and extrapolated[row, j]   # no law: nan outside


def test_law_fit_recovers_an_exact_law_and_beats_multistart_least_squares():
    d = np.geomspace(1e4, 1e8, 9)
    exact = fit_laws(d, (1.5 + 40 * d ** -0.3)[None])
    assert exact.l_inf[0] == pytest.approx(1.5, rel=1e-6) and exact.b[0] == pytest.approx(0.3, rel=1e-6)
    d = np.array(CPU_SCRATCH)
    rng = np.random.default_rng(3)
    for n in CPU_N:
        loss = cpu_scratch_loss(n, d) * (1 + 0.01 * rng.standard_normal(len(d)))
        laws = fit_laws(d, loss[None])
        ours = np.sum((laws.l_inf[0] + laws.a[0] * (d / laws.d_ref) ** -laws.b[0] - loss) ** 2)
        assert ours <= _least_squares_sse(d, loss) * (1 + 1e-9)


def _least_squares_sse(d, loss):
    """The previous fitter: bounded least_squares from six starts (the best cost)."""
    x = d / np.exp(np.mean(np.log(d)))
    upper = loss.min() * (1 - 1e-9)
    best = np.inf
    for l_start in (0.5 * upper, 0.9 * upper):
        for b_start in (0.1, 0.3, 0.8):
            result = least_squares(lambda p: p[0] + np.exp(p[1]) * x ** -p[2] - loss,
                                   [l_start, np.log(loss.mean() - l_start), b_start],
                                   bounds=([0, -30, 1e-3], [upper, 30, 5]))
            best = min(best, 2 * result.cost)
    return best


def test_outside_the_nodes_the_law_is_anchored_and_below_its_asymptote_is_infinite():
    d = np.geomspace(1e4, 1e6, 5)
    loss = (2.0 + 10 * d ** -0.25)[None]
    laws = Laws(l_inf=np.array([2.0]), a=np.array([np.nan]), b=np.array([0.25]), d_ref=1.0)
    targets = np.array([[2.0 + 10 * 1e7 ** -0.25, 2.0 + 10 * 1e3 ** -0.25, 1.9]])
    d_e, extrapolated = invert_curves(np.log(d), loss, np.ones(5), laws, targets)
    np.testing.assert_allclose(d_e[0, :2], [1e7, 1e3], rtol=1e-9)
    assert np.isinf(d_e[0, 2]) and extrapolated.all()
