"""Any training setup's table: from-scratch-only and flops-only tables (published points) analyse cleanly."""
import json

import numpy as np
import pandas as pd
import pytest

from effdata.analyze import analyze, main
from synthetic import CHARS_PER_TOKEN, TRUE_SCRATCH, scratch_runs


def test_from_scratch_only_table_gives_both_laws_and_no_transfer_section(tmp_path):
    result = analyze(scratch_runs(log_noise=0.005, seed=1), tmp_path, n_bootstrap=50, figures=False)
    assert result["warnings"] == [] and result["transfer"] == {} and result["transfer_ranges"] == {}
    assert result["chinchilla"]["fitted"] and result["kaplan"]["fitted"]
    assert result["chinchilla"]["beta"] == pytest.approx(TRUE_SCRATCH["beta"], abs=0.02)
    report = (tmp_path / "REPORT.md").read_text()
    assert report.count("no transfer section") == 1 and "## Transfer law" not in report
    assert "### Goodness of fit, side by side" in report
    assert "No `pretrain` column: every row is a from-scratch run" in report


def test_published_points_with_flops_only_from_the_command_line(tmp_path, capsys):
    points = scratch_runs(log_noise=0.005, seed=2)
    # Read off a paper's figure: model size, training compute, loss. Nothing else.
    pd.DataFrame({"n_params": points["n_params"], "flops": 6 * points["n_params"] * points["data_tokens"],
                  "loss": points["loss"]}).to_csv(tmp_path / "points.csv", index=False)
    assert main([str(tmp_path / "points.csv"), "--bootstrap", "30", "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    fits = json.loads((tmp_path / "out" / "fits.json").read_text())
    assert fits["units"] == "tokens" and fits["chinchilla"]["units"] == "tokens"
    assert fits["input_notes"][0].startswith("D = C / (6·N) tokens")
    # D recovered as tokens: B is the characters law's B rescaled, the exponents unchanged.
    assert fits["chinchilla"]["beta"] == pytest.approx(TRUE_SCRATCH["beta"], abs=0.02)
    assert fits["chinchilla"]["d_range"] == pytest.approx([1e5 / CHARS_PER_TOKEN, 3e9 / CHARS_PER_TOKEN], rel=1e-9)
    report = (tmp_path / "out" / "REPORT.md").read_text()
    assert report.count("D = C / (6·N) tokens") == 1 and report.count("no transfer section") == 1
    assert (tmp_path / "out" / "scratch_laws.png").stat().st_size > 10_000
    assert np.isfinite(fits["kaplan"]["alpha_d"])
