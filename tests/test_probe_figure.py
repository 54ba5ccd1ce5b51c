"""benchmarks/probe_figure.py: several probe tables in one figure, or one line and exit 2 with nothing written."""
import pandas as pd

from scripts import load_script


def _table(path, size, seed):
    rows = [{"corpus": "c", "size": size, "seed": seed, "tokens": t, "induction": 0.1 * i, "order_gain": 0.05 * i,
             "in_context": -0.1 * i, "valid_loss": 6 - 0.1 * i} for i, t in enumerate([1e6, 2e6, 5e6])]
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_two_tables_make_one_figure_and_an_unknown_size_is_refused(tmp_path, capsys):
    module = load_script("probe_figure")
    tables = [_table(tmp_path / "a.csv", "w1", 0), _table(tmp_path / "b.csv", "w2", 1)]
    assert module.main([*tables, "--sizes", "w1", "w3", "--figure", str(tmp_path / "no.png")]) == 2
    assert "no size w3" in capsys.readouterr().err and not (tmp_path / "no.png").exists()
    assert module.main([*tables, "--figure", str(tmp_path / "f.png")]) == 0
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert "6 checkpoints, 2 sizes" in capsys.readouterr().out
