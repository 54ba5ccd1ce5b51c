"""The report's *Training dynamics* section: the curve table read, L(N, S) beside Kaplan's, the forecasts'
error at 10/20/50 % of a run, and B_crit(L) where the noise scale was measured. No torch."""
from __future__ import annotations

import math

from effdata.analysis.core.markdown import markdown_table
from effdata.analysis.dynamics.dynamics import DynamicsStudy
from effdata.analysis.dynamics.forecast import MIN_OWN_POINTS
from effdata.analysis.dynamics.law import PAPER_LEARNING_CURVE, LearningCurveFit
from effdata.analysis.dynamics.noise import PAPER_CRITICAL_BATCH, NoiseScaleFit
from effdata.fmt import sig

STEP_WORDS = {"S": "plain optimiser steps S",
              "S_min": "S_min = S/(1 + B_crit(L)/B) (Kaplan eq. 5.4), B_crit(L) the fitted law of the critical batch below"}


def _percent(value: float, signed: bool = False) -> str:
    """A relative error as a percentage; "—" where no run could be forecast."""
    if math.isnan(value):
        return "—"
    return f"{100 * value:+.2g} %" if signed else f"{100 * value:.2g} %"


def _cell(value: float, interval) -> str:
    return f"{sig(value)} [{sig(interval[0])}, {sig(interval[1])}]" if interval else f"{sig(value)} (no interval)"


def _law_lines(law: LearningCurveFit) -> list[str]:
    if not law.fitted:
        return [f"L(N, {law.steps}) not fitted: {law.reason}.", ""]
    rows = [[name, _cell(getattr(law, key), law.intervals.get(key)), sig(PAPER_LEARNING_CURVE[key])]
            for name, key in (("α_N", "alpha_n"), ("N_c", "n_c"), ("α_S", "alpha_s"), ("S_c", "s_c"))]
    held = ", ".join(f"N = {sig(n)}: {100 * e:.2g} %" for n, e in law.held_out.items())
    return [f"L(N, S) = (N_c/N)^α_N + (S_c/S)^α_S in {STEP_WORDS[law.steps]}; {law.n_runs} runs at "
            f"{len(law.sizes)} N, {law.n_points} evaluations (after warm-up, up to each run's best; of each N the "
            "runs with the most data: the law has no data term). 90 % intervals: bootstrap over runs, t-scaled with "
            f"{max(1, len(law.sizes) - 2)} degree(s) of freedom for the N term (sizes − 2) and {max(1, law.n_runs - 2)} "
            "for the S term (runs − 2).", "",
            markdown_table(["parameter", "fitted [90 %]", "Kaplan et al. 2020 (S_min, tokens of WebText2)"], rows), "",
            f"- In-sample RMS of log-loss residuals: {sig(law.rms_log)}.",
            f"- Held-out (each N left out, predicted by the law of the others; RMS relative error): {held}." if held
            else "- No held-out check (needs ≥ 3 N).", ""]


def _forecast_lines(study: DynamicsStudy) -> list[str]:
    summary = study.forecasts.summary
    if summary.empty:
        return ["No from-scratch curves to forecast.", ""]
    rows = []
    for _, r in summary.sort_values(["in_law", "method", "fraction"], ascending=[False, True, True]).iterrows():
        rows.append([f"{100 * r['fraction']:.0f} %", r["method"], "most data" if r["in_law"] else "less data",
                     f"{r['forecast']}/{r['runs']}", _percent(r["median_abs_error"]),
                     _percent(r["p90_abs_error"]), _percent(r["mean_error"], signed=True)])
    return ["Each from-scratch run's best held-out loss forecast from its evaluations up to 10, 20 and 50 % of its "
            "planned steps: `law` = the shape in S of L(N, S) fitted on the *other* runs, with the run's own "
            f"level from what it has seen; `own` = c + b·S^(−a) fitted to its seen points alone (needs "
            f"{MIN_OWN_POINTS}). The error is relative to the run's best loss; runs with less data than the "
            "largest of their N overfit and stop early, which no power law in S foresees.", "",
            markdown_table(["seen", "method", "runs", "forecast/runs", "median abs error", "90th pct",
                            "mean (bias)"], rows), "", "Per run and fraction: `forecasts.csv`.", ""]


def _noise_lines(fit: NoiseScaleFit | None) -> list[str]:
    if fit is None:
        return ["No noise scale in the curves (train with `noise_scale = true` under `[train]` to measure "
                "B_simple at each evaluation): no B_crit(L), and L(N, S) is in plain steps.", ""]
    if not fit.fitted:
        return [f"B_crit(L) not fitted: {fit.reason}.", ""]
    paper = PAPER_CRITICAL_BATCH
    return ["B_crit(L) = B*/L^(1/α_B), B_crit ≈ B_simple = tr(Σ)/|G|² (McCandlish et al. 2018) measured at each "
            f"evaluation after step 0 of the from-scratch runs, in tokens; {len(fit.points)} evaluations "
            f"({fit.left_out} more left out: an estimate ≤ 0, noise-dominated). 90 % intervals: bootstrap over runs.",
            "",
            markdown_table(["parameter", "fitted [90 %]", "Kaplan et al. 2020"],
                           [["B* (tokens)", _cell(fit.b_star, fit.intervals.get("b_star")), sig(paper["b_star"])],
                            ["α_B", _cell(fit.alpha_b, fit.intervals.get("alpha_b")), sig(paper["alpha_b"])]]), ""]


def _answer_lines(study: DynamicsStudy) -> list[str]:
    """Steps and batch for the example targets at each fitted N, and the frontier where it can be drawn."""
    if not study.answers:
        return []
    return ["### Steps and batch for a target loss", "",
            *answers_markdown(study.answering_law, study.answers, study.frontier,
                              "Targets: the lowest loss the fitted runs reached and the middle of their range.")]


def answers_markdown(law: LearningCurveFit, answers: list, frontier: list, targets_words: str = "") -> list[str]:
    """The steps table and the frontier table (the report's section and `python -m effdata.plan --target-loss`)."""
    rows = [[sig(a.target), sig(a.n), sig(a.steps), sig(a.batch_tokens), sig(a.tokens), sig(a.compute),
             "; ".join(a.flags) or "—"] for a in answers]
    batch_words = ("the batch is B_crit(L) (Kaplan's compromise: twice the fewest steps, twice the fewest tokens)"
                   if law.steps == "S_min" else "at the batch the runs used (no noise scale: no critical batch)")
    lines = [f"From L(N, {law.steps}) solved for the steps; {batch_words}. {targets_words} An answer outside the "
             "fitted ranges says so.".replace("  ", " "), "",
             markdown_table(["target loss", "N", "steps", "batch (tokens)", "tokens", "FLOPs (6·N·tokens)", "flags"],
                            rows), ""]
    if frontier:
        rows = [[sig(f.loss), sig(f.n_opt), sig(f.c_min), "; ".join(f.flags) or "—"] for f in frontier]
        lines += ["Compute-efficient frontier: C_min(L) = min over N of 6·N·E_min(N, L), E_min = B_crit(L)·S_min.",
                  "", markdown_table(["loss", "N_opt", "C_min (FLOPs)", "flags"], rows), ""]
    return lines


def dynamics_section(study: DynamicsStudy) -> list[str]:
    curves = study.curves
    lines = ["## Training dynamics", "",
             f"Learning curves from `{study.source}`: {len(curves.runs)} runs, {len(curves.points)} evaluations with "
             "a held-out loss" + (" (what it set aside is under *Warnings*)." if curves.warnings else "."), ""]
    lines += ["### Learning-curve law L(N, S)", ""] + _law_lines(study.law)
    if study.law_min is not None:
        lines += ["In S_min:", ""] + _law_lines(study.law_min)
    lines += ["Kaplan's S_c and α_S are for S_min with a constant learning rate after warm-up; runs that decay it "
              "(cosine or wsd) bend at their end, so α_S and S_c here describe this schedule, not the paper's.", ""]
    lines += ["### Forecasting a run's best loss from its start", ""] + _forecast_lines(study)
    lines += ["### Critical batch size", ""] + _noise_lines(study.noise)
    return lines + _answer_lines(study)
