"""`--noise-from`: the run noise a replicated study measured, given to a one-seed study of the same setup
(effdata/analysis/core/given.py)."""
import json

import numpy as np
import pandas as pd
import pytest
from synthetic import REPLICATES_NOISE, make_cpu_runs

from effdata.analysis.core.given import read_given_noise
from effdata.analysis.core.table import TableError
from effdata.analysis.pipeline import analyze
from effdata.analyze import main


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    """The analysis of a table whose sizes are each pretrained three times, every run with three seeds: it measures
    the from-scratch noise per data size and a pretraining run's shared shift."""
    out = tmp_path_factory.mktemp("replicated")
    table = make_cpu_runs(seeds=3, loss_noise=REPLICATES_NOISE, pretraining_noise=0.01, seed=5)
    analyze(table, out, n_bootstrap=20, figures=False)
    return out


@pytest.fixture(scope="module")
def one_seed():
    """A one-seed table whose pretraining runs shift their fine-tunes by 1 %, which its grid's residuals cannot see."""
    return make_cpu_runs(seeds=1, loss_noise=REPLICATES_NOISE, pretraining_noise=0.01, seed=7)


@pytest.fixture(scope="module")
def analysed(replicated, one_seed, tmp_path_factory):
    """The one-seed table analysed alone and with the replicated study's noise: (results, folder) each."""
    out = tmp_path_factory.mktemp("one-seed")
    return {name: (analyze(one_seed, out / name, n_bootstrap=40, figures=False, **options), out / name)
            for name, options in (("alone", {}), ("given", {"noise_from": replicated}))}


def test_what_is_read_is_what_that_analysis_measured(replicated):
    fits = json.loads((replicated / "fits.json").read_text())
    given = read_given_noise(replicated)
    scratch = next(row for row in fits["noise_by_data"] if row["mode"] == "scratch")
    assert given.loss_noise == {s["data"]: s["sigma"] for s in scratch["sizes"]}
    assert len(given.loss_noise) == 6        # every data size of the from-scratch grid has seeds
    # The noise rises with D as the table was drawn (0.29 % at 1e4 to 1.1 % at 3e5 and beyond)
    assert given.loss_noise[1e4] < 0.006 < given.loss_noise[3e6]
    pooled = fits["pretraining_noise"][-1]
    assert pooled["pretrain"] == "all" and given.pretraining_noise == pooled["shared"]
    assert 0.004 < given.pretraining_noise < 0.02    # drawn at 1 %
    assert given.units == "chars" and read_given_noise(replicated / "fits.json") == given.__class__(
        **{**given.__dict__, "source": str(replicated / "fits.json")})


def test_given_from_a_file_is_the_same_analysis_as_given_by_flags(replicated, one_seed, analysed, tmp_path):
    given = read_given_noise(replicated)
    from_file, folder = analysed["given"]
    by_flags = analyze(one_seed, tmp_path, n_bootstrap=40, figures=False, loss_noise=given.loss_noise,
                       pretraining_noise=given.pretraining_noise, checkpoint_noise=given.checkpoint_noise)
    assert from_file["transfer"]["text"]["intervals"] == by_flags["transfer"]["text"]["intervals"]
    pd.testing.assert_frame_equal(pd.read_csv(folder / "effective.csv"), pd.read_csv(tmp_path / "effective.csv"))
    assert from_file["interval"]["noise_from"] == str(replicated) and "noise_from" not in by_flags["interval"]
    # The lone run's shared shift is given, so the warning that it is in no interval is not said.
    assert not any("one pretraining run" in w for w in from_file["warnings"])
    assert any("one pretraining run" in w for w in analysed["alone"][0]["warnings"])
    assert f"measured by {replicated}, --noise-from" in (folder / "REPORT.md").read_text()


def test_a_flag_given_beside_it_wins(replicated, one_seed, tmp_path):
    result = analyze(one_seed, tmp_path, n_bootstrap=20, figures=False, noise_from=replicated,
                     pretraining_noise=0.02)
    assert result["interval"]["pretraining_noise_given"] == 0.02
    by_data = {row["data"]: row["sigma"] for row in result["interval"]["noise"]["scratch"]["sigma_by_data"]}
    assert by_data == pytest.approx(read_given_noise(replicated).loss_noise)


def test_an_analysis_that_measured_no_noise_is_refused_in_one_line(one_seed, analysed, tmp_path, capsys):
    unseeded = analysed["alone"][1]
    with pytest.raises(TableError, match="measured no from-scratch noise per data size"):
        read_given_noise(unseeded)
    one_seed.to_csv(tmp_path / "runs.csv", index=False)
    for source in (unseeded, tmp_path / "nowhere"):
        assert main([str(tmp_path / "runs.csv"), "--noise-from", str(source), "--out", str(tmp_path / "out")]) == 2
        error = capsys.readouterr().err
        assert error.startswith("effdata.analyze: --noise-from") and error.count("\n") == 1
        assert not (tmp_path / "out").exists()


def test_an_analysis_in_other_units_is_refused(replicated, one_seed, tmp_path):
    with pytest.raises(TableError, match="in chars, this analysis's in tokens"):
        analyze(one_seed, tmp_path, units="tokens", noise_from=replicated)
    assert not any(tmp_path.iterdir())


def test_the_given_noise_widens_what_the_from_scratch_grid_alone_gave(analysed):
    """A check that can fail: the one-seed table's per-point intervals at its largest D_F widen once the measured
    noise is given (a run's shift included), where the grid's residuals could not see it."""
    widths = {name: pd.read_csv(folder / "effective.csv").query("d_t_lo > 0").pipe(
        lambda t: np.log(t["d_t_hi"] / t["d_t_lo"])[t["d_f"] == t["d_f"].max()].median())
        for name, (_, folder) in analysed.items()}
    assert widths["given"] > 1.2 * widths["alone"]
    assert analysed["alone"][0]["interval"]["noise"]["scratch"]["source"].startswith("no seeds")
