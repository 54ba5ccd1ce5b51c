"""effdata.analyze end to end: report, figures, JSON; bad input never crashes."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from synthetic import (
    CPU_BEYOND,
    CPU_INSIDE,
    TRUE_CODE,
    TRUE_TEXT,
    make_cpu_runs,
    make_runs,
    scratch_loss,
)

from effdata.analysis.core.figures import SkippedFigure
from effdata.analysis.transfer.plots import plot_loss_vs_compute
from effdata.analyze import analyze, main, summary_lines


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A two-distribution study with an ossified run, a failed run and extrapolated points."""
    root = tmp_path_factory.mktemp("study")
    df = make_runs({"text": TRUE_TEXT, "text+code": TRUE_CODE}, log_noise=0.2, seed=3)
    ossify = (df["pretrain"] == "text") & (df["n_params"] == 1e5) & (df["data_chars"] >= 3e6)
    df.loc[ossify, "loss"] = scratch_loss(1e5, df.loc[ossify, "data_chars"]) + 0.01
    df["error"] = ""
    df.loc[0, ["status", "error"]] = ["failed", "diverged"]
    df = df[~((df["mode"] == "scratch") & (df["data_chars"] > 1e8) & (df["n_params"] == 1e7))]
    df.to_csv(root / "results.csv", index=False)
    result = analyze(root / "results.csv", root / "analysis", compare=["text", "text+code"], n_bootstrap=200)
    return root, result


def test_report_renders_with_its_figures(study):
    root, result = study
    out = root / "analysis"
    report = (out / "REPORT.md").read_text()
    for name in ("loss_vs_data", "dt_vs_df", "fraction_vs_n", "loss_vs_n", "loss_vs_compute",
                 "compare_dt", "compare_parameters", "scratch_laws"):   # no pretraining rows here: that figure is skipped
        assert (out / f"{name}.png").stat().st_size > 10_000
        with Image.open(out / f"{name}.png") as image:       # a palette PNG, a third of the bytes (figures.compact_png)
            assert image.mode == "P" and image.getcolors(256) and len(image.getcolors(256)) > 8
        assert (out / f"{name}.svg").exists()
        assert f"]({name}.png)" in report
    assert report.index("## Warnings") < report.index("## Transfer law")
    assert "status != ok" in report and "ossified" in report
    assert "Pretraining distributions compared" in report and "0.096" in report   # the paper row
    assert "### Chinchilla form" in report and "### Kaplan form" in report and "### Goodness of fit" in report


def test_flags_reach_the_table_and_json(study):
    root, result = study
    effective = pd.read_csv(root / "analysis" / "effective.csv")
    assert effective["ossified"].sum() == 2 and effective["extrapolated"].sum() > 0
    report = (root / "analysis" / "REPORT.md").read_text()
    assert report.count("| ossified") + report.count(",ossified") >= 2
    fits = json.loads((root / "analysis" / "fits.json").read_text())
    assert fits["counts"]["ossified"] == 2
    assert fits["transfer"]["text"]["alpha"] == pytest.approx(result["transfer"]["text"]["alpha"])
    assert fits["transfer"]["text"]["n_ossified"] == 2
    assert fits["interval"]["percentiles"] == [5, 95]
    lo, hi = fits["transfer"]["text+code"]["intervals"]["alpha"]
    assert lo < fits["transfer"]["text+code"]["alpha"] < hi


def test_too_few_points_gives_null_fit_with_reason(tmp_path):
    df = make_runs(n_values=(1e5, 1e6), d_f_values=(1e5, 1e6))
    result = analyze(df, tmp_path, n_bootstrap=50, figures=False)
    assert result["transfer"]["text"]["fitted"] is False and result["transfer"]["text"]["alpha"] is None
    assert "need ≥ 5 points" in result["transfer"]["text"]["reason"]
    report = (tmp_path / "REPORT.md").read_text()
    assert "not fitted: need ≥ 5 points with D_T > 0 (have 4)" in report
    assert "not drawn: figures disabled" in report


def test_bad_input_is_reported_not_crashed(tmp_path):
    df = make_runs()
    df.loc[1, "loss"] = np.nan                                     # non-finite loss
    df = pd.concat([df, df.iloc[[5]]], ignore_index=True)          # duplicate row
    orphan = df[df["mode"] == "finetune"].iloc[:3].assign(n_params=7e5, pretrain="docs")  # no scratch at N
    df = pd.concat([df, orphan], ignore_index=True)
    result = analyze(df, tmp_path, compare=["text", "text+code"], n_bootstrap=50, figures=False)
    text = " | ".join(result["warnings"])
    assert "non-finite" in text and "duplicate" in text
    assert "pretrain 'docs' at N=7e+05: no from-scratch runs" in text
    assert "no fine-tuned runs pretrained on 'text+code'" in text
    assert result["transfer"]["docs"]["fitted"] is False
    skipped = plot_loss_vs_compute(df.drop(columns=["flops"]), tmp_path)
    assert isinstance(skipped, SkippedFigure) and "no `flops` column" in skipped.reason


def test_only_scratch_runs(tmp_path):
    result = analyze(make_runs().query("mode == 'scratch'"), tmp_path, n_bootstrap=20)
    assert result["transfer"] == {} and result["kaplan"]["alpha_n"] is not None
    assert result["chinchilla"]["alpha"] == pytest.approx(0.25, abs=1e-3) and result["warnings"] == []
    report = (tmp_path / "REPORT.md").read_text()
    assert report.count("no transfer section") == 1          # said once, and nothing else about transfer
    assert "## Transfer law" not in report and "Per-run effective data" not in report
    assert "not drawn" not in report and "](scratch_laws.png)" in report


def test_cli_writes_report_and_fails_cleanly(tmp_path, capsys):
    make_runs().to_json(tmp_path / "runs.jsonl", orient="records", lines=True)
    assert main([str(tmp_path / "runs.jsonl"), "--units", "tokens", "--bootstrap", "50", "--no-figures", "--out", str(tmp_path / "a")]) == 0
    assert "text: k=" in capsys.readouterr().out
    fits = json.loads((tmp_path / "a" / "fits.json").read_text())
    assert fits["units"] == "tokens"
    pd.DataFrame({"pretrain": ["none"], "loss": [1.0]}).to_csv(tmp_path / "bad.csv", index=False)
    assert main([str(tmp_path / "bad.csv")]) == 2
    assert "lacks required column" in capsys.readouterr().err


def test_compute_summary_adds_flops_and_run_time_by_mode_and_gives_mfu():
    import pandas as pd

    from effdata.analysis.report import compute_summary

    raw = pd.DataFrame({"mode": ["pretrain", "scratch", "scratch", "finetune", "scratch"],
                        "pretrain": ["text", "none", "none", "text", "none"],
                        "status": ["ok", "ok", "ok", "ok", "failed"],
                        "flops": [4e12, 1e12, 3e12, 2e12, 9e12], "wall_time": [10.0, 5.0, 5.0, 10.0, 1.0]})
    summary = compute_summary(raw, peak_flops=1e12)
    assert summary["by_mode"]["scratch"] == {"runs": 2, "flops": 4e12, "run_seconds": 10.0,
                                             "flops_per_second": 4e11, "mfu": 0.4}
    assert summary["by_mode"]["all"]["flops"] == 1e13 and summary["by_mode"]["all"]["runs"] == 4
    assert summary["by_mode"]["all"]["mfu"] == 1e13 / (30.0 * 1e12)
    per_run = compute_summary(raw.assign(peak_flops=[1e12, 2e12, 2e12, 1e12, 1e12]))
    assert per_run["by_mode"]["scratch"]["mfu"] == 4e12 / (10.0 * 2e12)
    assert compute_summary(raw.drop(columns="flops")) is None


@pytest.fixture(scope="module")
def seeded_study(tmp_path_factory):
    """CPU-shaped: 3 seeds, 1% noise per run, pretraining rows; `text` transfers past the from-scratch curve."""
    root = tmp_path_factory.mktemp("seeded")
    df = make_cpu_runs({"text": CPU_BEYOND, "text+code": CPU_INSIDE}, seeds=3, loss_noise=0.01, seed=2, pretraining=True)
    df.to_csv(root / "results.csv", index=False)
    return root, analyze(root / "results.csv", root / "analysis", compare=["text", "text+code"], n_bootstrap=200)


def test_report_gives_intervals_seeds_pretraining_and_advice(seeded_study):
    root, result = seeded_study
    out = root / "analysis"
    report = (out / "REPORT.md").read_text()
    for section in ("## Seeds: the runs' noise", "## Pretraining runs", "## Study design advice"):
        assert section in report
    assert report.index("## Transfer law") < report.index("## Seeds") < report.index("## From-scratch laws L(N, D)")
    assert "| text, including extrapolated |" in report and "no headline law" in report
    assert "seed-to-seed spread of 30 scratch grid point(s)" in report
    assert "bigger models were better pretrained" in report and "](pretraining.png)" in report
    assert (out / "pretraining.png").stat().st_size > 10_000
    effective = pd.read_csv(out / "effective.csv")
    finite = effective[np.isfinite(effective["d_t"])]
    assert ((finite["d_t_lo"] <= finite["d_t"]) & (finite["d_t"] <= finite["d_t_hi"])).all()
    assert ((finite["d_e_lo"] <= finite["d_e"]) & (finite["d_e"] <= finite["d_e_hi"])).all()


def test_fits_json_keeps_the_headline_keys_and_adds_the_rest(seeded_study):
    root, result = seeded_study
    fits = json.loads((root / "analysis" / "fits.json").read_text())
    text, code = fits["transfer"]["text"], fits["transfer"]["text+code"]
    assert text["fitted"] is False and text["alpha"] is None and "inside the measured" in text["reason"]
    assert text["including_extrapolated"]["fitted"] is True and len(text["scratch_runs_needed"]) == 5
    assert code["fitted"] is True and set(code["intervals"]) == {"k", "alpha", "beta"} and code["points"] == "interpolated"
    assert fits["interval"]["noise"]["scratch"]["seeded_points"] == 30
    assert {"seed_spread", "d_t_noise", "pretraining", "advice"} <= set(fits)
    assert any("from scratch, N =" in s["runs"] for s in fits["advice"]["suggestions"])
    lines = summary_lines(result)
    assert any(line.startswith("text: not fitted on interpolated D_E") for line in lines)
    assert any("from-scratch run needed at N=" in line for line in lines)


def test_one_seed_table_says_the_noise_is_estimated(tmp_path):
    df = make_cpu_runs(seeds=1, loss_noise=0.005, seed=1)
    result = analyze(df, tmp_path, n_bootstrap=100, figures=False)
    report = (tmp_path / "REPORT.md").read_text()
    assert "One seed per grid point: the seed-to-seed spread is not measured" in report
    assert "residuals of the from-scratch grid" in report
    assert any("one seed per grid point" in w for w in result["warnings"])
    given = analyze(df, tmp_path / "given", n_bootstrap=100, figures=False, loss_noise=0.01)
    assert given["interval"]["noise"]["finetune"] == {"sigma": 0.01, "source": "given (--loss-noise)", "seeded_points": 0}


def test_seeds_on_the_from_scratch_runs_only_name_the_unseeded_fine_tunes_in_one_line(tmp_path):
    """The reference study's design: extra seeds from scratch, one seed per fine-tune. The seed table has a
    row per N that has seeds; the fine-tunes without any are named once, not as rows of nan."""
    df = make_cpu_runs(seeds=2, loss_noise=0.005, seed=3)
    df = df[(df["mode"] != "finetune") | (df["seed"] == 0)]
    analyze(df, tmp_path, n_bootstrap=50, figures=False)
    report = (tmp_path / "REPORT.md").read_text()
    section = report[report.index("## Seeds"):report.index("What the runs' noise does to D_T")]
    assert section.count("| from scratch |") == 5 and "nan%" not in section
    assert "| 2 |" in section                                        # seeds at the points that have them
    assert "One seed at every grid point" in section and "fine-tuned from text" in section


# --------------------------------------------------------------------------- figures at page width (issue 24)

WIDE_BUDGETS = {"text": 30.0, "text@10tpp": 10.0, "text@3tpp": 3.0, "code": 30.0, "code@10tpp": 10.0, "code@3tpp": 3.0}
SHOWN_WIDTH_PX = 800      # a page or a README column
MIN_TEXT_PX = 7.5         # the legend's "small" in a 10-inch figure is 9.4 px; x-small on six panels was 3 px


def _wide_transfer_table() -> pd.DataFrame:
    """Six pretraining names (two distributions at three budgets), five N, four D_F, an ossified run, FLOPs;
    transfer strong enough (k × 20) that some D_E lie beyond the from-scratch runs (extrapolated, hollow)."""
    from synthetic import TRUE_BUDGET, make_budget_runs
    df = make_budget_runs(law={**TRUE_BUDGET, "k": 20 * TRUE_BUDGET["k"]}, budgets=WIDE_BUDGETS, log_noise=0.1, seed=4)
    ossify = (df["mode"] == "finetune") & (df["pretrain"] == "text@3tpp") & (df["n_params"] == df["n_params"].min())
    df.loc[ossify, "loss"] += 0.5
    df["flops"] = 6 * df["n_params"] * df["data_chars"]
    return df


def _wide_shape_table() -> pd.DataFrame:
    """Two shapes at each of four N: four panels in each shape figure."""
    from synthetic import make_shape_runs
    parts = []
    for index, n in enumerate((5e4, 1e5, 2e5, 4e5)):
        part = make_shape_runs(n_params=n, seed=index)
        part["size"] = [f"s{n:.0e}-{size}" for size in part["size"]]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _wide_sweep_table() -> pd.DataFrame:
    """An lr_scale sweep at four data sizes: four panels."""
    rows = [{"status": "ok", "mode": "scratch", "pretrain": "none", "size": f"n{n:g}", "seed": 0, "n_params": n,
             "data_chars": d, "loss": 4 + 0.05 * (np.log2(v) - 1) ** 2 - 0.1 * np.log10(d), "sweep": "lr_scale",
             "lr_scale": v}
            for n in (2.5e4, 1e5, 5e5) for d in (1e4, 1e5, 1e6, 1e7) for v in (0.5, 1, 2, 4, 8)]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def wide_figures(tmp_path_factory):
    """Every figure the analysis draws for tables with many panels' worth of names, N, shapes and data sizes:
    {"<analysis>/<figure>": matplotlib Figure}, caught as they are saved."""
    from matplotlib.figure import Figure

    from effdata.analysis.pipeline import analyze_sweep
    root, drawn, save = tmp_path_factory.mktemp("wide"), {}, Figure.savefig

    def record(figure, path, *args, **kwargs):
        if str(path).endswith(".png"):
            drawn[f"{Path(path).parent.name}/{Path(path).stem}"] = figure
            return save(figure, path, *args, **kwargs)
        # The SVG is the same figure again (test_report_renders_with_its_figures checks that it is written): skipping
        # it here saves 3 of the test's 26 s alone.
        return None

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Figure, "savefig", record)
        results = [analyze(_wide_transfer_table(), root / "transfer", compare=["text", "code"], n_bootstrap=40),
                   analyze(_wide_shape_table(), root / "shape", n_bootstrap=30)]
        analyze_sweep(_wide_sweep_table(), root / "sweep")
    for result in results:
        assert not [f for f in result["figures"] if "skipped" in f and "flops" not in f["skipped"]], result["figures"]
    return drawn


def _columns(figure) -> int:
    """Panel columns: distinct left edges of the axes (a colour bar is not a panel)."""
    return len({round(ax.get_position().x0, 3) for ax in figure.axes if not hasattr(ax, "_colorbar")})


def test_every_figure_is_at_most_three_panels_wide_and_legible_at_page_width(wide_figures):
    from matplotlib.text import Text
    transfer = {"loss_vs_data", "dt_vs_df", "fraction_vs_n", "loss_vs_n", "loss_vs_compute", "compare_dt",
                "compare_parameters", "pretraining", "scratch_laws", "dt_vs_tpp"}
    expected = {f"transfer/{name}" for name in transfer} | {"sweep/sweep"} | \
        {f"shape/{name}" for name in ("shape_pretraining", "shape_finetuned", "shape_dt")}
    assert expected <= set(wide_figures)
    dt_vs_df = wide_figures["transfer/dt_vs_df"]
    assert _columns(dt_vs_df) == 3 and len(dt_vs_df.axes) == 6        # six panels wrapped, none cut
    assert len(wide_figures["shape/shape_dt"].axes) == 4 and len(wide_figures["sweep/sweep"].axes) == 4
    for name, figure in wide_figures.items():
        assert _columns(figure) <= 3, f"{name}: {_columns(figure)} panel columns"
        scale = SHOWN_WIDTH_PX / (72 * figure.get_figwidth())     # px per point, the figure shown 800 px wide
        texts = [t for t in figure.findobj(Text) if t.get_visible() and t.get_text().strip()]
        smallest = min(texts, key=lambda t: t.get_fontsize())
        assert smallest.get_fontsize() * scale >= MIN_TEXT_PX, \
            f"{name}: '{smallest.get_text()}' is {smallest.get_fontsize() * scale:.1f} px at {SHOWN_WIDTH_PX} px wide"


def _drawn_colors(artist) -> list:
    """The colours an artist shows: a Line2D's line only if it has a line style, its marker's face only if the
    marker is filled (an error bar's caps are '|' markers whose unused line colour is the default blue)."""
    from matplotlib.lines import Line2D
    from matplotlib.markers import MarkerStyle
    if not isinstance(artist, Line2D):
        getters = ("get_facecolor", "get_edgecolor") if hasattr(artist, "get_facecolor") else ("get_color",)
        return [getattr(artist, g)() for g in getters if hasattr(artist, g)]
    colors = [artist.get_color()] if artist.get_linestyle() not in ("None", "none", "", " ") else []
    marker = artist.get_marker()
    if marker not in (None, "None", "none", ""):
        colors.append(artist.get_markeredgecolor())
        if MarkerStyle(marker).is_filled():
            colors.append(artist.get_markerfacecolor())
    return colors


def _chromatic(artist) -> list[tuple]:
    """The colours the artist shows that have a hue (greys, black and white are neutral), as rounded RGB."""
    from matplotlib.colors import to_rgba_array
    found = []
    for value in _drawn_colors(artist):
        try:
            colors = to_rgba_array(value)
        except (ValueError, TypeError):
            continue
        found += [tuple(float(x) for x in np.round(c[:3], 2)) for c in colors
                  if c[3] > 0 and c[:3].max() - c[:3].min() > 0.1]
    return found


def test_loss_vs_data_gives_each_colour_one_meaning(wide_figures):
    """A colour is a pretraining (its legend entry 'fine-tuned from …'); every flag is a shape in a neutral
    grey, and nothing in the panels has a colour that is not a pretraining's (the red X of an ossified run
    once read as text+code@3tpp, the series drawn in the palette's red)."""
    figure = wide_figures["transfer/loss_vs_data"]
    legend = figure.legends[0]
    series = {}
    for handle, text in zip(legend.legend_handles, legend.get_texts()):
        colors = set(_chromatic(handle))
        if text.get_text().startswith("fine-tuned from"):
            assert len(colors) == 1, text.get_text()
            series[colors.pop()] = text.get_text()
        else:
            assert not colors, f"'{text.get_text()}' is not a series but has a hue {colors}: flags are grey"
    assert len(series) == len(WIDE_BUDGETS)           # six names, six colours
    for ax in figure.axes:
        for artist in ax.findobj():
            strays = set(_chromatic(artist)) - set(series)
            assert not strays, f"{artist} {getattr(artist, 'get_xydata', lambda: '')()} has a colour that is no pretraining's: {strays}"


def test_no_two_legend_entries_of_any_figure_share_a_colour(wide_figures):
    """In every figure a hue names one thing: a legend entry for a flag or a law that took the colour of the
    last series drawn (compare_parameters' markers once did) would read as that series."""
    for name, figure in wide_figures.items():
        legends = list(figure.legends) + [ax.get_legend() for ax in figure.axes if ax.get_legend()]
        for legend in legends:
            owner = {}
            for handle, text in zip(legend.legend_handles, legend.get_texts()):
                for color in set(_chromatic(handle)):
                    assert owner.setdefault(color, text.get_text()) == text.get_text(), \
                        f"{name}: '{text.get_text()}' and '{owner[color]}' share the colour {color}"
