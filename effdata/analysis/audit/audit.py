"""Every answer audits itself: the checks of this folder run on the laws a table was fitted with.

`audit_table` takes what the pipeline measured and fitted and returns an `Audit`: per law, the exponents with
each N (and D_F) left out, another estimator, the largest N predicted from the rest and sensitivity rows;
the from-scratch runs that did not converge and the D_E they touch; the ladder's depth and width per N. Its
`warnings` open the report; `audit_section` (report.py here) shows the rest.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from effdata.analysis.audit.budget import audit_budget
from effdata.analysis.audit.confounds import Ladder, confound_warnings, ladder_shapes
from effdata.analysis.audit.convergence import (Convergence, check_convergence, convergence_warnings,
                                                d_e_on_unconverged, fine_tunes_at_first)
from effdata.analysis.audit.laws import audit_chinchilla, audit_kaplan
from effdata.analysis.audit.leverage import LawAudit
from effdata.analysis.audit.replicates import Replicates, by_replicate
from effdata.analysis.audit.transfer import audit_transfer, refit_exponents
from effdata.analysis.budget.budget import BudgetStudy
from effdata.analysis.core.fit import TransferFit, law_points
from effdata.analysis.core.table import ResultsTable
from effdata.analysis.laws.scaling import ChinchillaFit, KaplanFit


@dataclass
class Audit:
    laws: list[LawAudit] = field(default_factory=list)
    convergence: Convergence = field(default_factory=lambda: Convergence(None))
    d_e_marked: pd.Series = field(default_factory=lambda: pd.Series(dtype=bool))
    ladder: Ladder = field(default_factory=Ladder)

    @property
    def warnings(self) -> list[str]:
        found = convergence_warnings(self.convergence, int(self.d_e_marked.sum()))
        found += confound_warnings(self.ladder)
        for law in self.laws:
            found += law.warnings
        return found


def size_labels(runs: pd.DataFrame) -> dict[float, str]:
    """n_params -> the table's size name (n500k), where it has one."""
    if "size" not in runs:
        return {}
    named = runs.dropna(subset=["size"]).drop_duplicates("n_params")
    return {float(n): str(s) for n, s in zip(named["n_params"], named["size"])}


def total_params(runs: pd.DataFrame) -> dict[float, float]:
    if "n_params_total" not in runs:
        return {}
    known = runs.dropna(subset=["n_params_total"]).drop_duplicates("n_params")
    return {float(n): float(t) for n, t in zip(known["n_params"], known["n_params_total"])}


def _without_marked(audit: LawAudit, effective: pd.DataFrame, fit: TransferFit, marked: pd.Series, what: str) -> None:
    points, shown = law_points(effective, fit)
    hit = marked.reindex(points.index, fill_value=False).to_numpy(bool)
    if hit.any():
        kept = points[~hit]
        audit.sensitivity[f"without {int(hit.sum())} {what}"] = refit_exponents(
            *(kept[c].to_numpy(float) for c in ("d_f", "n_params", "d_t")), shown.huber_delta)


def _with_replicates(law: LawAudit, ladder: ResultsTable, curves: dict, fit: TransferFit, labels: dict) -> None:
    replicates = by_replicate(ladder, curves, fit, labels)
    law.sensitivity.update(replicates.exponents)
    law.form_by_replicate = replicates.alpha_per_decade
    law.replicate_spread = replicates.spread()
    law.form_over_replicates = replicates.change_over_replicates()
    _without_most(law, replicates)


def _without_most(law: LawAudit, replicates: Replicates) -> None:
    """Beside the replicates' means: the same without the N that moves the pooled value most (α's change: the form
    check's left-out refits; β: the audit's), where the replicates are independent."""
    most = law.form.most_moved_by() if law.form is not None else None
    without = replicates.change_over_replicates(without=most) if most is not None else None
    if law.form_over_replicates is not None and without is not None:
        law.form_over_replicates["without"] = {"n": most, "pooled": law.form.left_out[most], **without}
    by_n = {o.label: o.estimates["beta"] for o in law.left_out if o.group == "N" and np.isfinite(o.estimates["beta"])}
    if by_n:
        most = max(by_n, key=lambda label: abs(by_n[label] - law.estimates["beta"]))
        law.beta_over_replicates = replicates.exponent_over_replicates("beta", most)
        if law.beta_over_replicates is not None:
            law.beta_over_replicates["without"]["pooled"] = by_n[most]


def audit_table(table: ResultsTable, ladder: ResultsTable, effective: pd.DataFrame, fits: dict[str, TransferFit],
                kaplan: KaplanFit, chinchilla: ChinchillaFit | None, budget: BudgetStudy | None = None,
                draws: np.ndarray | None = None, seed: int = 0, curves: dict | None = None) -> Audit:
    """The audit of one measured and fitted table (the ladder view: one shape per N, what the laws use).
    `draws`: the bootstrap's D_T of every row of `effective` (Resamples.d_t), which the laws were fitted on;
    `curves`: the from-scratch curves `effective` was read off (for the refits on each pretraining seed alone)."""
    labels, totals = size_labels(table.seed_runs), total_params(table.seed_runs)
    convergence = check_convergence(table.seed_runs, ladder.scratch, ladder.data_column)
    marked = d_e_on_unconverged(effective, ladder.scratch, ladder.data_column, convergence)
    first = fine_tunes_at_first(effective, convergence, ladder.data_column)
    audit = Audit(convergence=convergence, d_e_marked=marked, ladder=ladder_shapes(ladder.runs))
    for name, fit in fits.items():
        law = audit_transfer(effective, fit, labels, totals, draws, seed)
        if law is not None:
            _without_marked(law, effective, fit, marked, "D_E read on not-converged runs")
            _without_marked(law, effective, fit, first, "fine-tunes at their first length")
            if curves is not None:
                _with_replicates(law, ladder, curves, fit, labels)
            audit.laws.append(law)
    if budget is not None:   # this table's γ laws (studies[0]); a compared table is audited by its own report
        study = budget.studies[0]
        audit.laws += [law for fit in study.fits.values() if (law := audit_budget(study.points, fit, labels))]
    converged = convergence.point_converged
    for law in (audit_kaplan(ladder.scratch, kaplan, labels, converged),
                audit_chinchilla(ladder.scratch, chinchilla, labels, converged) if chinchilla is not None else None):
        if law is not None:
            audit.laws.append(law)
    return audit


def audit_json(audit: Audit) -> dict:
    """fits.json's `audit`: per law its refits and warnings, the runs that did not converge, the ladder."""
    laws = [{"law": law.law, "estimates": law.estimates, "intervals": law.intervals,
             "left_out": [{"group": o.group, "label": o.label, "estimates": o.estimates, "other": o.other}
                          for o in law.left_out],
             "estimators": list(law.estimators), "other_estimate": law.other_estimate,
             "extrapolation": None if law.extrapolation is None else vars(law.extrapolation),
             "sensitivity": law.sensitivity, "alpha_by_n": None if law.form is None else law.form.to_dict(),
             **({"beta_by_n": law.bend.to_dict()} if law.bend is not None else {}),
             **({"flat": law.flat} if law.flat else {}),
             **({"unpinned": [vars(u) for u in law.unpinned]} if law.unpinned else {}),
             **({"alpha_per_decade_by_replicate": law.form_by_replicate} if law.form_by_replicate else {}),
             **({"sd_over_replicates": law.replicate_spread} if law.replicate_spread else {}),
             **({"alpha_per_decade_over_replicates": law.form_over_replicates} if law.form_over_replicates else {}),
             **({"beta_over_replicates": law.beta_over_replicates} if law.beta_over_replicates else {}),
             "warnings": law.warnings} for law in audit.laws]
    bad = audit.convergence.not_converged
    return {"laws": laws, "warnings": audit.warnings,
            "convergence": {"checked": audit.convergence.checked, "column": audit.convergence.column,
                            "runs": audit.convergence.n_runs,
                            "not_converged": bad.replace({np.nan: None}).to_dict("records") if len(bad) else [],
                            "d_e_marked": int(audit.d_e_marked.sum()),
                            "at_first_length": audit.convergence.at_first.replace({np.nan: None}).to_dict("records")},
            "ladder": audit.ladder.rows.to_dict("records") if audit.ladder.checked else None}
