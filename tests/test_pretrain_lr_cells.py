"""benchmarks/pretrain_lr_cells.py: each pretraining's losses at its multiple of the LR, a trunk in two tables once,
and each seed's paired difference between two multiples; or one line and exit 2."""
import pandas as pd

from scripts import load_script


def _study(folder, scale, losses):
    """One study's table at one multiple: per (size, seed) a final pretraining, a mid-run checkpoint (not a cell) and
    fine-tunes on 1e4 and 3e4 characters; `losses[(size, seed)]` = (zero-shot, own, fine-tuned on 3e4)."""
    rows = []
    for (size, seed), (zero, own, tuned) in losses.items():
        run = f"pretrain-text+code-{size}-s{seed}-{folder}"
        rows += [{"run_id": run, "mode": "pretrain", "pretrain": "text+code", "corpus": "text+code", "size": size,
                  "seed": seed, "lr_scale": scale, "peak_lr": 1e-3 * scale, "valid_loss": zero, "loss": own,
                  "data_chars": 9e7, "n_params": int(size[1:])},
                 {"run_id": run + "@3tpp", "mode": "pretrain", "pretrain": "text+code", "corpus": "text+code",
                  "size": size, "seed": seed, "lr_scale": scale, "peak_lr": 1e-3 * scale, "valid_loss": 9.0,
                  "loss": 9.0, "data_chars": 9e7, "n_params": int(size[1:])}]
        rows += [{"run_id": f"finetune-{size}-{chars:g}-{folder}", "mode": "finetune", "pretrain": "text+code",
                  "corpus": "python", "size": size, "seed": seed, "lr_scale": 1.0, "peak_lr": 1e-3,
                  "valid_loss": tuned, "loss": tuned + (chars == 1e4), "data_chars": chars} for chars in (1e4, 3e4)]
    path = folder / "results.csv"
    folder.mkdir()
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_paired_differences_per_seed_and_one_trunk_counted_once(tmp_path, capsys):
    module = load_script("pretrain_lr_cells")
    x2 = {("w1", 0): (5.0, 4.8, 4.5), ("w1", 1): (5.2, 4.9, 4.6), ("w2", 0): (4.9, 4.7, 4.4)}
    tables = [_study(tmp_path / "x2", 2.0, x2), _study(tmp_path / "again", 2.0, {("w1", 0): x2[("w1", 0)]}),
              _study(tmp_path / "x3", 3.0, {("w1", 0): (4.9, 4.75, 4.45), ("w1", 1): (5.3, 4.95, 4.7)})]
    assert module.main([*tables, "--sizes", "w1", "--pair", "2", "3"]) == 0
    out = capsys.readouterr().out.split("\n\n")
    cells = out[0].splitlines()[2:]
    assert len(cells) == 4   # w1 at two seeds and two multiples; the trunk in "again" is x2's, kept once
    assert cells[0] == f"| w1 | 0 | text+code | ×2 | 0.002 | – | – | 5.000 | 4.500 | 4.800 | {tmp_path / 'x2'} |"
    assert out[1].splitlines()[2:] == ["| w1 | 0 | text+code | -0.100 | -0.050 | -0.050 | – / – | – / – |",
                                       "| w1 | 1 | text+code | +0.100 | +0.100 | +0.050 | – / – | – / – |"]


def test_cells_that_warmed_up_differently_are_marked_and_kept_apart(tmp_path, capsys):
    # The ladder's x1 (a checkpoint at 3 tokens per parameter: 4 warm-up steps) beside x1 and x2 over 368 steps:
    # every x1 cell is paired with x2, the pair across warm-ups marked and counted, and --best names the warm-up.
    module = load_script("pretrain_lr_cells")
    tables = [_study(tmp_path / "short", 1.0, {("w1", 0): (5.0, 4.7, 4.5)}),
              _study(tmp_path / "long", 1.0, {("w1", 0): (5.1, 4.9, 4.6)}),
              _study(tmp_path / "x2", 2.0, {("w1", 0): (5.0, 4.8, 4.4)})]
    for path, steps in zip(tables, (4, 368, 368)):
        pd.read_csv(path).assign(warmup_steps=steps).to_csv(path, index=False)
    assert module.main([*tables, "--pair", "1", "2", "--best"]) == 0
    out = capsys.readouterr().out.split("\n\n")
    assert out[1].splitlines()[2:] == ["| w1 | 0 | text+code | +0.000 | -0.100 | +0.100 | 4 / 368 (differ) | – / – |",
                                       "| w1 | 0 | text+code | -0.100 | -0.200 | -0.100 | 368 / 368 | – / – |"]
    assert out[2] == "1 pair(s) compare two warm-ups: their differences are not the LR's alone"
    assert out[3].splitlines()[2] == ("| w1 | text+code | 1 | ×1, warm-up 4 (5.000) | ×2, warm-up 368 (4.400) | "
                                      "×1, warm-up 4 (4.700) |")
    assert module.main([*tables, "--figure", str(tmp_path / "f.png"), "--relative"]) == 2
    assert "two cells at ×1 (two warm-ups or precisions?)" in capsys.readouterr().err
    assert not (tmp_path / "f.png").exists()


def test_cells_of_two_precisions_are_marked_and_kept_apart(tmp_path, capsys):
    # The ladder's x1 in bf16 and x2 in fp32 at one warm-up (the twenty-sixth session's mix, PREDICTION21.md): the pair
    # is marked and counted as two precisions, and --best names the precision where a size has two; one precision
    # throughout marks nothing (the check can fail both ways).
    module = load_script("pretrain_lr_cells")
    tables = [_study(tmp_path / "x1", 1.0, {("w1", 0): (5.0, 4.7, 4.5)}),
              _study(tmp_path / "x2", 2.0, {("w1", 0): (5.0, 4.8, 4.4)})]
    for path, dtype in zip(tables, ("bf16", "fp32")):
        pd.read_csv(path).assign(warmup_steps=4, dtype=dtype).to_csv(path, index=False)
    assert module.main([*tables, "--pair", "1", "2", "--best"]) == 0
    out = capsys.readouterr().out.split("\n\n")
    assert out[1].splitlines()[2:] == ["| w1 | 0 | text+code | +0.000 | -0.100 | +0.100 | 4 / 4 | bf16 / fp32 (differ) |"]
    assert out[2] == "1 pair(s) compare two precisions: their differences are not the LR's alone"
    assert out[3].splitlines()[2] == "| w1 | text+code | 1 | ×1, bf16 (5.000) | ×2, fp32 (4.400) | ×1, bf16 (4.700) |"
    pd.read_csv(tables[1]).assign(dtype="bf16").to_csv(tables[1], index=False)
    assert module.main([*tables, "--pair", "1", "2", "--best"]) == 0
    out = capsys.readouterr().out
    assert "(differ)" not in out and "compare two" not in out and "×1 (4.700)" in out


def test_an_unknown_size_or_an_unreadable_table_is_refused(tmp_path, capsys):
    module = load_script("pretrain_lr_cells")
    table = _study(tmp_path / "x2", 2.0, {("w1", 0): (5.0, 4.8, 4.5)})
    assert module.main([table, "--sizes", "w9"]) == 2
    assert capsys.readouterr().err.strip() == "pretrain_lr_cells: error: no pretraining of size w9 in the tables"
    assert module.main([table, str(tmp_path / "missing.csv")]) == 2
    assert "pretrain_lr_cells: error:" in capsys.readouterr().err
    (tmp_path / "probe.csv").write_text("size,tokens,order_gain\nw1,1,0.1\n")
    assert module.main([str(tmp_path / "probe.csv")]) == 2
    assert "not results tables (no" in capsys.readouterr().err


def test_the_figure_and_the_corpus_filter(tmp_path, capsys):
    module = load_script("pretrain_lr_cells")
    tables = [_study(tmp_path / "x1", 1.0, {("w1", 0): (5.1, 4.9, 4.6)}),
              _study(tmp_path / "x2", 2.0, {("w1", 0): (5.0, 4.8, 4.5)})]
    assert module.main([*tables, "--corpora", "text", "--figure", str(tmp_path / "f.png")]) == 2
    assert "no pretraining of corpus text" in capsys.readouterr().err and not (tmp_path / "f.png").exists()
    assert module.main([*tables, "--corpora", "text+code", "--figure", str(tmp_path / "f.png")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_relative_losses_are_each_lines_less_its_rule_cell(tmp_path, capsys):
    module = load_script("pretrain_lr_cells")
    tables = [_study(tmp_path / "x1", 1.0, {("w1", 0): (5.1, 4.9, 4.6)}),
              _study(tmp_path / "x2", 2.0, {("w1", 0): (5.0, 4.8, 4.7), ("w2", 0): (4.0, 3.9, 3.8)})]
    rows = module.cells(pd.concat([pd.read_csv(t).assign(source=t) for t in tables]), 3e4)
    out = module.relative_to_rule(rows).set_index("lr_scale")
    assert list(out["size"]) == ["w1", "w1"]   # w2 has no ×1 cell: left out
    assert out.loc[2.0, ["zero_shot", "own", "finetuned"]].round(6).tolist() == [-0.1, -0.1, 0.1]
    assert out.loc[1.0, ["zero_shot", "own", "finetuned"]].tolist() == [0.0, 0.0, 0.0]
    assert module.main([*tables, "--relative", "--figure", str(tmp_path / "f.png")]) == 0
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert module.main([tables[1], "--relative", "--figure", str(tmp_path / "g.png")]) == 2
    assert "no size and seed has a cell at ×1" in capsys.readouterr().err and not (tmp_path / "g.png").exists()


def test_the_best_multiple_is_on_the_seeds_mean_at_multiples_with_every_seed(tmp_path, capsys):
    module = load_script("pretrain_lr_cells")
    tables = [_study(tmp_path / "x1", 1.0, {("w1", 0): (5.1, 4.9, 4.6), ("w1", 1): (5.1, 4.9, 4.6)}),
              _study(tmp_path / "x2", 2.0, {("w1", 0): (5.3, 4.7, 4.5), ("w1", 1): (5.1, 5.0, 4.8)}),
              _study(tmp_path / "x3", 3.0, {("w1", 0): (4.0, 4.0, 4.0)})]   # one seed of two: not counted
    assert module.main([*tables, "--best"]) == 0
    best = capsys.readouterr().out.split("\n\n")[1].splitlines()[2:]
    # seeds' means at ×1 and ×2: zero-shot 5.1 and 5.2, fine-tuned 4.6 and 4.65, own 4.9 and 4.85 (×3: one seed)
    assert best == ["| w1 | text+code | 2 | ×1 (5.100) | ×1 (4.600) | ×2 (4.850) |"]


def test_a_table_of_renamed_pretrainings_is_skipped(tmp_path, capsys):
    module = load_script("pretrain_lr_cells")
    renamed = pd.read_csv(_study(tmp_path / "renamed", 2.0, {("w1", 0): (5.0, 4.8, 4.5)}))
    renamed["pretrain"] = renamed["pretrain"].str.replace("text+code", "text+code-lr2", regex=False)
    renamed.to_csv(tmp_path / "renamed" / "results.csv", index=False)
    table = _study(tmp_path / "x2", 2.0, {("w1", 0): (5.0, 4.8, 4.5)})
    assert module.main([str(tmp_path / "renamed" / "results.csv"), table]) == 0
    cells = capsys.readouterr().out.splitlines()[2:]
    assert cells == [f"| w1 | 0 | text+code | ×2 | 0.002 | – | – | 5.000 | 4.500 | 4.800 | {tmp_path / 'x2'} |"]
