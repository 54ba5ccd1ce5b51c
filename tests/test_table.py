"""effdata.table: reading, validation, set-aside rows, seed averaging."""
import numpy as np
import pandas as pd
import pytest
from synthetic import make_runs, scratch_runs

from effdata.analysis.core.table import (
    FLOPS_NOTE,
    NO_PRETRAIN_NOTE,
    TableError,
    load_results,
    read_table,
)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_reads_every_format_to_the_same_runs(tmp_path, suffix):
    df = make_runs()
    path = tmp_path / f"results{suffix}"
    {".csv": lambda: df.to_csv(path, index=False), ".parquet": lambda: df.to_parquet(path),
     ".jsonl": lambda: df.to_json(path, orient="records", lines=True)}[suffix]()
    table = load_results(path)
    assert len(table.runs) == len(df)
    assert table.warnings == []
    np.testing.assert_allclose(table.runs["loss"].sum(), df["loss"].sum())


def test_study_directory_is_read_through_results_csv(tmp_path):
    make_runs().to_csv(tmp_path / "results.csv", index=False)
    assert len(read_table(tmp_path)) > 0


def test_missing_required_column_is_a_clear_error():
    df = make_runs().drop(columns=["n_params"])
    with pytest.raises(TableError, match="n_params"):
        load_results(df)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(TableError, match="not found"):
        load_results(tmp_path / "nope.csv")
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(TableError, match="unknown table format"):
        load_results(tmp_path / "x.xlsx")


def test_bad_rows_are_set_aside_with_warnings():
    df = make_runs()
    df["error"] = None
    df.loc[0, ["status", "error"]] = ["failed", "diverged: loss is NaN"]
    df.loc[1, "loss"] = np.nan
    df.loc[2, "loss"] = np.inf
    pretrain_row = df.iloc[[3]].assign(mode="pretrain", pretrain="text", data_chars=np.nan)
    df = pd.concat([df, pretrain_row, df.iloc[[10]]], ignore_index=True)   # + an exact duplicate
    table = load_results(df)
    text = " | ".join(table.warnings)
    assert "status != ok" in text and "diverged" in text
    assert "non-finite" in text
    assert "exact duplicate" in text
    assert table.n_pretrain_rows == 1 and len(table.pretraining) == 1
    assert table.pretraining.loc[0, "mode"] == "pretrain"
    non_finite = "non-finite or non-positive loss/N/data"
    assert sorted(table.set_aside["reason"]) == sorted(["status not ok", non_finite, non_finite])
    assert len(table.runs) == len(make_runs()) - 3


def test_seeds_are_averaged_and_spread_kept():
    df = make_runs()
    again = df.assign(seed=1, loss=df["loss"] + 0.02)
    table = load_results(pd.concat([df, again], ignore_index=True))
    assert len(table.runs) == len(df)
    assert (table.runs["n_seeds"] == 2).all()
    np.testing.assert_allclose(table.runs["loss_std"], np.sqrt(2) * 0.01, rtol=1e-6)
    assert not any("averaged" in w for w in table.warnings)   # different seeds: nothing suspicious
    assert len(table.seed_runs) == 2 * len(df) and set(table.seed_runs["seed"]) == {0, 1}


def test_same_seed_repeats_are_averaged_with_a_warning():
    df = make_runs()
    again = df.iloc[:4].assign(loss=df["loss"].iloc[:4] + 0.01)
    table = load_results(pd.concat([df, again], ignore_index=True))
    assert any("same seed" in w for w in table.warnings)
    assert len(table.runs) == len(df)
    # The same seed fine-tuned from another pretraining run is another run, not a repeat.
    tuned = df[df["mode"] == "finetune"].iloc[:4]
    runs = [tuned.assign(pretrain_run=f"pretrain-{r}") for r in ("a", "b")]
    both = load_results(pd.concat([df[df["mode"] != "finetune"], *runs], ignore_index=True))
    assert not any("same seed" in w for w in both.warnings) and (both.runs["n_seeds"].max() == 2)


def test_external_table_without_mode_or_chars():
    df = make_runs()[["pretrain", "n_params", "data_tokens", "loss"]]
    table = load_results(df, units="chars")
    assert table.units == "tokens"
    assert any("tokens instead of chars" in w for w in table.warnings)
    assert set(table.runs["mode"]) == {"scratch", "finetune"}
    assert (table.scratch["pretrain"] == "none").all()


def test_published_points_with_only_flops_use_c_over_6n_tokens_and_say_so():
    points = scratch_runs()
    df = pd.DataFrame({"n_params": points["n_params"], "flops": 6 * points["n_params"] * points["data_tokens"],
                       "loss": points["loss"]})
    table = load_results(df)
    assert table.units == "tokens" and table.data_column == "data_tokens"
    np.testing.assert_allclose(np.sort(table.runs["data_tokens"]), np.sort(points["data_tokens"]), rtol=1e-12)
    assert table.notes == [FLOPS_NOTE, NO_PRETRAIN_NOTE] and table.warnings == []
    assert (table.runs["mode"] == "scratch").all() and table.finetuned.empty


def test_a_data_column_wins_over_flops():
    table = load_results(make_runs())
    assert table.data_column == "data_chars" and table.notes == []


def test_no_data_size_at_all_is_a_clear_error():
    with pytest.raises(TableError, match="no data_chars, data_tokens or flops"):
        load_results(pd.DataFrame({"n_params": [1e5], "loss": [3.0]}))


def test_a_point_of_uneven_seeds_from_several_pretraining_runs_is_the_mean_of_its_runs():
    df = make_runs()
    tuned = df[df["mode"] == "finetune"].iloc[:2]
    # Run a: three fine-tunes at each point (losses +0, +0.03, +0.06), run b: one (+0.3): runs' means +0.03 and +0.3.
    rows = [tuned.assign(seed=s, pretrain_run="a", loss=tuned["loss"] + 0.03 * s) for s in range(3)]
    rows.append(tuned.assign(seed=9, pretrain_run="b", loss=tuned["loss"] + 0.3))
    table = load_results(pd.concat([df[df["mode"] != "finetune"], *rows], ignore_index=True))
    got = table.runs[table.runs["mode"] == "finetune"].sort_values("data_chars")["loss"].to_numpy()
    np.testing.assert_allclose(got, tuned.sort_values("data_chars")["loss"].to_numpy() + (0.03 + 0.3) / 2)
    assert (table.runs.loc[table.runs["mode"] == "finetune", "n_seeds"] == 4).all()
    # Even seeds (one per run, or all from one run) keep the plain mean, to the bit.
    even = pd.concat([df, df[df["mode"] == "finetune"].assign(seed=1, loss=lambda d: d["loss"] * 1.01)], ignore_index=True)
    plain = even.groupby(["pretrain", "mode", "n_params", "data_chars"])["loss"].mean()
    runs = load_results(even).runs.set_index(["pretrain", "mode", "n_params", "data_chars"])["loss"]
    assert (runs.reindex(plain.index) == plain).all()


def test_a_checkpoints_name_is_its_runs_and_its_checkpoint():
    from effdata.analysis.core.table import checkpoint_of, root_of

    assert (root_of("text+code@10tpp"), checkpoint_of("text+code@10tpp")) == ("text+code", "10tpp")
    assert (root_of("text"), checkpoint_of("text")) == ("text", "")
    assert root_of("pretrain-text-w7k-s0-1234abcd@3tpp") == "pretrain-text-w7k-s0-1234abcd"
