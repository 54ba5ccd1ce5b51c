"""The analysis pipeline reads its table once and hands the same rows to every section."""
from __future__ import annotations

import pandas as pd

from effdata.analysis import pipeline
from synthetic import make_budget_runs, make_runs


def _calls(monkeypatch, owner, name: str, record) -> list:
    """`owner.name` replaced by itself that also appends `record(first argument)` to the returned list."""
    seen: list = []
    real = getattr(owner, name)

    def counting(first, *args, **kwargs):
        seen.append(record(first))
        return real(first, *args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return seen


def _count_reads(monkeypatch) -> list[str]:
    """The path of each table read (pd.read_csv)."""
    return _calls(monkeypatch, pd, "read_csv", str)


def _count_loads(monkeypatch) -> list[int]:
    """The number of rows of each table `load_results` validates (the pipeline's one loader)."""
    return _calls(monkeypatch, pipeline, "load_results", len)


def test_a_table_is_read_once(tmp_path, monkeypatch):
    path = tmp_path / "results.csv"
    make_runs().to_csv(path, index=False)
    reads = _count_reads(monkeypatch)
    result = pipeline.analyze(path, tmp_path / "out", n_bootstrap=20, figures=False)
    assert reads == [str(path)]
    assert result["transfer"]


def test_a_compared_table_is_read_once_too(tmp_path, monkeypatch):
    this, other = tmp_path / "this.csv", tmp_path / "other.csv"
    make_budget_runs().to_csv(this, index=False)
    make_budget_runs(fixed_tokens=4e6).to_csv(other, index=False)
    reads, loads = _count_reads(monkeypatch), _count_loads(monkeypatch)
    pipeline.analyze(this, tmp_path / "out", n_bootstrap=20, figures=False, budget_compare=other)
    assert sorted(reads) == sorted([str(this), str(other)])
    # Validated once each too: before, the check and the fit each loaded both tables (four loads).
    assert sorted(loads) == sorted([len(pd.read_csv(this)), len(pd.read_csv(other))])
