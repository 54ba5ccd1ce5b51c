"""The report's section *Audit: what each answer rests on* (its warnings open the report)."""
from __future__ import annotations

import numpy as np

from effdata.analysis.audit.audit import Audit
from effdata.analysis.audit.convergence import FIX
from effdata.analysis.audit.form import ALARM_PERCENTILES, SYMBOL, ExponentByN
from effdata.analysis.audit.leverage import LEVERAGE_HALF_WIDTHS, LawAudit
from effdata.analysis.audit.replicates import ALONE, OWN
from effdata.analysis.core.markdown import markdown_table
from effdata.fmt import sig


def _cell(value) -> str:
    return sig(value) if value is not None and np.isfinite(value) else "—"


def _law_table(law: LawAudit) -> list[str]:
    names = list(law.estimates)
    interval = lambda n: f" [{sig(law.intervals[n][0])}, {sig(law.intervals[n][1])}]" if n in law.intervals else ""  # noqa: E731
    rows = [[f"headline ({law.estimators[0]})", *[f"{_cell(law.estimates[n])}{interval(n)}" for n in names]]]
    if law.other_estimate is not None:
        rows.append([law.estimators[1], *[_cell(law.other_estimate.get(n)) for n in names]])
    both = lambda o, n: _cell(o.estimates.get(n)) + (f" ({_cell(o.other.get(n))})" if o.other else "")  # noqa: E731
    rows += [[f"without {o.label}", *[both(o, n) for n in names]] for o in law.left_out]
    rows += [[label, *[_cell(values.get(n)) for n in names]] for label, values in law.sensitivity.items()]
    lines = [f"**{law.law}**", "", markdown_table(["fit", *names], rows), ""]
    if any(o.other for o in law.left_out):
        lines += [f"Left-out rows: {law.estimators[0]} ({law.estimators[1]} in brackets).", ""]
    if law.flat:
        each = "; ".join(f"every {SYMBOL[name]} in [{sig(low)}, {sig(high)}]" for name, (low, high) in law.flat.items())
        lines += [f"The Huber fit's least loss is not one point: {each} reaches it (the headline shows the point of "
                  "least squared residuals; docs/METHOD.md §6).", ""]
    if law.unpinned:
        each = "; ".join(f"{u.label if u.label == 'the headline' else f'without {u.label}'} ({u.estimator}): every "
                         f"{SYMBOL.get(u.exponent, u.exponent)} in "
                         f"[{sig(u.low)}, {sig(u.high)}]" for u in law.unpinned)
        lines += [f"Not pinned (refits from different starts reach the same least loss; the table shows where the "
                  f"best start stopped, docs/METHOD.md §6): {each}.", ""]
    if law.extrapolation is not None:
        e = law.extrapolation
        size = (f"a factor of {np.exp(e.error):.3g} in D_T" if e.unit == "log D_T" else f"{sig(e.error)} nats/token")
        lines += [f"Fitted on every size but {e.label} and asked about its {e.n_points} points: off by {size} on "
                  "average.", ""]
    forms = [form for form in (law.form, law.bend) if form is not None]
    return lines + [line for form in forms for line in _form_lines(form)] + _replicate_lines(law)


def _replicate_lines(law: LawAudit) -> list[str]:
    """α's change per decade of N with each pretraining seed's runs alone (audit/replicates.py), and where the
    replicates are independent, each exponent's spread between them."""
    if not law.form_by_replicate:
        return []
    each = ", ".join(f"{_cell(v)} ({label.removesuffix(ALONE).removesuffix(OWN)})"
                     for label, v in law.form_by_replicate.items())
    if not law.replicate_spread:
        return [f"With each pretraining seed's runs alone (the rows *seed … alone* above, on the same from-scratch "
                f"curves; no interval): α changes by {each} per decade of N.", ""]
    k, z = len(law.form_by_replicate), 1.645
    spread = "; ".join(f"{name} {sig(sd)}: ±{sig(z * sd)} for one replicate, ±{sig(z * sd / np.sqrt(k))} for the mean of "
                       f"{k}" for name, sd in law.replicate_spread.items())
    return [f"With each seed's runs alone (the rows *seed … alone* above: its pretrainings, fine-tunes and "
            f"from-scratch runs, what a study run with that one seed gives; independent replicates, no interval): α "
            f"changes by {each} per decade of N. The exponents' standard deviation between replicates, and the "
            f"half-width of a 90 % interval it implies (normal): {spread}. A one-seed study's interval should be about "
            "as wide as the first, this table's headline interval about as wide as the second."
            + _change_over_replicates(law.form_over_replicates) + _beta_over_replicates(law.beta_over_replicates), ""]


def _beta_over_replicates(beta: dict | None) -> str:
    if beta is None:
        return ""
    rest = beta["without"]
    return (f" β averaged over the {beta['replicates']} replicates: {sig(beta['mean'])}{_bracket(beta['interval'])}; "
            f"without {rest['n']} (the N that moves the pooled β most: {sig(rest['pooled'])}) "
            f"{sig(rest['mean'])}{_bracket(rest['interval'])} (90 % t intervals).")


def _change_over_replicates(change: dict | None) -> str:
    if change is None:
        return ""
    return (f" α's change per decade averaged over the {change['replicates']} replicates: {sig(change['mean'])}"
            f"{_bracket(change['interval'])} (90 % t interval), p = {sig(change['p_value'])} against no change (a test "
            "of its sign that does not lean on the bootstrap)." + _without_over_replicates(change.get("without")))


def _without_over_replicates(without: dict | None) -> str:
    if without is None:
        return ""
    return (f" Without {without['n']} (the N that moves the pooled change most: {sig(without['pooled'])}), the "
            f"replicates' changes average {sig(without['mean'])}{_bracket(without['interval'])}, p = "
            f"{sig(without['p_value'])} over {without['replicates']}.")


def _bracket(interval) -> str:
    return f" [{sig(interval[0])}, {sig(interval[1])}]" if interval is not None else ""


# How each check lets its exponent change with N, and what a change means for the headline.
FORM_QUESTION = {"alpha": "With α free to change linearly in ln N",
                 "beta": "With β free to change linearly in ln N, ln D_T a parabola in ln N"}
FORM_MEANING = {"alpha": "and β depends on the D_F range", "beta": "and β depends on the N range"}


def _form_lines(form: ExponentByN) -> list[str]:
    symbol = SYMBOL[form.exponent]
    ends = ", ".join(f"{sig(a)}{_bracket(i)} at {label}" for label, (a, i) in form.at.items())
    level = f"{ALARM_PERCENTILES[1] - ALARM_PERCENTILES[0]:g} %"
    if form.alarm_interval is None:
        verdict = "no interval (no bootstrap), so no verdict"
    elif form.differs:
        verdict = (f"its {level} interval{_bracket(form.alarm_interval)} excludes zero: one {symbol} does not fit "
                   f"every N, {FORM_MEANING[form.exponent]}")
    elif form.interval is not None and (form.interval[0] > 0 or form.interval[1] < 0):
        verdict = (f"its 90 % interval excludes zero, its {level} interval{_bracket(form.alarm_interval)} (the "
                   "warning's) does not: a lean, not a finding")
    else:
        verdict = (f"its {level} interval{_bracket(form.alarm_interval)} holds zero: this table cannot tell {symbol} "
                   f"changing with N from one {symbol}")
    return [f"One {symbol} for every N? {FORM_QUESTION[form.exponent]} (on the same {form.n_points} points and "
            f"resamples): {symbol} is {ends}, a change of {sig(form.per_decade)}{_bracket(form.interval)} per decade "
            f"of N; {verdict}.{_form_left_out(form)}", ""]


def _form_left_out(form: ExponentByN) -> str:
    pinned = {label: v for label, v in form.left_out.items() if np.isfinite(v)}
    if not pinned:
        return ""
    each = ", ".join(f"{sig(v)} without {label}" for label, v in pinned.items())
    return (f" With each N left out (no interval): {each}; the N that moves it most is "
            f"{form.most_moved_by()}.")


def _convergence_lines(audit: Audit) -> list[str]:
    c = audit.convergence
    if not c.checked:
        return ["Convergence could not be checked: the table does not say why its runs stopped (no `stop_reason` or "
                "`stopped` column).", ""]
    bad = c.not_converged
    if bad.empty:
        return [f"All {c.n_runs} from-scratch runs stopped by early stopping.", ""]
    header = list(bad.columns)
    rows = [[_cell(v) if isinstance(v, float) else str(v) for v in row] for row in bad.itertuples(index=False)]
    return [f"{len(bad)} of {c.n_runs} from-scratch runs did not stop by early stopping: their losses are upper bounds "
            f"on what their N reaches on their D. {int(audit.d_e_marked.sum())} D_E are read on a stretch of a curve "
            f"such a run makes (the rows *without … not-converged* above refit without them). To fix: {FIX}.", "",
            markdown_table(header, rows), ""]


def _first_length_lines(audit: Audit) -> list[str]:
    first = audit.convergence.at_first
    if first.empty:
        return []
    body = [[_cell(v) if isinstance(v, float) else str(v) for v in row] for row in first.itertuples(index=False)]
    return [f"{len(first)} runs kept the shortest length their search tried, or their starting model "
            "(`best_is_first`): their losses are upper bounds (the rows *without … at their first length* above "
            "refit without those fine-tunes). To fix: a shorter first length (`min_steps`).", "",
            markdown_table(list(first.columns), body), ""]


def _ladder_lines(audit: Audit) -> list[str]:
    if not audit.ladder.checked:
        return ["Depth and width per N are not in the table (`n_layer`, `d_model`): the ladder was not checked.", ""]
    rows = audit.ladder.rows
    header = list(rows.columns)
    body = [[_cell(v) if isinstance(v, float) else str(v) for v in row] for row in rows.itertuples(index=False)]
    verdict = ("Depth changes with N: exponents of N mix width and depth." if audit.ladder.depth_changes
               else "One depth at every N: exponents of N are exponents of width (and the embedding's share).")
    return [verdict, "", markdown_table(header, body), ""]


def audit_section(audit: Audit) -> list[str]:
    lines = ["## Audit: what each answer rests on", "",
             "Every fitted exponent refitted with each N left out (and each D_F for the transfer law), by a second "
             "estimator, and on the largest N predicted from the others; sensitivity rows beside them. A warning at "
             f"the top of this report names a size when leaving it out flips an exponent's sign or moves it by more "
             f"than {LEVERAGE_HALF_WIDTHS:g} half-widths of its interval, and an estimator when the two differ by more "
             "than a half-width (docs/METHOD.md §6).", ""]
    for law in audit.laws:
        lines += _law_table(law)
    lines += ["### Convergence", ""] + _convergence_lines(audit) + _first_length_lines(audit)
    lines += ["### The N ladder", ""] + _ladder_lines(audit)
    return lines
