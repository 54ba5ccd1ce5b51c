"""benchmarks/induction_vs_transfer.py: the intervals it names on a series whose answers are known."""

import pandas as pd

from scripts import load_script

TOKENS = [1e6, 2e6, 4e6, 8e6]


def _tables(induction, zero_shot, d_t):
    probe = pd.DataFrame({"corpus": "c", "size": "a", "n_params": 100, "tokens": TOKENS, "induction": induction,
                          "late_loss": [5.0, 4.9, 4.0, 3.9], "early_loss": [6.0, 5.9, 5.8, 5.7]})
    tpp = [t / 100 for t in TOKENS]
    results = pd.DataFrame({"mode": "finetune", "pretrain": [f"c@{p:g}tpp" for p in tpp], "size": "a",
                            "n_params": 100, "data_chars": 3e4, "pretrain_tokens_per_param": tpp,
                            "init_loss": zero_shot})
    effective = pd.DataFrame({"pretrain": results["pretrain"], "size": "a", "n_params": 100, "d_f": 3e4,
                              "pretrain_tokens_per_param": tpp, "d_t": d_t})
    return probe, results, effective


def test_the_three_intervals_are_found_where_they_are():
    module = load_script("induction_vs_transfer")
    table = module.series(*_tables([0.1, 0.2, 1.5, 1.6], [6.0, 5.9, 5.3, 5.2], [1e4, 1.2e4, 5e4, 6e4]), 3e4)
    assert list(table["zero_shot"]) == [6.0, 5.9, 5.3, 5.2] and list(table["d_t"]) == [1e4, 1.2e4, 5e4, 6e4]
    found = module.intervals(table, 0.5)
    assert found["induction passes"] == found["steepest zero-shot fall"] == "2.00M–4.00M"
    assert found["steepest D_T rise"] == "2.00M–4.00M"
    assert found["late fall / early fall there"] == "0.9 / 0.1"


def test_intervals_that_differ_are_told_apart():
    module = load_script("induction_vs_transfer")
    table = module.series(*_tables([0.1, 0.2, 0.3, 1.6], [6.0, 5.0, 4.9, 4.8], [1e4, 5e4, 5.5e4, 6e4]), 3e4)
    found = module.intervals(table, 0.5)
    assert found["induction passes"] == "4.00M–8.00M"
    assert found["steepest zero-shot fall"] == found["steepest D_T rise"] == "1.00M–2.00M"
    never = module.intervals(module.series(*_tables([0.1] * 4, [6.0] * 4, [1e4] * 4), 3e4), 0.5)
    assert never["induction passes"] == "—" and "late fall / early fall there" not in never
    assert table["d_t"].notna().all()
