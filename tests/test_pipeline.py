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


def test_compared_pretrainings_that_warmed_up_differently_are_named_and_only_they(tmp_path):
    # Two pretraining names at every size, each pretraining row with its warm-up: the same steps give no warning,
    # one size with two warm-ups gives one, in the report's warnings, naming that size alone (the check is exact:
    # no false alarm on equal warm-ups, and it must fire on a single differing size).
    runs = make_runs({"text": {"k": 3e3, "alpha": 0.2, "beta": 0.3}, "text-lr2": {"k": 4e3, "alpha": 0.2, "beta": 0.3}},
                     pretraining=True)
    pre = runs["mode"] == "pretrain"
    assert pre.sum() >= 6
    runs.loc[pre, "warmup_steps"] = 368

    def warnings(table):
        path = tmp_path / "results.csv"
        table.to_csv(path, index=False)
        return [w for w in pipeline.analyze(path, tmp_path / "out", n_bootstrap=0, figures=False,
                                            compare=["text", "text-lr2"])["warnings"] if "warmed up" in w]

    assert pipeline.compare_warmup_warning(runs[pre], ["text", "text-lr2"]) == []
    smallest = runs.loc[pre, "n_params"].min()
    size = runs.loc[pre & (runs["n_params"] == smallest), "size"].iloc[0]
    runs.loc[pre & (runs["n_params"] == smallest) & (runs["pretrain"] == "text"), "warmup_steps"] = 4
    found = warnings(runs)
    assert len(found) == 1 and f"at 1 size(s) ({size}: text 4, text-lr2 368)" in found[0]


def test_a_table_of_two_precisions_is_warned_about_and_one_precision_is_not(tmp_path):
    # precision "auto" resolves per machine (bf16 on CPUs with fast bf16 matmul, fp32 elsewhere): a table joining runs
    # of two machines says so in its report; one precision, or a table without the column, says nothing.
    runs = make_runs({"text": {"k": 3e3, "alpha": 0.2, "beta": 0.3}}, pretraining=True)

    def warnings(table):
        path = tmp_path / "results.csv"
        table.to_csv(path, index=False)
        return [w for w in pipeline.analyze(path, tmp_path / "out", n_bootstrap=0, figures=False)["warnings"]
                if "precisions" in w]

    assert warnings(runs) == []
    assert warnings(runs.assign(dtype="bf16")) == []
    mixed = runs.assign(dtype="bf16")
    mixed.loc[mixed["mode"] == "finetune", "dtype"] = "fp32"
    found = warnings(mixed)
    count = int((mixed["mode"] == "finetune").sum())
    assert len(found) == 1 and "computed in 2 precisions" in found[0] and f"fp32: {count}" in found[0], found
