"""Stopping a sweep's losing run by forecast (`stop_by_forecast`, issue 22): the rule with known answers, its
margins against the committed curves, the siblings a run is set against, what the analysis does with a stopped
run, and a real tiny sweep where a learning rate 100× too small is stopped while the winner is not."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from effdata.analysis.core.table import load_results
from effdata.analysis.dynamics.forecast import own_errors
from effdata.analysis.dynamics.history import load_curves
from effdata.analysis.sweep.sweep import analyze_sweep_table
from effdata.forecast import MARGINS, margin_at, own_forecast, stop_check
from effdata.spec import SpecError, TrainSettings
from effdata.study.store import Store
from effdata.study.study import StudyError, study_from_dict, study_runs

ROOT = Path(__file__).resolve().parent.parent
SWEPT = {"name": "t", "sizes": ["n25k"], "scratch": {"data_chars": [1e5, 1e6]}, "finetune": {"data_chars": [1e5]},
         "pretrain": {"corpora": ["text"], "token_budget": 200_000}, "train": {"stop_by_forecast": 0.5},
         "sweep": {"lr_scale": [0.5, 1, 2]}}

# L = 2 + 3·S^(−1/2), seen at steps 10..50 of a 100-step run: the forecast at the end is 2.3.
STEPS = np.arange(10, 51, 10)
CURVE = 2 + 3 * STEPS ** -0.5


# ----------------------------------------------------------------------------------------------
# The rule

def test_the_forecast_is_exact_on_a_noise_free_power_law_and_needs_four_points():
    assert own_forecast(STEPS, CURVE, 100) == pytest.approx(2.3, abs=1e-6)
    assert np.isnan(own_forecast(STEPS[:3], CURVE[:3], 100))


def test_the_margin_is_the_measured_one_at_or_below_the_fraction_seen():
    assert margin_at(0.2) is None
    assert [margin_at(f) for f in (0.25, 0.45, 0.5, 0.9)] == [0.14, 0.09, 0.05, 0.03]


@pytest.mark.parametrize("bar, stop", [(2.1, True), (2.2, False), (2.5, False)])
def test_a_run_stops_when_its_forecast_less_the_margin_is_above_the_best_sibling(bar, stop):
    check = stop_check(STEPS, CURVE, 100, seen=0.5, bar=bar)     # 2.3 × (1 − 0.05) = 2.185
    assert check.stop is stop
    assert (check.forecast_loss, check.forecast_margin, check.forecast_seen, check.forecast_bar) == \
        (pytest.approx(2.3, abs=1e-6), 0.05, 0.5, bar)


def test_the_forecast_of_the_best_is_never_above_the_best_seen():
    rising = np.array([3.0, 2.5, 2.6, 2.8, 3.0])                    # past its best: the fit is poor there
    check = stop_check(STEPS, rising, 100, seen=0.5, bar=2.4)
    assert check.forecast_loss <= 2.5 and not check.stop             # 2.5 × 0.95 < 2.4 is not above it


def test_no_check_before_the_first_measured_fraction_or_without_enough_points():
    assert stop_check(STEPS, CURVE, 100, seen=0.2, bar=1.0) is None
    assert stop_check(STEPS[:3], CURVE[:3], 100, seen=0.5, bar=1.0) is None


def test_the_margins_cover_the_forecast_errors_of_the_committed_runs():
    """MARGINS is the largest |error| of the own-curve forecast on the committed curves, rounded up: each covers
    the measurement and is within 0.01 of it (a padded or stale table fails)."""
    errors = pd.concat(own_errors(load_curves(ROOT / f"analysis/{name}/curves.csv",
                                              pd.read_csv(ROOT / f"analysis/{name}/results.csv")))
                       for name in ("dynamics", "dynamics-batch"))
    assert errors["run_id"].nunique() == 20
    largest = errors.groupby("fraction")["error"].apply(lambda e: e.abs().max())
    for fraction, margin in MARGINS:
        assert largest[fraction] <= margin < largest[fraction] + 0.01, (fraction, largest[fraction], margin)


# ----------------------------------------------------------------------------------------------
# The setting and the study

@pytest.mark.parametrize("settings, key", [({"stop_by_forecast": 0.1}, "stop_by_forecast"),
                                           ({"stop_by_forecast": 1.0}, "stop_by_forecast"),
                                           ({"stop_by_forecast": 0.5, "schedule": "wsd", "length_search": "branches"},
                                            "stop_by_forecast")])
def test_bad_values_are_one_line_errors_naming_the_key(settings, key):
    with pytest.raises(SpecError, match=key) as refused:
        TrainSettings(**settings)
    assert "\n" not in str(refused.value)


def test_a_study_without_a_sweep_cannot_stop_by_forecast():
    with pytest.raises(StudyError, match=r"\[train\] stop_by_forecast needs a \[sweep\]") as refused:
        study_from_dict({k: v for k, v in SWEPT.items() if k != "sweep"})
    assert "\n" not in str(refused.value)
    with pytest.raises(StudyError, match="stop_by_forecast cannot be swept"):
        study_from_dict({**SWEPT, "train": {}, "sweep": {"stop_by_forecast": [0, 0.5]}})


def test_siblings_share_everything_but_the_swept_setting():
    runs = [r for r in study_runs(study_from_dict(SWEPT)) if r.mode != "pretrain"]
    groups = {}
    for run in runs:
        groups.setdefault(run.sweep_group(), []).append(run.spec.settings.lr_scale)
    assert sorted(map(sorted, groups.values())) == [[0.5, 1, 2]] * 3      # scratch at 1e5 and 1e6, one fine-tune
    pre = next(r for r in study_runs(study_from_dict(SWEPT)) if r.mode == "pretrain")
    assert pre.sweep_group() is None


def test_the_rival_is_the_best_finished_sibling_not_one_stopped_by_forecast(tmp_path):
    store = Store(tmp_path)
    runs = study_runs(study_from_dict(SWEPT))
    for run in runs:
        store.write_run(run)
    scratch = sorted((r for r in runs if r.mode == "scratch" and r.spec.data_chars == 100_000),
                     key=lambda r: r.spec.settings.lr_scale)
    lr05, lr1, lr2 = scratch
    rival = store.rival_loss(lr1)
    assert rival() is None                                              # nothing finished yet
    store.write_record(lr2, "ok", metrics={"valid_loss": 4.0, "stop_reason": "forecast"})
    assert rival() is None                                              # stopped: not a finished sibling
    store.write_record(lr05, "failed", error="x")
    assert rival() is None
    store.write_record(lr05, "ok", metrics={"valid_loss": 4.5, "stop_reason": "epoch_budget"})
    assert rival() == 4.5
    other = next(r for r in runs if r.mode == "scratch" and r.spec.data_chars == 1_000_000)
    store.write_record(other, "ok", metrics={"valid_loss": 1.0})        # another data size: not a sibling
    assert rival() == 4.5
    assert store.rival_loss(next(r for r in runs if r.mode == "pretrain")) is None


# ----------------------------------------------------------------------------------------------
# The analysis

def _sweep_table(stopped_value: float | None) -> pd.DataFrame:
    """lr_scale 0.5 … 8 at one point; the loss lowest at 4 (5.0) but, when stopped_value is 4, that run was stopped."""
    values, losses = [0.5, 1, 2, 4, 8], [5.6, 5.3, 5.1, 5.0, 5.4]
    return pd.DataFrame({"run_id": [f"r{v}" for v in values], "status": "ok", "mode": "scratch", "pretrain": "none",
                         "n_params": 25_000, "data_chars": 1e5, "loss": losses, "sweep": "lr_scale",
                         "lr_scale": values,
                         "stop_reason": ["forecast" if v == stopped_value else "early_stop" for v in values]})


def test_a_stopped_run_is_never_a_sweeps_best_value():
    free = analyze_sweep_table(_sweep_table(None)).best.iloc[0]
    assert free["grid_best"] == 4 and 2 < free["best"] < 8
    best = analyze_sweep_table(_sweep_table(4.0))
    row = best.best.iloc[0]
    assert row["grid_best"] == 2 and row["best"] == 2 and not row["edge"]   # next to a stopped value: not refined
    assert any("stopped by forecast" in w for w in best.warnings)


def test_a_stopped_run_is_never_a_from_scratch_point():
    table = load_results(_sweep_table(4.0).drop(columns=["sweep"]))
    assert "r4" not in set(table.seed_runs["run_id"])
    assert list(table.set_aside["reason"]) == ["stopped by forecast"]


# ----------------------------------------------------------------------------------------------
# A real tiny sweep: lr_scale 1 against 0.01 (100× too small), one worker so that lr 1 finishes first

def _run_sweep(tmp: Path, corpora: dict, stop: bool, finetune_sizes: list[str] | None = None) -> pd.DataFrame:
    from effdata.run import main
    from studyfiles import write_study

    train = {"evals_per_run": 12, "patience": 10, "eval_tokens": 4096, **({"stop_by_forecast": 0.5} if stop else {})}
    study = write_study(tmp / f"s{int(stop)}.toml", corpora, sizes=["n25k"], scratch={"data_chars": [2e4]},
                        finetune={"data_chars": [2e4], **({"sizes": finetune_sizes} if finetune_sizes is not None else {})},
                        pretrain={"token_budget": 10_000}, train=train,
                        sweep={"lr_scale": [1, 0.01]})
    out = tmp / f"out{int(stop)}"
    assert main(["--study", str(study), "--out", str(out), "--home", str(tmp / "home"), "--workers", "1",
                 "--no-analysis"]) == 0
    return pd.read_csv(out / "results.csv").set_index("lr_scale", drop=False)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory, tiny_corpora):
    tmp = tmp_path_factory.mktemp("stop")
    # With the option off only the from-scratch pair is compared (a from-scratch-only study): its fine-tunes at lr 0.01
    # would run their whole length for nothing.
    return {"on": _run_sweep(tmp, tiny_corpora, True), "off": _run_sweep(tmp, tiny_corpora, False, finetune_sizes=[])}


@pytest.mark.slow
def test_the_absurd_learning_rate_is_stopped_by_forecast_and_the_winner_is_not(sweeps):
    table = sweeps["on"]
    scratch = table[table["mode"] == "scratch"]
    slow, good = scratch.loc[0.01], scratch.loc[1.0]
    assert slow["stop_reason"] == "forecast" and slow["steps"] < slow["total_steps"]
    assert slow["forecast_seen"] >= 0.5 and slow["forecast_margin"] == margin_at(slow["forecast_seen"])
    assert slow["forecast_bar"] == pytest.approx(good["valid_loss"])
    assert slow["forecast_loss"] * (1 - slow["forecast_margin"]) > slow["forecast_bar"]
    stopped = table[table["stop_reason"] == "forecast"]
    assert set(stopped["lr_scale"]) == {0.01}                         # a winner is never stopped
    points = table[table["mode"] != "pretrain"].reset_index(drop=True)
    assert (points.loc[points.groupby("mode")["valid_loss"].idxmin(), "lr_scale"] == 1.0).all()


@pytest.mark.slow
def test_with_the_option_off_nothing_is_stopped(sweeps):
    off, on = sweeps["off"], sweeps["on"]
    assert not (off["stop_reason"] == "forecast").any()
    assert "forecast_loss" not in off or off["forecast_loss"].isna().all()
    slow_off = off[(off["mode"] == "scratch")].loc[0.01]
    slow_on = on[(on["mode"] == "scratch")].loc[0.01]
    assert slow_off["steps"] > slow_on["steps"]
