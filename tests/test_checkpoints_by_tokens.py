"""benchmarks/checkpoints_by_tokens.py: checkpoints at one token count, named by their tokens per parameter at each
size, become one pretraining name across sizes (jobs/cpu-fixed-tokens-series.toml's analysis)."""

import pandas as pd
import pytest

from scripts import load_script

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
    out = load_script("checkpoints_by_tokens").by_tokens(_rows(), [2000])
    assert set(out["pretrain"]) == {"none", "c", "c@10tpp", "c@2.00k"}          # @20tpp and @15tpp were one size
    count = out[out["pretrain"] == "c@2.00k"].set_index("run_id")
    assert sorted(count.index) == ["f-a-c@20tpp", "f-b-c@10tpp~2.00k", "p-a-c@20tpp", "p-b-c@10tpp~2.00k"]
    assert set(count["size"]) == {"a", "b"}
    kept = out[out["pretrain"] == "c@10tpp"]
    assert sorted(kept["run_id"]) == ["f-a-c@10tpp", "f-b-c@10tpp", "p-a-c@10tpp", "p-b-c@10tpp"]
    assert out["run_id"].is_unique and (out["mode"] == "scratch").sum() == 1


def test_a_count_missing_at_a_size_is_refused(tmp_path, capsys):
    module = load_script("checkpoints_by_tokens")
    with pytest.raises(module.Refused, match="no checkpoint trained on 3,000 tokens at a"):
        module.by_tokens(_rows(), [2000, 3000])
    table = tmp_path / "t.csv"
    _rows().to_csv(table, index=False)
    assert module.main([str(table), "--tokens", "3000", "--out", str(tmp_path / "out.csv")]) == 2
    assert not (tmp_path / "out.csv").exists() and "3,000 tokens" in capsys.readouterr().err
    assert module.main([str(table), "--tokens", "2e3", "--out", str(tmp_path / "out.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "out.csv")) == 1 + 8 + 4
