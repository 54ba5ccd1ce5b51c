"""core/memo.py: results remembered by their arguments' content, handed out as copies; the from-scratch laws and the
training dynamics use it (a table's second analysis in one process reads its from-scratch fits back:
tests/test_regenerate.py groups the reports that share from-scratch runs)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from effdata.analysis.core import memo
from effdata.analysis.laws.scaling import fit_kaplan
from synthetic import scratch_runs


def _counted():
    calls = []

    @memo.by_content(ignore=("progress",))
    def square(values: np.ndarray, scale: float = 1.0, progress: bool = False) -> dict:
        calls.append(progress)
        return {"square": values ** 2 * scale}
    return square, calls


def test_equal_content_is_computed_once_and_other_content_again():
    square, calls = _counted()
    first = square(np.arange(3.0))
    again = square(np.arange(3.0), progress=True)           # another array, the same bytes; progress not in the key
    assert len(calls) == 1 and np.array_equal(first["square"], again["square"])
    square(np.array([0.0, 1.0, np.nextafter(2.0, 3.0)]))   # the last bit of one value differs: another key
    square(np.arange(3.0), scale=2.0)
    assert len(calls) == 3


def test_a_caller_cannot_change_what_the_next_one_reads():
    square, _ = _counted()
    square(np.arange(3.0))["square"][:] = -1
    assert square(np.arange(3.0))["square"].tolist() == [0.0, 1.0, 4.0]


def test_turned_off_it_computes_every_call_and_the_store_is_bounded(monkeypatch):
    square, calls = _counted()
    memo.remember(False)
    try:
        square(np.arange(3.0)), square(np.arange(3.0))
    finally:
        memo.remember(True)
    assert len(calls) == 2
    monkeypatch.setattr(memo, "MAX_ENTRIES", 2)
    for k in range(3):
        square(np.arange(3.0) + k)
    square(np.arange(3.0))                                   # the oldest was dropped: computed again
    assert len(calls) == 2 + 3 + 1


def test_a_from_scratch_fit_read_back_is_the_same_fit_with_the_same_warnings():
    scratch = scratch_runs(log_noise=0.01, seed=11)
    first, again = fit_kaplan(scratch, n_bootstrap=20), fit_kaplan(scratch.copy(), n_bootstrap=20)
    assert first.to_dict() == again.to_dict() and first is not again
    too_few = scratch[scratch["n_params"] == scratch["n_params"].min()].head(3)
    said, said_again = [], []
    fit_kaplan(too_few, warnings=said), fit_kaplan(too_few, warnings=said_again)
    assert said == said_again and len(said) == 1 and said[0].startswith("Kaplan L(N, D):")


def test_two_tables_with_the_same_from_scratch_curves_share_their_dynamics(monkeypatch):
    """The learning-curve law and the forecasts read the from-scratch curves alone: a table with the same from-scratch
    runs, in another row order and with a fine-tune beside them, reads them back (one fit), and the study is the
    same; a table whose from-scratch curve differs in one evaluation is fitted again."""
    from effdata.analysis.dynamics import dynamics
    from effdata.analysis.dynamics.history import load_curves
    from test_dynamics import synthetic_curves

    fits = []
    real = dynamics.fit_learning_curve
    monkeypatch.setattr(dynamics, "fit_learning_curve", lambda *a, **k: fits.append(1) or real(*a, **k))
    results, curves = synthetic_curves(seed=5, seeds=1)
    first = dynamics.study_dynamics(load_curves(curves, results), "a", 50, 0)
    tune = results.iloc[[0]].assign(run_id="finetune-x", mode="finetune")
    more = pd.concat([results.iloc[::-1], tune])
    tuned = curves[curves["run_id"] == results["run_id"][0]].assign(run_id="finetune-x")
    more_curves = pd.concat([curves.iloc[::-1], tuned])
    second = dynamics.study_dynamics(load_curves(more_curves, more), "b", 50, 0)
    assert len(fits) == 1
    assert second.law.to_dict() == first.law.to_dict()
    pd.testing.assert_frame_equal(second.forecasts.table, first.forecasts.table)
    moved = curves.copy()
    moved.loc[moved.index[5], "valid_loss"] *= 1.001
    dynamics.study_dynamics(load_curves(moved, results), "c", 50, 0)
    assert len(fits) == 2
