"""benchmarks/dt_slope.py: the slope of ln D_T on ln N per pretraining and D_F, known from made-up tables."""
import math

import pandas as pd

from scripts import load_script


def _effective(path, beta):
    sizes = {"a": 1e5, "b": 3e5, "c": 1e6}
    rows = [{"pretrain": name, "size": s, "n_params": n, "d_f": 3e4, "d_t": 2.0 * n ** b}
            for name, b in beta.items() for s, n in sizes.items()]
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_the_slope_is_the_power_and_a_negative_point_is_named(tmp_path, capsys):
    module = load_script("dt_slope")
    path = _effective(tmp_path / "e.csv", {"x": 0.3, "y": -0.2})
    assert module.main([path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "| 0.30 | no a: 0.30; no b: 0.30; no c: 0.30 |" in lines[2]
    assert "| -0.20 |" in lines[3]
    table = pd.read_csv(path)
    table.loc[0, "d_t"] = -5.0
    table.to_csv(path, index=False)
    assert module.main([path]) == 0
    assert "0.30 (D_T ≤ 0 left out: a)" in capsys.readouterr().out.splitlines()[2]
    assert math.isnan(module.slope(table.iloc[:1]))   # one size has no slope


def test_scatter_is_the_rms_about_the_line(tmp_path, capsys):
    module = load_script("dt_slope")
    # ln N at 0, 1, 2 (symmetric): lifting the middle point by d leaves the slope and gives residuals −d/3, 2d/3,
    # −d/3, an RMS of d·√2/3
    rows = [{"pretrain": "x", "size": s, "n_params": math.exp(i), "d_f": 3e4, "d_t": 5.0 * math.exp(0.4 * i)}
            for i, s in enumerate("abc")]
    rows[1]["d_t"] *= math.exp(0.3)
    pd.DataFrame(rows).to_csv(tmp_path / "e.csv", index=False)
    assert module.main([str(tmp_path / "e.csv")]) == 0
    assert capsys.readouterr().out.splitlines()[2].endswith("| 0.40 | no a: 0.10; no b: 0.40; no c: 0.70 | 0.14 |")


def test_a_picked_line_takes_one_name_per_size(tmp_path, capsys):
    module = load_script("dt_slope")
    path = _effective(tmp_path / "e.csv", {"x": 0.3, "y": -0.2})
    assert module.main([path, "--pick", "a=x", "b=x", "c=y"]) == 0
    line = capsys.readouterr().out.splitlines()[4]
    n_b, n_c = 3e5, 1e6   # without a: from 2·b^0.3 (x) to 2·c^-0.2 (y)
    without_a = (-0.2 * math.log(n_c) - 0.3 * math.log(n_b)) / math.log(n_c / n_b)
    cells = f"a {2 * 1e5 ** 0.3:.3g}; b {2 * n_b ** 0.3:.3g}; c {2 * n_c ** -0.2:.3g}"
    assert line.startswith(f"| picked | 30000 | {cells} |")
    assert f"| no a: {without_a:.2f}; no b: " in line
    assert module.main([path, "--pick", "a=z"]) == 2
    assert "no rows of pretraining z at size a" in capsys.readouterr().err


def test_not_an_effective_table_is_refused(tmp_path, capsys):
    module = load_script("dt_slope")
    (tmp_path / "r.csv").write_text("run_id,loss\nx,1\n")
    assert module.main([str(tmp_path / "r.csv")]) == 2
    assert "not an effective table" in capsys.readouterr().err
