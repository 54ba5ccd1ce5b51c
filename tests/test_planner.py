"""effdata.plan and effdata.analysis.plan.planner: numbers by hand, units, extrapolation, budget, shape, bad input."""
import json
import math

import numpy as np
import pandas as pd
import pytest
from synthetic import TRUE_CODE, TRUE_TEXT, make_runs, scratch_runs

from effdata.analysis.core.fit import TransferFit
from effdata.analysis.laws.scaling import StartGrid
from effdata.analysis.plan.check import heldout_check
from effdata.analysis.plan.pretraining import read_budgets
from effdata.analysis.plan.report import render_plan
from effdata.analysis.plan.planner import (
    PlanError,
    PlanRequest,
    load_laws,
    make_plan,
    paper_fits,
    parse_shape,
    predict,
    read_fits,
    transfer_ranges,
)
from effdata.analyze import analyze
from effdata.plan import main, render_heldout

COARSE = StartGrid(a=(0, 5, 10), b=(0, 5, 10), e=(-1, 0, 1), alpha=(0.5, 1), beta=(0.5, 1))


def chars_fits(transfer_k=1.9e4, transfer_beta=0.38, ranges=True) -> dict:
    """A fits.json in characters: the synthetic from-scratch law and a text transfer law."""
    fits = {"source": "hand-made", "units": "chars",
            "chinchilla": {"fitted": True, "units": "chars", "E": 0.8, "A": 30.0, "B": 95.0, "alpha": 0.25,
                           "beta": 0.3, "chars_per_token": 3.5},
            "transfer": {"text": {"fitted": True, "k": transfer_k, "alpha": 0.18, "beta": transfer_beta},
                         "docs": {"fitted": False, "reason": "not fitted: need ≥ 5 points with D_T > 0 (have 2)"}}}
    if ranges:
        fits["chinchilla"].update(n_range=[1e5, 1e7], d_range=[1e5, 3e9])
        fits["transfer_ranges"] = {"text": {"n_range": [1e5, 1e7], "d_f_range": [1e5, 1e7]}}
    return fits


def test_paper_laws_match_a_hand_computation():
    laws = load_laws(read_fits("paper"))
    plan = make_plan(laws, PlanRequest(d_f=1e8, sizes=(1e9,), pretrain=("text",), epochs=2))
    row = plan.rows.set_index("pretrain").loc["text"]
    # Hernandez et al. text -> Python (chars), Besiroglu et al. (tokens), 3.0 characters per token assumed.
    d_t = 1.9e4 * 1e8 ** 0.18 * 1e9 ** 0.38
    loss = 1.82 + 482.01 / 1e9 ** 0.3478 + 2085.43 / ((1e8 + d_t) / 3.0) ** 0.3658
    scratch = 1.82 + 482.01 / 1e9 ** 0.3478 + 2085.43 / (1e8 / 3.0) ** 0.3658
    assert row["d_t"] == pytest.approx(d_t, rel=1e-12) and row["d_e"] == pytest.approx(1e8 + d_t, rel=1e-12)
    assert row["multiplier"] == pytest.approx((1e8 + d_t) / 1e8, rel=1e-12)
    assert row["loss"] == pytest.approx(loss, rel=1e-12) and row["gain"] == pytest.approx(scratch - loss, rel=1e-9)
    assert row["compute"] == pytest.approx(6 * 1e9 * (1e8 / 3.0) * 2, rel=1e-12)
    # Compute-optimal data at N = 1e9: alpha A / N^alpha = beta B / D^beta, D in tokens, times 3 chars per token.
    d_opt = (0.3658 * 2085.43 * 1e9 ** 0.3478 / (0.3478 * 482.01)) ** (1 / 0.3658) * 3.0
    assert row["d_opt"] == pytest.approx(d_opt, rel=1e-12)
    assert laws.is_paper and "PAPER" in laws.label
    assert "'text' transfer law's range not recorded" in row["extrapolation"]


def test_paper_kaplan_matches_a_hand_computation():
    laws = load_laws(read_fits("paper:hoffmann"), law="kaplan")
    loss = float(predict(laws, "none", 1e9, 3e10)["loss"])
    assert loss == pytest.approx(((6.4e13 / 1e9) ** (0.076 / 0.103) + 1.8e13 / 1e10) ** 0.103, rel=1e-12)
    assert laws.scratch.form == "kaplan" and laws.scratch.n_range.low == 768


def test_a_law_in_tokens_predicts_what_the_same_law_in_characters_does():
    chars = chars_fits()
    cpt, alpha, beta = 3.5, chars["transfer"]["text"]["alpha"], chars["chinchilla"]["beta"]
    tokens = json.loads(json.dumps(chars))
    tokens["units"] = "tokens"
    tokens["transfer"]["text"]["k"] *= cpt ** (alpha - 1)           # D_T,tok = k_tok D_F,tok^alpha N^beta
    tokens["transfer_ranges"]["text"]["d_f_range"] = [1e5 / cpt, 1e7 / cpt]
    tokens["chinchilla"].update(units="tokens", B=chars["chinchilla"]["B"] * cpt ** -beta, d_range=[1e5 / cpt, 3e9 / cpt])
    a, b = load_laws(chars), load_laws(tokens)
    for name in ("none", "text"):
        got, want = predict(b, name, [1e5, 1e6], 1e6), predict(a, name, [1e5, 1e6], 1e6)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-12)
    assert b.scratch.d_range.low == pytest.approx(1e5) and b.transfer["text"].d_f_range.high == pytest.approx(1e7)


def test_predictions_outside_the_fitted_ranges_say_so_with_the_range():
    plan = make_plan(load_laws(chars_fits()), PlanRequest(d_f=1e6, sizes=(3e5, 1e8)))
    inside = plan.rows[(plan.rows["n_params"] == 3e5)]
    assert (inside["extrapolation"] == "").all()
    outside = plan.rows[(plan.rows["n_params"] == 1e8) & (plan.rows["pretrain"] == "text")].iloc[0]
    assert outside["extrapolation"] == ("N = 1e8 above the from-scratch law's 1e5–1e7; "
                                        "N = 1e8 above the 'text' transfer law's 1e5–1e7")
    small = make_plan(load_laws(chars_fits()), PlanRequest(d_f=1e3, sizes=(1e6,))).rows.set_index("pretrain")
    # D_T = 1.25e7 here, so D_E is inside the from-scratch range while D_F is below the transfer law's.
    assert small.loc["text", "extrapolation"] == "D_F = 1e3 chars below the 'text' transfer law's 1e5–1e7"
    assert small.loc["none", "extrapolation"] == "D = 1e3 chars below the from-scratch law's 1e5–3e9"


def test_best_size_is_the_largest_the_budget_allows_when_loss_falls_with_n():
    laws = load_laws(chars_fits())
    request = PlanRequest(d_f=3.5e6, sizes=(1e5, 1e6), budget=6e13)          # 1e6 tokens: N up to 1e7
    best = {b.pretrain: b for b in make_plan(laws, request).best}
    assert best["none"].n_params == pytest.approx(1e7, rel=1e-9) and best["none"].bound == "the budget"
    assert best["text"].n_params == pytest.approx(1e7, rel=1e-9) and best["text"].loss < best["none"].loss
    counted = make_plan(laws, PlanRequest(d_f=3.5e6, sizes=(1e5, 1e6), budget=6e13, count_pretraining=True,
                                          pretrain_tokens=9e6))              # 1e7 tokens per parameter: N up to 1e6
    text = next(b for b in counted.best if b.pretrain == "text")
    assert text.n_params == pytest.approx(1e6, rel=1e-9) and text.compute == pytest.approx(6e13, rel=1e-9)


def test_an_interior_optimum_is_found_when_transfer_falls_with_n():
    # D_T = 1e8 D_F^0.18 N^-0.5: a bigger model gains from N but loses transferred data; optimum near 1.5e6.
    laws = load_laws(chars_fits(transfer_k=1e8, transfer_beta=-0.5, ranges=False))
    request = PlanRequest(d_f=1e5, sizes=(1e3, 1e4), budget=1e16)
    best = next(b for b in make_plan(laws, request).best if b.pretrain == "text")
    assert best.bound.startswith("the predicted loss") and 1e6 < best.n_params < 3e6
    around = predict(laws, "text", [best.n_params / 1.1, best.n_params, best.n_params * 1.1], 1e5)["loss"]
    assert around[1] <= around[0] and around[1] <= around[2]


def test_no_budget_no_best_and_unfitted_names_are_said():
    plan = make_plan(load_laws(chars_fits()), PlanRequest(d_f=1e6))
    assert plan.best == [] and plan.sizes == pytest.approx((1e5, 3.2e5, 1e6, 3.2e6, 1e7))
    assert any("'docs' left out: its transfer law was not fitted" in note for note in plan.notes)
    assert "No shape comparison in these fits." in plan.notes


def test_shape_block_says_which_shape_it_favours():
    block = {"quantity": "loss", "n_params": 2e5, "pretrain": "text", "shapes": [
        {"name": "s200k-l1", "n_layer": 1, "d_model": 128, "value": 5.40, "interval": [5.35, 5.45]},
        {"name": "s200k-l8", "n_layer": 8, "d_model": 44, "value": 5.10, "interval": [5.05, 5.15]},
        {"name": "s200k-l4", "n_layer": 4, "d_model": 64, "value": 5.25, "interval": [5.20, 5.30]}]}
    verdict = parse_shape(block).verdict()
    assert "favours s200k-l8 (8 layers × 44)" in verdict and "not clear" not in verdict
    block["shapes"][2]["interval"] = [5.12, 5.30]
    assert "not clear" in parse_shape(block).verdict()
    higher = parse_shape({"quantity": "d_t", "shapes": [{"name": "wide", "value": 1e5}, {"name": "deep", "value": 3e5}]})
    assert "favours deep" in higher.verdict()
    plan = make_plan(load_laws({**chars_fits(), "shape": block}), PlanRequest(d_f=1e6))
    assert any("favours s200k-l8" in note for note in plan.notes)


def test_fits_of_a_from_scratch_only_study_plan_from_scratch_only(tmp_path):
    analyze(scratch_runs(log_noise=0.005), tmp_path, n_bootstrap=0, figures=False)
    plan = make_plan(load_laws(read_fits(tmp_path)), PlanRequest(d_f=1e6, budget=1e15))
    assert set(plan.rows["pretrain"]) == {"none"} and [b.pretrain for b in plan.best] == ["none"]
    assert any(note.startswith("no transfer law in these fits") for note in plan.notes)


def test_cli_prints_and_writes_the_plan_and_its_figure(tmp_path, capsys):
    out = tmp_path / "plan"
    assert main(["paper", "--d-f", "1e8", "--sizes", "1e8", "1e9", "1e10", "--budget", "1e21", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "**Built-in paper laws**" in printed and "## Best size for the budget" in printed
    assert (out / "PLAN.md").read_text().startswith("# Plan for D_F = 1e+08 characters")
    assert (out / "plan.png").stat().st_size > 20_000 and (out / "plan.svg").exists()


def _fits_file(tmp_path, fits) -> str:
    path = tmp_path / "fits.json"
    path.write_text(json.dumps(fits))
    return str(path)


@pytest.mark.parametrize("case, args, message", [
    ("no law", ["--d-f", "1e6"], "the fits have no fitted from-scratch law to predict losses with "
                                 "(chinchilla: not fitted: need ≥ 7 from-scratch points; kaplan: absent)"),
    ("zero D_F", ["--d-f", "0"], "D_F (target data, characters) must be a positive number (got 0.0)"),
    ("negative D_F", ["--d-f", "-5"], "D_F (target data, characters) must be a positive number (got -5.0)"),
    ("unknown name", ["--d-f", "1e6", "--pretrain", "code"],
     "unknown pretraining name 'code': these fits have transfer laws for text"),
    ("unfitted name", ["--d-f", "1e6", "--pretrain", "docs"],
     "pretraining 'docs' has no fitted transfer law in these fits (not fitted: need ≥ 5 points with D_T > 0 (have 2))"),
    ("missing file", ["--d-f", "1e6"], "fits file not found"),
    ("malformed shape", ["--d-f", "1e6"], "fits.json `shape` block needs a `shapes` list of at least two shapes"),
    ("budget, no chars per token", ["--d-f", "1e6", "--budget", "1e15"],
     "a compute budget needs characters per token to count tokens: pass --chars-per-token"),
])
def test_bad_input_is_one_clear_line_and_exit_2_with_nothing_written(tmp_path, capsys, case, args, message):
    fits = chars_fits()
    if case == "no law":
        fits["chinchilla"] = {"fitted": False, "reason": "not fitted: need ≥ 7 from-scratch points"}
    if case == "malformed shape":
        fits["shape"] = {"quantity": "loss", "shapes": [{"name": "only one", "value": 5.0}]}
    if case == "budget, no chars per token":
        fits["chinchilla"]["chars_per_token"] = None        # a table with data_chars only
    path = str(tmp_path / "absent.json") if case == "missing file" else _fits_file(tmp_path, fits)
    out = tmp_path / "out"
    assert main([path, *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("effdata.plan: ") and message in err
    assert not out.exists()


def test_heldout_check_of_an_exact_study_is_exact_and_beats_the_no_transfer_baseline():
    check = heldout_check(make_runs({"text": TRUE_TEXT, "text+code": TRUE_CODE}), grid=COARSE)
    summary = check.summary().set_index("group")
    assert list(summary.index) == ["D_F", "N"] and summary.loc["D_F", "folds"] == 5 and check.skipped == []
    # Exact laws: what is left is D_E read by PCHIP interpolation (< 0.1%) through the planner's path.
    assert (summary["mean_abs_error"] < 1e-4).all() and (summary["baseline_mean_abs_error"] > 1.0).all()
    assert summary.loc["N", "extrapolated"] == 20       # leaving out the smallest or largest N extrapolates
    assert "| one D_F at a time | 5 | 50 |" in render_heldout(check)


def test_heldout_check_with_noise_is_within_the_noise():
    # 30% log-normal noise on D_T moves a fine-tuned loss by about 0.02 nats/token here.
    check = heldout_check(make_runs({"text": TRUE_TEXT}, log_noise=0.3, seed=4), groups=("d_f",), grid=COARSE)
    summary = check.summary().iloc[0]
    assert 0.002 < summary["mean_abs_error"] < 0.05 and summary["mean_rel_error"] < 0.03


def test_paper_fits_have_the_shape_analyze_writes():
    fits = paper_fits()
    assert fits["transfer"]["text+code"] == {"fitted": True, "k": 2.1e5, "alpha": 0.096, "beta": 0.38, "intervals": {}}
    assert fits["chinchilla"]["E"] == 1.82 and paper_fits("paper:hoffmann")["chinchilla"]["alpha"] == 0.34
    assert math.isclose(fits["kaplan"]["n_c"], 6.4e13)
    with pytest.raises(PlanError, match="unknown law form"):
        load_laws(fits, law="power")
    with pytest.raises(PlanError, match="the fits file is malformed"):
        load_laws({**chars_fits(), "transfer_ranges": {"text": {"n_range": [1e5]}}})


def test_a_list_of_shape_blocks_gives_the_one_nearest_the_request():
    def block(quantity, d_f, best, pretrain="text", units="chars"):
        return {"quantity": quantity, "n_params": 2e5, "pretrain": pretrain, "d_f": d_f, "units": units,
                "shapes": [{"name": "wide", "value": 5.0 if best == "deep" else 4.0},
                           {"name": "deep", "value": 4.0 if best == "deep" else 5.0}]}
    blocks = [block("loss", 1e4, "deep"), block("loss", 1e6, "wide"), block("d_t", 1e6, "deep"),
              block("loss", 1e6, "deep", pretrain="code")]
    fits = chars_fits()
    fits["transfer"]["code"] = {"fitted": True, "k": 2.1e5, "alpha": 0.096, "beta": 0.38}
    laws = load_laws({**fits, "shape": blocks})
    assert len(laws.shapes) == 4
    near = lambda d_f, **kw: next(n for n in make_plan(laws, PlanRequest(d_f=d_f, **kw)).notes if "favours" in n)  # noqa: E731
    assert "favours deep" in near(2e4) and "D_F = 1e+04 chars" in near(2e4)
    assert "favours wide" in near(5e5) and "of 4 in the fits" in near(5e5)       # loss before d_t
    assert "favours deep" in near(5e5, pretrain=("code",)) and "pretrained on code" in near(5e5, pretrain=("code",))
    with pytest.raises(PlanError, match="empty list"):
        load_laws({**chars_fits(), "shape": []})


def test_a_planned_laws_audit_warnings_are_in_its_notes_and_an_unplanned_ones_are_not():
    fits = chars_fits()
    fits["transfer"]["code"] = {"fitted": True, "k": 1e4, "alpha": 0.2, "beta": 0.3}
    warned = "transfer law 'text': beta = 0.38 [0.1, 0.7]; its sign rests on w500k: without it beta = -0.1 (Huber)"
    fits["audit"] = {"laws": [{"law": "transfer law 'text'", "warnings": [warned]},
                              {"law": "transfer law 'code'", "warnings": []}]}
    notes = make_plan(load_laws(fits), PlanRequest(d_f=1e6)).notes
    assert f"The analysis's audit: {warned}" in notes
    assert not any("audit" in note for note in make_plan(load_laws(fits), PlanRequest(d_f=1e6, pretrain=("code",))).notes)
    assert not any("audit" in note for note in make_plan(load_laws(chars_fits()), PlanRequest(d_f=1e6)).notes)


def test_the_ranges_a_plan_marks_extrapolation_against_are_the_points_the_law_was_fitted_on():
    """v4's text+code headline left out w500k's extrapolated D_E, yet its plan said the law was fitted on N up to
    5e5 and did not mark a plan at w500k as an extrapolation: the range came from every D_T > 0. A check that can
    fail: the same table with no extrapolated point keeps the largest N."""
    sizes, d_fs = [1e4, 3e4, 1e5, 3e5], [1e4, 3e4]
    rows = [{"pretrain": "text+code", "n_params": n, "d_f": d, "d_t": 1e3 * (n / 1e4) ** 0.5, "beyond_reach": False,
             "no_scratch": False, "low_data": True, "extrapolated": n == sizes[-1]} for n in sizes for d in d_fs]
    table = pd.DataFrame(rows)
    headline = TransferFit(fitted=True, pretrain="text+code", units="chars", points="interpolated")
    assert transfer_ranges(table, {"text+code": headline})["text+code"] == {"n_range": [1e4, 1e5],
                                                                             "d_f_range": [1e4, 3e4]}
    inside = table.assign(extrapolated=False)
    assert transfer_ranges(inside, {"text+code": headline})["text+code"]["n_range"] == [1e4, 3e5]
    shown = TransferFit(fitted=False, pretrain="text+code", units="chars",
                        including_extrapolated=TransferFit(fitted=True, pretrain="text+code", units="chars",
                                                           points="including extrapolated"))
    assert transfer_ranges(table, {"text+code": shown})["text+code"]["n_range"] == [1e4, 3e5]
    assert transfer_ranges(table, {"text+code": TransferFit(fitted=False, pretrain="text+code", units="chars")}) == {}


def _budgeted(kind: str, label: str, p: tuple[float, float], tokens: tuple[float, float]) -> dict:
    """chars_fits() with the `budget` block effdata.analyze writes: how 'text''s checkpoints were pretrained."""
    fits = chars_fits()
    entry = {"base": "text", "pretrain": "text", "kind": kind, "label": label, "p_min": p[0], "p_max": p[1],
             "tokens_min": tokens[0], "tokens_max": tokens[1]}
    fits["budget"] = {"studies": [{"role": "compared table", "budgets": {"text": {**entry, "kind": "fixed"}}},
                                  {"role": "this table", "budgets": {"text": entry}}]}
    return fits


def test_a_plan_whose_pretraining_is_not_the_laws_is_marked_and_one_that_is_the_laws_is_not():
    """A transfer law's D_T is that of the pretraining it was fitted on (β at one token count grew from 0.01 to 0.53
    between 1.6 M and 15 M tokens on the CPU ladder). A check that can fail both ways: a law fitted at 30 tokens per
    parameter, asked about 15 M tokens for every size, is marked at 1e5 (3e6 tokens) and 1e7 (3e8) but not at
    5e5, where 30 per parameter is 15 M; and the same request on a law fitted at a fixed 15 M tokens is marked at
    no size."""
    per_param = _budgeted("per parameter", "30 tokens/parameter", (29.9, 30.1), (3e6, 3e8))
    plan = make_plan(load_laws(per_param), PlanRequest(d_f=1e6, sizes=(1e5, 5e5, 1e7), pretrain_tokens=1.5e7))
    text = plan.rows[plan.rows["pretrain"] == "text"].set_index("n_params")["extrapolation"]
    assert "pretraining 1.5e7 tokens, not the 'text' transfer law's 3e6 at this N (30 tokens/parameter)" in text[1e5]
    assert "pretraining" not in text[5e5] and "pretraining" in text[1e7]
    assert not plan.rows[plan.rows["pretrain"] == "none"]["extrapolation"].str.contains("pretraining").any()
    fixed = _budgeted("fixed", "fixed 15 M tokens (150–1.5 tokens/parameter)", (1.5, 150), (1.5e7, 1.5e7))
    same = make_plan(load_laws(fixed), PlanRequest(d_f=1e6, sizes=(1e5, 5e5, 1e7), pretrain_tokens=1.5e7))
    assert not same.rows["extrapolation"].str.contains("pretraining").any()
    by_param = make_plan(load_laws(fixed), PlanRequest(d_f=1e6, sizes=(1e5, 5e5), pretrain_tokens_per_param=30))
    assert by_param.rows.set_index(["pretrain", "n_params"]).loc[("text", 5e5), "extrapolation"] == ""
    assert "not the 'text' transfer law's 1.5e7" in by_param.rows.set_index(["pretrain", "n_params"]).loc[
        ("text", 1e5), "extrapolation"]


def test_the_laws_pretraining_is_named_and_a_plan_without_pretraining_tokens_is_told_to_give_them():
    fits = _budgeted("per parameter", "30 tokens/parameter", (29.9, 30.1), (3e6, 3e8))
    plan = make_plan(load_laws(fits), PlanRequest(d_f=1e6))
    assert "checkpoints pretrained on 30 tokens/parameter" in render_plan(plan)
    assert any("--pretrain-tokens-per-param" in note for note in plan.notes)
    given = make_plan(load_laws(fits), PlanRequest(d_f=1e6, pretrain_tokens_per_param=30))
    assert not any("--pretrain-tokens-per-param" in note for note in given.notes)
    unknown = make_plan(load_laws(chars_fits()), PlanRequest(d_f=1e6, sizes=(1e6,), pretrain_tokens=1e7))
    assert "pretraining budget not recorded" in render_plan(unknown)
    assert unknown.rows.set_index("pretrain").loc["text", "extrapolation"] == (
        "pretraining 1e7 tokens; the 'text' transfer law's pretraining budget is not recorded")


def test_every_committed_fits_json_names_the_pretraining_of_each_transfer_law():
    """The planner reads the budget effdata.analyze records: every committed analysis's fitted transfer laws have one,
    v4's at 30 tokens per parameter and cpu-fixed-tokens' at a fixed 15 M tokens."""
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    for path in sorted(root.glob("analysis/**/fits.json")):
        fits = read_fits(path)
        fitted = {name for name, entry in (fits.get("transfer") or {}).items() if entry.get("fitted")}
        assert fitted <= set(read_budgets(fits)), path
    v4 = load_laws(read_fits(root / "analysis/cpu/fits.json")).transfer["text+code"].pretraining
    assert v4.kind == "per parameter" and v4.tokens_at(1e5) == pytest.approx(3e6, rel=0.01)
    fixed = load_laws(read_fits(root / "analysis/cpu-fixed-tokens/fits.json")).transfer["text+code"].pretraining
    assert fixed.kind == "fixed" and fixed.tokens_at(1e3) == pytest.approx(15.05e6, rel=0.001)
