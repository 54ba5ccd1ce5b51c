"""benchmarks/finetune_floor.py: the same fine-tunes from two shortest lengths, point by point (tables made here)."""
from __future__ import annotations

import pandas as pd

from scripts import load_script


def _table(path, rows):
    pd.DataFrame([{"mode": "finetune", "pretrain": "text+code", "size": size, "seed": 0, "data_chars": d,
                   "best_step": step, "best_is_first": first, "loss": loss} for size, d, step, first, loss in rows]
                 + [{"mode": "scratch", "pretrain": "none", "size": "w7k", "seed": 0, "data_chars": 1e4,
                     "best_step": 50, "best_is_first": False, "loss": 6.0}]).to_csv(path, index=False)
    return path


def test_it_counts_the_fine_tunes_held_at_the_old_floor_and_how_their_loss_moved(tmp_path, capsys):
    """Two held at 8 steps (one freed and 2 % better, one still held at the new floor), one free and 1 % worse: a
    check that can fail (the counts and medians are the table's, not a constant)."""
    old = _table(tmp_path / "old.csv", [("w7k", 1e4, 8, True, 5.0), ("w25k", 1e4, 8, True, 4.0),
                                        ("w7k", 3e4, 18, False, 4.5)])
    new = _table(tmp_path / "new.csv", [("w7k", 1e4, 4, False, 4.9), ("w25k", 1e4, 2, True, 4.0),
                                        ("w7k", 3e4, 15, False, 4.545)])
    assert load_script("finetune_floor").main([str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert "2 of 3 held at the old floor; 1 of them at the new one" in out
    assert "held at the old floor: median change in loss -1.00 %, median |change| 1.00 % (2 fine-tunes)" in out
    assert "not held, D_F = 30000: median change in loss +1.00 %" in out


def test_an_odd_number_of_tables_is_refused(tmp_path, capsys):
    old = _table(tmp_path / "old.csv", [("w7k", 1e4, 8, True, 5.0)])
    assert load_script("finetune_floor").main([str(old)]) == 2
    assert "give the tables in pairs" in capsys.readouterr().err
