"""benchmarks/same_finetunes.py: fine-tunes two tables share, equal to the last digit or not."""
import pandas as pd

from scripts import load_script


def _table(path, name, losses):
    pd.DataFrame({"mode": "finetune", "pretrain": name, "seed": 0, "size": ["a", "b", "c"][:len(losses)],
                  "data_chars": 1e4, "loss": losses, "init_loss": 6.0}).to_csv(path, index=False)


def test_equal_and_unequal_fine_tunes_are_counted(tmp_path, capsys):
    module = load_script("same_finetunes")
    _table(tmp_path / "a.csv", "x@5M", [4.0, 4.5, 4.7])
    _table(tmp_path / "b.csv", "x", [4.0, 4.5 + 1e-12])
    assert module.main([f"{tmp_path}/a.csv:x@5M", f"{tmp_path}/b.csv:x"]) == 0
    out = capsys.readouterr().out
    assert "1 of 2 the same" in out and "all: 1 of 2 the same" in out      # c is in one table only
    assert module.main([f"{tmp_path}/a.csv:x@5M"]) == 2
