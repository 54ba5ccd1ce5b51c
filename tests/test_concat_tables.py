"""benchmarks/concat_tables.py --best-by: one run per grid point, chosen on validation loss (the analysis of
v4's fine-tunes at their best learning rate, analysis/cpu-ft-lr/best)."""

import pandas as pd

from scripts import load_script



def _load():
    return load_script("concat_tables")


def _row(run_id, mode, lr, valid, loss, status="ok", pretrain="text", data=1e4):
    return {"run_id": run_id, "status": status, "mode": mode, "pretrain": pretrain, "size": "w25k", "seed": 0,
            "data_chars": data, "lr_scale": lr, "valid_loss": valid, "loss": loss}


def test_best_by_keeps_the_lowest_validation_loss_per_point_and_reads_its_test_loss(tmp_path):
    # The point (text, 1e4) is won on validation by lr 0.25 although lr 0.125 has the lower test loss: the
    # choice must not look at the test split. The scratch run is in both tables (one row); a failed fine-tune
    # at a point with a finished one goes, one at a point without stays (the analysis reports it).
    a = pd.DataFrame([_row("s", "scratch", 1, 5.0, 5.1, pretrain="none"), _row("f1", "finetune", 1, 4.0, 4.0),
                      _row("g1", "finetune", 1, 3.9, 3.9, data=3e4), _row("h1", "finetune", 1, None, None, "failed",
                                                                         pretrain="text+code")])
    b = pd.DataFrame([_row("s", "scratch", 1, 5.0, 5.1, pretrain="none"), _row("f2", "finetune", 0.25, 3.7, 3.8),
                      _row("f3", "finetune", 0.125, 3.8, 3.6), _row("g2", "finetune", 0.25, None, None, "failed",
                                                                    data=3e4)])
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    pd.DataFrame({"run_id": ["s", "f1", "f1"], "step": [0, 0, 8], "valid_loss": [6, 6, 4]}).to_csv(
        tmp_path / "curves.csv", index=False)  # both tables' curves.csv: one file beside both here
    out = tmp_path / "best" / "results.csv"
    assert _load().main([str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--best-by", "valid_loss",
                         "--curves", "--out", str(out)]) == 0
    curves = pd.read_csv(out.parent / "curves.csv")
    assert list(curves["run_id"]) == ["s"]     # f1 was not kept; s is read twice (two tables), kept once
    best = pd.read_csv(out).set_index("run_id")
    assert sorted(best.index) == ["f2", "g1", "h1", "s"]
    assert best.loc["f2", "loss"] == 3.8
    plain = tmp_path / "all.csv"
    assert _load().main([str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out", str(plain)]) == 0
    assert len(pd.read_csv(plain)) == 7


def test_first_per_point_keeps_the_first_tables_finished_run_of_each_point(tmp_path):
    # jobs/cpu-large-d.toml re-runs v4's from-scratch points on 3e5 under a higher cap, listed first: its rows
    # replace v4's at those points; a point only v4 ran keeps v4's row; a point the extension failed keeps v4's.
    ext = pd.DataFrame([_row("s3-new", "scratch", 1, 4.0, 4.1, pretrain="none", data=3e5),
                        _row("s6", "scratch", 1, 3.5, 3.6, pretrain="none", data=1e6),
                        _row("f5-new", "finetune", 1, None, None, "failed", data=1e5)])
    v4 = pd.DataFrame([_row("s3-old", "scratch", 1, 3.0, 3.1, pretrain="none", data=3e5),
                       _row("s1", "scratch", 1, 5.0, 5.1, pretrain="none", data=1e4),
                       _row("f5-old", "finetune", 1, 3.9, 3.9, data=1e5)])
    ext.to_csv(tmp_path / "ext.csv", index=False)
    v4.to_csv(tmp_path / "v4.csv", index=False)
    out = tmp_path / "joined.csv"
    assert _load().main([str(tmp_path / "ext.csv"), str(tmp_path / "v4.csv"), "--first-per-point",
                         "--out", str(out)]) == 0
    assert sorted(pd.read_csv(out)["run_id"]) == ["f5-old", "s1", "s3-new", "s6"]


def test_points_of_first_takes_other_runs_of_the_first_tables_points_only(tmp_path):
    # v4 and an LR check that also ran 1e6: the check's 3e5 run competes for v4's point, its 1e6 run is no
    # point of v4's and stays out.
    v4 = pd.DataFrame([_row("s3-x1", "scratch", 1, 4.0, 4.1, pretrain="none", data=3e5)])
    check = pd.DataFrame([_row("s3-half", "scratch", 0.5, 3.9, 4.0, pretrain="none", data=3e5),
                          _row("s6-half", "scratch", 0.5, 3.5, 3.6, pretrain="none", data=1e6)])
    v4.to_csv(tmp_path / "v4.csv", index=False)
    check.to_csv(tmp_path / "check.csv", index=False)
    out = tmp_path / "best.csv"
    assert _load().main([str(tmp_path / "v4.csv"), str(tmp_path / "check.csv"), "--points-of-first",
                         "--best-by", "valid_loss", "--out", str(out)]) == 0
    assert list(pd.read_csv(out)["run_id"]) == ["s3-half"]
    assert _load().main([str(tmp_path / "v4.csv"), str(tmp_path / "check.csv"), "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 3


def _pretraining_rows(folder: str, suffix: str, own: float) -> list[dict]:
    """A pretraining (final model and a mid-run checkpoint) and a fine-tune from each, as a study writes them."""
    base = f"pretrain-text-w25k-s0-{suffix}"
    rows = [{"run_id": base, "status": "ok", "mode": "pretrain", "pretrain": "text", "size": "w25k", "seed": 0,
             "pretrain_valid_loss": own, "loss": 8.0, "init_from": None},
            {"run_id": f"{base}@3tpp", "status": "ok", "mode": "pretrain", "pretrain": "text@3tpp", "size": "w25k",
             "seed": 0, "pretrain_valid_loss": own + 1, "loss": 8.5, "init_from": None}]
    for name, checkpoint in (("text", "checkpoint"), ("text@3tpp", "checkpoint@3tpp")):
        rows.append({"run_id": f"finetune-{name}-w25k-1e4c-s0-{suffix}", "status": "ok", "mode": "finetune",
                     "pretrain": name, "size": "w25k", "seed": 0, "data_chars": 1e4, "loss": 6.0,
                     # the folder names hold "pretrain-" too, as runs/cpu-pretrain-lr-half does
                     "init_from": f"/work/runs/{folder}/runs/{base}/{checkpoint}"})
    return rows


def test_pretraining_best_by_keeps_the_better_pretraining_with_its_checkpoints_and_fine_tunes(tmp_path):
    scratch = {"run_id": "scratch-w25k-1e4c-s0-x", "status": "ok", "mode": "scratch", "pretrain": "none",
               "size": "w25k", "seed": 0, "data_chars": 1e4, "loss": 6.5, "init_from": None}
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    pd.DataFrame([scratch, *_pretraining_rows("cpu-v4", "aaaa", own=4.3)]).to_csv(first, index=False)
    pd.DataFrame([scratch, *_pretraining_rows("cpu-pretrain-lr-half", "bbbb", own=4.0)]).to_csv(second, index=False)
    out = tmp_path / "best" / "results.csv"
    assert _load().main([str(first), str(second), "--pretraining-best-by", "pretrain_valid_loss",
                         "--out", str(out)]) == 0
    kept = set(pd.read_csv(out)["run_id"])
    assert kept == {"scratch-w25k-1e4c-s0-x", "pretrain-text-w25k-s0-bbbb", "pretrain-text-w25k-s0-bbbb@3tpp",
                    "finetune-text-w25k-1e4c-s0-bbbb", "finetune-text@3tpp-w25k-1e4c-s0-bbbb"}


def test_scratch_from_adds_only_the_from_scratch_runs_of_other_tables(tmp_path):
    # Seed 1's pretraining and fine-tune, with another study's from-scratch runs (seeds 0 and 1, one shared id):
    # none of that study's pretrainings or fine-tunes.
    one = pd.DataFrame([_row("p1", "pretrain", 1, 4.0, 6.0), _row("f1", "finetune", 1, 5.0, 5.0),
                        _row("s1", "scratch", 1, 6.0, 6.1, pretrain="none")])
    other = pd.DataFrame([_row("p0", "pretrain", 1, 4.1, 6.1), _row("f0", "finetune", 1, 5.1, 5.1),
                          _row("s0", "scratch", 1, 6.2, 6.2, pretrain="none"), _row("s1", "scratch", 1, 6.0, 6.1,
                                                                                   pretrain="none")])
    one.to_csv(tmp_path / "one.csv", index=False)
    other.to_csv(tmp_path / "other.csv", index=False)
    assert _load().main([str(tmp_path / "one.csv"), "--scratch-from", str(tmp_path / "other.csv"),
                         "--out", str(tmp_path / "out.csv")]) == 0
    assert sorted(pd.read_csv(tmp_path / "out.csv")["run_id"]) == ["f1", "p1", "s0", "s1"]
