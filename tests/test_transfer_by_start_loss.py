"""benchmarks/transfer_by_start_loss.py: its laws and its N term on fine-tuned points whose answer is known."""
import numpy as np
import pandas as pd
import pytest

from scripts import load_script


def _analysis(folder, c: float, noise: float = 0.05, seed: int = 0):
    """An analysis folder (effective.csv, results.csv) of 6 sizes x 4 token counts x 2 D_F whose ln D_T is
    10 - 1.7 L0 + c ln N + noise per checkpoint, with a start loss L0 that falls with N and with tokens."""
    rng = np.random.default_rng(seed)
    effective, runs = [], []
    for n in np.geomspace(7e3, 1e6, 6):
        for p in (3, 10, 30, 300):
            start = 9.0 - 0.35 * np.log10(n) - 0.6 * np.log10(p) + rng.normal(0, 0.1)
            shift = rng.normal(0, noise)
            name = "text+code" if p == 30 else f"text+code@{p}tpp"
            for d_f in (1e4, 3e4):
                d_t = np.exp(10 - 1.7 * start + c * np.log(n) + 0.1 * np.log(d_f) + shift)
                effective.append({"pretrain": name, "size": f"n{n:.0f}", "n_params": n, "d_f": d_f, "d_t": d_t,
                                  "extrapolated": False, "pretrain_tokens_per_param": p})
                runs.append({"mode": "finetune", "status": "ok", "pretrain": name, "n_params": n, "data_chars": d_f,
                             "init_loss": start})
    folder.mkdir()
    pd.DataFrame(effective).to_csv(folder / "effective.csv", index=False)
    pd.DataFrame(runs).to_csv(folder / "results.csv", index=False)
    return folder


@pytest.mark.parametrize("c", [0.0, 0.3])
def test_the_n_term_is_found_when_it_is_there_and_not_when_it_is_not(tmp_path, c):
    script = load_script("transfer_by_start_loss")
    rows = script.points([str(_analysis(tmp_path / "a", c))])
    assert len(rows) == 48 and rows["cluster"].nunique() == 24
    term = script.n_term(rows, 400)
    assert term["c"] == pytest.approx(c, abs=0.03)
    low, high = term["interval"]
    assert low < c < high and high - low < 0.1
    assert (low > 0) == (c > 0)            # 0 inside the interval exactly when N adds nothing
    start, rmse = script.least_squares(rows, script.LAWS["start loss"])
    assert start[1] == pytest.approx(-1.7, abs=0.1) if c == 0 else rmse > 0.1


def test_a_point_read_in_two_analyses_counts_once_and_unusable_points_leave(tmp_path):
    script = load_script("transfer_by_start_loss")
    first = _analysis(tmp_path / "a", 0.0)
    second = _analysis(tmp_path / "b", 0.0, seed=1)
    effective = pd.read_csv(second / "effective.csv")
    effective.loc[0, "d_t"] = -5.0                   # ossified
    effective.loc[1, "extrapolated"] = True
    effective.loc[2, "pretrain"] = "text"            # a point only the second analysis has
    effective.to_csv(second / "effective.csv", index=False)
    runs = pd.read_csv(second / "results.csv")
    runs.loc[2, "pretrain"] = "text"
    runs.to_csv(second / "results.csv", index=False)
    rows = script.points([str(first), str(second)])
    assert len(rows) == 49 and set(rows["folder"]) == {str(first), str(second)}
    assert sorted(rows["root"].unique()) == ["text", "text+code"]
    assert len(script.points([str(second)])) == 46
    # The same name, N and D_F pretrained for longer is another checkpoint: kept, in a cluster of its own.
    longer = pd.read_csv(first / "effective.csv")
    longer["pretrain_tokens_per_param"] *= 7
    (tmp_path / "c").mkdir()
    longer.to_csv(tmp_path / "c" / "effective.csv", index=False)
    (tmp_path / "c" / "results.csv").write_text((first / "results.csv").read_text())
    both = script.points([str(first), str(tmp_path / "c")])
    assert len(both) == 96 and both["cluster"].nunique() == 48
    # A held-out point that is a fitted one is not a prediction.
    assert len(script.unseen(both, rows)) == 48
