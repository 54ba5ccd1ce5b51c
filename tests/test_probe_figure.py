"""benchmarks/probe_figure.py: several probe tables in one figure, where each size formed its heads, or one line and
exit 2 with nothing written."""
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


def test_formed_names_the_first_checkpoint_past_the_bar_per_size_and_seed(tmp_path, capsys):
    module = load_script("probe_figure")
    tables = [_table(tmp_path / "a.csv", "w1", 0), _table(tmp_path / "b.csv", "w2", 1)]
    assert module.main([*tables, "--formed", "0.07"]) == 0   # order parts 0, 0.05, 0.10 at 1, 2, 5 M
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == f"| {tables[0]} | w1 | c | 0 | 1.00 M: 0.00 / 6.000; 2.00 M: 0.05 / 5.900; 5.00 M: 0.10 / 5.800 | 5.00 M |"
    assert lines[3].startswith(f"| {tables[1]} | w2 | c | 1 |") and len(lines) == 4
    # One size and seed in two tables (two studies at two LRs): two rows, not one mixed.
    twin = _table(tmp_path / "twin.csv", "w1", 0)
    assert module.main([tables[0], twin, "--formed", "0.07"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
    assert module.main([*tables, "--formed", "0.2"]) == 0
    assert capsys.readouterr().out.splitlines()[2].endswith("| not by 5.00 M |")
    assert module.main(tables) == 2 and "nothing to do" in capsys.readouterr().err


def test_one_size_in_two_tables_is_two_lines_named_by_their_folders(tmp_path):
    module = load_script("probe_figure")
    for folder in ("x2", "x4"):
        (tmp_path / folder).mkdir()
    table = pd.concat([pd.read_csv(_table(tmp_path / d / "probe.csv", "w1", 0)).assign(table=str(tmp_path / d / "probe.csv"))
                       for d in ("x2", "x4")])
    assert sorted(module._told_apart(table)["corpus"].unique()) == ["x2 c", "x4 c"]
    alone = table[table["table"].str.contains("x2")]
    assert list(module._told_apart(alone)["corpus"].unique()) == ["c"]


def test_two_folders_of_one_name_stay_two_lines(tmp_path):
    module = load_script("probe_figure")
    paths = [tmp_path / study / "lr" / "probe.csv" for study in ("a", "b")]
    for path in paths:
        path.parent.mkdir(parents=True)
    table = pd.concat([pd.read_csv(_table(path, "w1", 0)).assign(table=str(path)) for path in paths])
    assert sorted(module._told_apart(table)["corpus"].unique()) == ["a/lr c", "b/lr c"]


def test_two_tables_in_one_folder_stay_two_lines(tmp_path):
    module = load_script("probe_figure")
    paths = [tmp_path / "x2.csv", tmp_path / "x3.csv"]
    table = pd.concat([pd.read_csv(_table(path, "w1", 0)).assign(table=str(path)) for path in paths])
    assert table.pipe(module._told_apart)["corpus"].nunique() == 2
