"""Checkpoints at one token count, named by their tokens per parameter at each size, become one pretraining name
across sizes (`effdata.analysis.core.checkpoints.by_tokens`): the renaming itself, `analyze
--checkpoints-by-tokens` on a table with known laws (a check that can fail: were the counts' rows mixed up,
β would come back as the other count's), the refusals, and
benchmarks/checkpoints_by_tokens.py, which writes the renamed table."""

import numpy as np
import pandas as pd
import pytest

from effdata.analysis.core.checkpoints import by_tokens
from effdata.analysis.core.table import TableError
from effdata.analysis.pipeline import analyze
from effdata.analyze import main
from scripts import load_script
from synthetic import make_runs

N = {"a": 100, "b": 200}          # two sizes; every run trains on 6,000 tokens, with checkpoints on the way


def _rows():
    rows = [{"run_id": "s-a", "mode": "scratch", "pretrain": "none", "size": "a", "n_params": 100}]
    # (size, name, tokens): 2,000 tokens is @20tpp at a and @10tpp at b, where @10tpp is also a's 1,000
    for size, name, tokens in [("a", "c", 6000), ("b", "c", 6000), ("a", "c@10tpp", 1000), ("b", "c@10tpp", 2000),
                               ("a", "c@20tpp", 2000), ("b", "c@15tpp", 3000)]:
        n = N[size]
        rows.append({"run_id": f"p-{size}-{name}", "mode": "pretrain", "pretrain": name, "size": size,
                     "n_params": n, "tokens_per_param": tokens / n})
        rows.append({"run_id": f"f-{size}-{name}", "mode": "finetune", "pretrain": name, "size": size,
                     "n_params": n, "pretrain_tokens_per_param": tokens / n})
    return pd.DataFrame(rows)


def test_a_count_becomes_one_name_across_sizes():
    out = by_tokens(_rows(), [2000])
    assert set(out["pretrain"]) == {"none", "c", "c@10tpp", "c@2.00k"}          # @20tpp and @15tpp were one size
    count = out[out["pretrain"] == "c@2.00k"].set_index("run_id")
    assert sorted(count.index) == ["f-a-c@20tpp", "f-b-c@10tpp~2.00k", "p-a-c@20tpp", "p-b-c@10tpp~2.00k"]
    assert set(count["size"]) == {"a", "b"}
    kept = out[out["pretrain"] == "c@10tpp"]
    assert sorted(kept["run_id"]) == ["f-a-c@10tpp", "f-b-c@10tpp", "p-a-c@10tpp", "p-b-c@10tpp"]
    assert out["run_id"].is_unique and (out["mode"] == "scratch").sum() == 1


def test_a_count_missing_at_a_size_or_a_table_without_the_columns_is_refused():
    with pytest.raises(TableError, match="no checkpoint trained on 3,000 tokens at a"):
        by_tokens(_rows(), [2000, 3000])
    with pytest.raises(TableError, match="no pretrain_tokens_per_param column"):
        by_tokens(_rows().drop(columns=["pretrain_tokens_per_param"]), [2000])
    with pytest.raises(TableError, match="no token counts"):
        by_tokens(_rows(), [])


LAWS = {1e6: {"k": 1.9e4, "alpha": 0.18, "beta": 0.2}, 4e6: {"k": 1.9e4, "alpha": 0.18, "beta": 0.5}}


def _checkpoint_study() -> pd.DataFrame:
    """make_runs' exact laws, one per token count, each count's fine-tunes named as a study names them: by the
    count's tokens per parameter at their size (no name shared by two sizes)."""
    # three sizes and eight from-scratch lengths (not 5 and 16): the from-scratch laws' audit is most of the time
    rows = make_runs({f"c@{count:g}": law for count, law in LAWS.items()}, n_values=(1e5, 1e6, 1e7),
                     d_scratch=tuple(np.geomspace(1e5, 3e9, 8)))
    tuned = rows["mode"] == "finetune"
    count = rows.loc[tuned, "pretrain"].str.split("@").str[1].astype(float)
    tpp = count / rows.loc[tuned, "n_params"]
    rows.loc[tuned, "pretrain_tokens_per_param"] = tpp
    rows.loc[tuned, "pretrain"] = "c@" + tpp.map(lambda t: f"{t:g}") + "tpp"
    rows["tokens_per_param"] = np.nan
    rows["run_id"] = [f"r{i}" for i in range(len(rows))]
    return rows


def test_the_analysis_reads_each_count_as_one_pretraining_and_gets_its_law_back(tmp_path):
    rows = _checkpoint_study()
    fits = analyze(rows, tmp_path / "by", by_tokens=list(LAWS), n_bootstrap=20, figures=False)
    for count, law in LAWS.items():
        got = fits["transfer"][f"c@{count / 1e6:.2f}M"]
        assert got["fitted"] and got["beta"] == pytest.approx(law["beta"], abs=0.02), (count, got)
    assert "checkpoints at 1.00M, 4.00M tokens by count" in (tmp_path / "by" / "REPORT.md").read_text()


def test_the_option_on_the_command_line_and_its_refusal(tmp_path, capsys):
    table = tmp_path / "t.csv"
    _checkpoint_study().to_csv(table, index=False)
    assert main([str(table), "--checkpoints-by-tokens", "1e6", "3e6", "--out", str(tmp_path / "no"),
                 "--no-figures"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("effdata.analyze: --checkpoints-by-tokens: no checkpoint trained on 3,000,000 tokens")
    assert "\n" not in err and not (tmp_path / "no").exists()
    assert main([str(table), "--checkpoints-by-tokens", "1e6", "4e6", "--out", str(tmp_path / "yes"),
                 "--no-figures", "--bootstrap", "20"]) == 0
    assert (tmp_path / "yes" / "fits.json").exists()


def test_the_benchmark_writes_the_renamed_table_or_nothing(tmp_path, capsys):
    module = load_script("checkpoints_by_tokens")
    table = tmp_path / "t.csv"
    _rows().to_csv(table, index=False)
    assert module.main([str(table), "--tokens", "3000", "--out", str(tmp_path / "out.csv")]) == 2
    assert not (tmp_path / "out.csv").exists() and "3,000 tokens" in capsys.readouterr().err
    assert module.main([str(table), "--tokens", "2e3", "--out", str(tmp_path / "out.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "out.csv")) == 1 + 8 + 4


def test_a_study_run_analyses_its_checkpoints_by_count(tmp_path, monkeypatch):
    """`effdata.run`'s analysis at the end gets the study's `checkpoint_tokens` and compares the counts' names."""
    import effdata.analyze
    from effdata.run import run_analysis

    table = tmp_path / "results.csv"
    _checkpoint_study().to_csv(table, index=False)
    asked = {}
    monkeypatch.setattr(effdata.analyze, "analyze", lambda *args, **kwargs: asked.update(kwargs))
    run_analysis(table, tmp_path, ("c",), (1_000_000, 4_000_000))
    assert asked["by_tokens"] == (1_000_000, 4_000_000)
    assert asked["compare"] == ["c", "c@1.00M", "c@4.00M"]
