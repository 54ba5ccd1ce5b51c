"""`analyze --scratch-from`: a fine-tune-only table read on another table's from-scratch runs gives what the table
with both gives (a check that can fail: were the lent runs dropped, doubled or mislabelled, D_T would differ), and
a table that lends nothing, or a sweep, is one line and exit 2 with nothing written."""
from pathlib import Path

import pandas as pd
import pytest

from effdata.analysis.core.table import TableError
from effdata.analysis.pipeline import analyze
from effdata.analyze import main

QUICK = Path(__file__).resolve().parent.parent / "analysis" / "quick" / "results.csv"
FAST = {"n_bootstrap": 20, "figures": False}


def _split(tmp_path):
    rows = pd.read_csv(QUICK)
    tuned, scratch = tmp_path / "tuned.csv", tmp_path / "scratch.csv"
    rows[rows["mode"] != "scratch"].to_csv(tuned, index=False)
    rows[rows["mode"] == "scratch"].drop(columns=["mode"]).to_csv(scratch, index=False)   # an external table
    return rows, tuned, scratch


def test_a_fine_tune_only_table_read_on_another_tables_curves_gives_the_joined_tables_answer(tmp_path):
    rows, tuned, scratch = _split(tmp_path)
    whole = analyze(rows, tmp_path / "whole", **FAST)
    lent = analyze(tuned, tmp_path / "lent", scratch_from=[scratch], **FAST)
    alone = analyze(tuned, tmp_path / "alone", **FAST)
    fitted = {name: law for name, law in whole["transfer"].items() if law["fitted"]}
    assert fitted
    for name, law in fitted.items():
        assert lent["transfer"][name]["beta"] == pytest.approx(law["beta"])
        assert not alone["transfer"][name]["fitted"]
    a, b = (pd.read_csv(tmp_path / d / "effective.csv") for d in ("whole", "lent"))
    pd.testing.assert_series_equal(a["d_t"], b["d_t"])
    title = (tmp_path / "lent" / "REPORT.md").read_text().splitlines()[0]
    assert "from-scratch runs at N = " in title and str(scratch) in title


def test_a_table_that_lends_no_new_size_is_refused_before_anything_is_written(tmp_path, capsys):
    rows, tuned, scratch = _split(tmp_path)
    with pytest.raises(TableError, match="no from-scratch runs at a model size this table has none of"):
        analyze(rows, tmp_path / "out", scratch_from=[scratch], **FAST)
    assert main([str(QUICK), "--scratch-from", str(scratch), "--out", str(tmp_path / "cli"), "--no-figures"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("effdata.analyze: --scratch-from") and "\n" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cli").exists()
