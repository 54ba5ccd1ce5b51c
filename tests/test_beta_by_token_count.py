"""benchmarks/beta_by_token_count.py: β at one pretraining token count, read from the committed analyses."""
import json
from pathlib import Path

from scripts import load_script

ROOT = Path(__file__).resolve().parent.parent
FIXED = ["analysis/cpu-fixed-tokens/1m6", "analysis/cpu-fixed-tokens/5m", "analysis/cpu-fixed-tokens"]


def test_each_point_is_its_reports_beta_at_its_one_token_count():
    script = load_script("beta_by_token_count")
    for folder in FIXED:
        point = script.read_point(ROOT / folder, "text+code")
        fits = json.loads((ROOT / folder / "fits.json").read_text())
        assert point.beta == fits["transfer"]["text+code"]["beta"]
        assert list(point.interval) == fits["transfer"]["text+code"]["intervals"]["beta"]
    tokens = [script.read_point(ROOT / f, "text+code").tokens for f in FIXED]
    assert [round(t / 1e6, 2) for t in tokens] == [1.6, 5.02, 15.05]


def test_a_folder_budgeted_per_parameter_is_refused_in_one_line(capsys):
    """v4's checkpoints grow with N (30 tokens per parameter): its β is not β at one token count."""
    script = load_script("beta_by_token_count")
    assert script.main([str(ROOT / "analysis/cpu"), "--pretrain", "text+code"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not pretrained on one token count" in err and "30 tokens/parameter" in err


def test_the_table_and_figure_are_written(tmp_path, capsys):
    script = load_script("beta_by_token_count")
    figure = tmp_path / "beta.png"
    assert script.main([str(ROOT / f) for f in FIXED] + ["--figure", str(figure)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("| text+code | ") == 3 and printed.count("| text | ") == 3
    assert figure.stat().st_size > 10_000


def test_a_checkpoint_series_adds_its_counts_and_repeats_none():
    """analysis/cpu-fixed-tokens/series holds 5m's runs bit for bit (its @5.02M): that point is kept once, its
    own counts (3.01 M) are added, under text+code's colour."""
    script = load_script("beta_by_token_count")
    names = ["text+code", "text+code@3.01M", "text+code@5.02M"]
    folders = [ROOT / "analysis/cpu-fixed-tokens/5m", ROOT / "analysis/cpu-fixed-tokens/series"]
    points = [p for f in folders for n in names if (p := script.read_point(f, n))]
    kept = script.distinct(points)
    assert len(points) == 4 and len(kept) == 3       # 5m's text+code, the series' @3.01M, @5.02M and text+code
    assert [(script.corpus(p), round(p.tokens / 1e6, 2)) for p in kept] == \
        [("text+code", 5.02), ("text+code", 15.05), ("text+code", 3.01)]
    assert kept[0].folder.endswith("5m")
