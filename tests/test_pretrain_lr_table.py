"""benchmarks/pretrain_lr_table.py: several studies' pretrainings of one corpus renamed by the LR they were
pretrained at, their from-scratch runs kept once, other sizes and corpora left out."""
import pandas as pd

from scripts import load_script


def _table(path, pretrain_names, sizes=("w100k", "w200k")):
    rows = [{"run_id": f"scratch-{size}", "mode": "scratch", "pretrain": "none", "size": size} for size in sizes]
    rows += [{"run_id": f"finetune-{name}-{size}-{path.stem}", "mode": "finetune", "pretrain": name, "size": size}
             for name in pretrain_names for size in sizes]
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_default_renames_w100k_text_only(tmp_path):
    module = load_script("pretrain_lr_table")
    base = _table(tmp_path / "base.csv", ["text", "text@3tpp", "text+code"])
    half = _table(tmp_path / "half.csv", ["text", "text@3tpp", "text+code"])
    assert module.main([base, f"{half}=-lr0.5", "--out", str(tmp_path / "out.csv")]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert set(out["size"]) == {"w100k"}
    assert sorted(out["pretrain"]) == ["none", "text", "text-lr0.5", "text-lr0.5@3tpp", "text@3tpp"]


def test_another_corpus_and_sizes(tmp_path):
    module = load_script("pretrain_lr_table")
    base = _table(tmp_path / "base.csv", ["text", "text+code", "text+code@10tpp"])
    double = _table(tmp_path / "double.csv", ["text+code", "text+code@10tpp"])
    assert module.main([base, f"{double}=-lr2", "--sizes", "w100k", "w200k", "--corpus", "text+code",
                        "--out", str(tmp_path / "out.csv")]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert (out["pretrain"] == "none").sum() == 2   # each size's from-scratch run once, though both tables hold it
    assert sorted(out.loc[out["size"] == "w200k", "pretrain"]) == [
        "none", "text+code", "text+code-lr2", "text+code-lr2@10tpp", "text+code@10tpp"]


def test_final_models_and_one_data_size(tmp_path):
    module = load_script("pretrain_lr_table")
    rows = [{"run_id": "scratch", "mode": "scratch", "pretrain": "none", "size": "w100k", "data_chars": 3e4}]
    rows += [{"run_id": f"finetune-{name}-{chars:g}", "mode": "finetune", "pretrain": name, "size": "w100k",
              "data_chars": chars} for name in ("text", "text@3tpp") for chars in (1e4, 3e4)]
    pd.DataFrame(rows).to_csv(tmp_path / "base.csv", index=False)
    assert module.main([str(tmp_path / "base.csv"), "--final-only", "--finetune-chars", "3e4",
                        "--out", str(tmp_path / "out.csv")]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out["run_id"]) == ["scratch", "finetune-text-30000"]


def test_one_seed_keeps_every_from_scratch_run(tmp_path):
    module = load_script("pretrain_lr_table")
    rows = [{"run_id": "scratch", "mode": "scratch", "pretrain": "none", "size": "w100k", "seed": 0}]
    rows += [{"run_id": f"{mode}-s{seed}", "mode": mode, "pretrain": "text", "size": "w100k", "seed": seed}
             for mode in ("pretrain", "finetune") for seed in (0, 1)]
    pd.DataFrame(rows).to_csv(tmp_path / "base.csv", index=False)
    assert module.main([str(tmp_path / "base.csv"), "--seeds", "1", "--out", str(tmp_path / "out.csv")]) == 0
    assert list(pd.read_csv(tmp_path / "out.csv")["run_id"]) == ["scratch", "pretrain-s1", "finetune-s1"]


def test_a_missing_table_or_one_without_the_sizes_is_refused(tmp_path, capsys):
    module = load_script("pretrain_lr_table")
    base = _table(tmp_path / "base.csv", ["text"])
    out = tmp_path / "out.csv"
    assert module.main([base, "--sizes", "w9", "--out", str(out)]) == 2
    assert "no w9 text or from-scratch rows" in capsys.readouterr().err
    assert module.main([str(tmp_path / "missing.csv"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("pretrain_lr_table: error:")
    assert not out.exists()
