"""The report's *Pretraining budget* section: β under each budget, γ, and the fixed-budget check. No torch.

From `budget.BudgetStudy` (docs/METHOD.md §5d): a row per distribution × budget (each pretraining name's
transfer law, this table's and the compared table's), each β with a one-line reading of its 90% interval;
the γ law per distribution; and the fixed-budget β that this table's β and γ predict against the one the
other table measured.
"""
from __future__ import annotations

from effdata.analysis.budget.budget import BudgetFit, BudgetStudy, reading, usable
from effdata.fmt import sig

UNIT_WORDS = {"chars": "characters", "tokens": "tokens"}
EXTRAPOLATED_MARK = "†"      # a row including extrapolated D_E, shown because there is no headline law


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows] + [""]


def with_interval(value, interval, digits: int = 3) -> str:
    if value is None:
        return "—"
    if not interval:
        return f"{sig(value, digits)} (no interval)"
    return f"{sig(value, digits)} [{sig(interval[0], digits)}, {sig(interval[1], digits)}]"


def _parameter(fit, name: str) -> str:
    return with_interval(getattr(fit, name), fit.intervals.get(name))


def _budget_rows(budget: BudgetStudy) -> tuple[list[list[str]], list[str]]:
    """(a row per distribution × budget × table, a verdict line each)."""
    rows, verdicts = [], []
    several = len(budget.studies) > 1
    for base in budget.bases:
        for study in budget.studies:
            for name in study.names(base):
                label = study.budgets[name].label
                fit, why = usable(study.transfer.get(name))
                where = f" ({study.role})" if several else ""
                if fit is None:
                    rows.append([f"`{base}`", label, f"`{name}`", *([study.role] if several else []), why, "", "", "",
                                 ""])
                    verdicts.append(f"- `{base}`, {label}{where} (`{name}`): no transfer law ({why}).")
                    continue
                mark = EXTRAPOLATED_MARK if why else ""
                verdict = reading(fit.intervals.get("beta"))
                rows.append([f"`{base}`", label, f"`{name}`", *([study.role] if several else []),
                             _parameter(fit, "beta") + mark, _parameter(fit, "alpha"), _parameter(fit, "k"),
                             str(fit.n_points), verdict])
                verdicts.append(f"- `{base}`, {label}{where}: β = {_parameter(fit, 'beta')}{mark}: **{verdict}**.")
    return rows, verdicts


def _gamma_rows(budget: BudgetStudy) -> tuple[list[list[str]], list[str]]:
    """(a row per distribution and table whose γ law was fitted, a line each: its reading, or why not)."""
    rows, lines = [], []
    several = len(budget.studies) > 1
    for base in budget.bases:
        for study in budget.studies:
            stored = study.fits.get(base)
            if stored is None:
                continue
            fit, why = usable(stored)
            where = f" ({study.role})" if several else ""
            if fit is None:
                lines.append(f"- `{base}`{where}: γ not fitted ({why.removeprefix('not fitted: ')}).")
                continue
            mark = EXTRAPOLATED_MARK if why else ""
            budgets = f"{fit.n_points} ({fit.n_distinct_p} budgets, P = {sig(fit.p_range[0], 2)}–{sig(fit.p_range[1], 2)})"
            rows.append([f"`{base}`", *([study.role] if several else []), _parameter(fit, "gamma") + mark,
                         _parameter(fit, "beta"), _parameter(fit, "alpha"), _parameter(fit, "k"), budgets,
                         reading(fit.intervals.get("gamma"))])
            lines.append(_gamma_line(fit, where, mark))
    return rows, lines


def _gamma_line(fit: BudgetFit, where: str, mark: str) -> str:
    verdict = reading(fit.intervals.get("gamma"))
    meaning = {"positive": "more pretraining per parameter, more data transferred",
               "negative": "more pretraining per parameter, less data transferred",
               "consistent with zero": "no effect of the budget that the intervals can tell from zero",
               "no interval": "no interval"}[verdict]
    return f"- `{fit.base}`{where}: γ = {_parameter(fit, 'gamma')}{mark}: **{verdict}** ({meaning})."


def _check_lines(budget: BudgetStudy) -> list[str]:
    if not budget.checks:
        return ["No compared table of the same distributions (`--budget-compare`): no fixed-budget check.", ""]
    rows, lines = [], []
    for base, check in budget.checks.items():
        if check.reason is not None:
            lines.append(f"- `{base}`: no check: {check.reason}.")
            continue
        rows.append([f"`{base}`", f"{with_interval(check.predicted, check.predicted_interval)} "
                     f"({check.grown}: β at {check.reference_label} − γ)",
                     f"{with_interval(check.measured, check.measured_interval)} ({check.fixed}: {check.fixed_label})",
                     with_interval(check.difference, check.difference_interval), check.verdict])
        lines += [f"- `{base}`: {note}." for note in check.notes]
    table = _table(["distribution", "predicted fixed-budget β [90%]", "measured β [90%]",
                    "predicted − measured [90%]", "reading"], rows) if rows else []
    return table + lines + ([""] if lines else [])


def budget_section(budget: BudgetStudy) -> list[str]:
    units = UNIT_WORDS.get(budget.units, budget.units)
    sources = "; ".join(f"{s.role}: `{s.source}`" for s in budget.studies)
    lines = ["## Pretraining budget", "",
             "How long the starting model was pretrained, as P = its pretraining tokens per parameter (the "
             "fine-tunes' `pretrain_tokens_per_param`, else the pretraining run's tokens_seen / N). Names with the "
             "same distribution before `@` (`text`, `text@10tpp`) differ only in P. Each row is one name's transfer "
             f"law D_T = k·D_F^α·N^β (D in {units}; the headline law, else the row including extrapolated D_E, "
             f"marked {EXTRAPOLATED_MARK}); its reading comes from β's 90% interval alone. Tables: {sources}.", ""]
    rows, verdicts = _budget_rows(budget)
    several = len(budget.studies) > 1
    lines += _table(["distribution", "budget", "pretraining name", *(["table"] if several else []), "β [90%]", "α [90%]", "k [90%]",
                     "points", "β reads"], rows)
    lines += verdicts + ["", "### γ: D_T against pretraining tokens per parameter", "",
                         "log D_T = log k + α·log D_F + β·log N + γ·log P, fitted on every budget of a distribution "
                         "at once, on the transfer law's points (the same selection, Huber loss and resamples of the "
                         "runs): β is the slope in N at fixed P, γ the slope in P at fixed N. It needs ≥ 2 N that "
                         "each have ≥ 2 budgets; a fixed token budget ties P to N.", ""]
    gamma_rows, gamma_lines = _gamma_rows(budget)
    if gamma_rows:
        lines += _table(["distribution", *(["table"] if several else []), "γ [90%]", "β at fixed P [90%]", "α [90%]",
                         "k [90%]", "points (budgets)", "γ reads"], gamma_rows)
    lines += gamma_lines + ["", "### A fixed budget: the β it predicts against the β measured", "",
                            "Under a fixed token budget B, P = B/N, so if D_T ∝ N^β·P^γ the slope in N is β − γ. "
                            "Predicted from the table with budgets per parameter (β at its largest P minus γ, both "
                            "from the same resamples, paired) and set against the β the other table measured. The "
                            "identity assumes the two studies differ only in the pretraining budget; anything else "
                            "that differs between them (learning rate, steps) enters the difference too "
                            "(docs/METHOD.md §5d).", ""]
    return lines + _check_lines(budget)
