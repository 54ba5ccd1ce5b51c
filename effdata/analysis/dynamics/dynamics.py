"""Training dynamics of a table with learning curves: L(N, S), forecasts from early curves, the noise scale.

`study_dynamics` is what the pipeline calls when a curve table is present (`curves.csv` beside the results
table, or `--curves`); its result feeds the report's *Training dynamics* section (`dynamics/report.py`), the
figures (`dynamics/plots.py`), fits.json's `dynamics` and `forecasts.csv`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from effdata.analysis.core.memo import by_content
from effdata.analysis.dynamics.answers import FrontierPoint, StepsAnswer, answer_all
from effdata.analysis.dynamics.forecast import ForecastResult, forecast_runs
from effdata.analysis.dynamics.history import CurveTable, scratch_part
from effdata.analysis.dynamics.law import (
    LAW_BOOTSTRAP,
    LearningCurveFit,
    fit_learning_curve,
)
from effdata.analysis.dynamics.noise import NoiseScaleFit, fit_critical_batch


@dataclass
class DynamicsStudy:
    source: str
    curves: CurveTable
    law: LearningCurveFit                 # L(N, S), plain steps
    law_min: LearningCurveFit | None      # L(N, S_min), where the noise scale was measured
    forecasts: ForecastResult
    noise: NoiseScaleFit | None           # B_crit(L) across runs, where the noise scale was measured
    answers: list[StepsAnswer] = field(default_factory=list)      # steps and batch for example targets
    frontier: list[FrontierPoint] = field(default_factory=list)   # C_min(L), N_opt (needs L(N, S_min))

    @property
    def answering_law(self) -> LearningCurveFit:
        """The law the answers use: in S_min where it was fitted (it knows the batch), else in plain S."""
        return self.law_min if self.law_min is not None and self.law_min.fitted else self.law

    def to_dict(self) -> dict:
        return {"source": self.source, "runs": len(self.curves.runs),
                "evaluations": len(self.curves.points), "law": self.law.to_dict(),
                "law_s_min": self.law_min.to_dict() if self.law_min else None,
                "forecasts": self.forecasts.to_dict(), "critical_batch": self.noise.to_dict() if self.noise else None,
                "answers": [asdict(a) for a in self.answers], "frontier": [asdict(f) for f in self.frontier],
                "warnings": self.curves.warnings}


def study_dynamics(curves: CurveTable, source: str, n_bootstrap: int, seed: int) -> DynamicsStudy:
    """Every dynamics result of one curve table; the law's bootstrap capped at LAW_BOOTSTRAP resamples."""
    resamples = min(n_bootstrap, LAW_BOOTSTRAP)
    law, forecasts = _scratch_dynamics(scratch_part(curves), resamples, seed)
    noise = fit_critical_batch(curves, resamples, seed) if curves.has_noise_scale else None
    law_min = fit_learning_curve(curves, resamples, seed, b_crit=noise.b_crit) if noise and noise.fitted else None
    study = DynamicsStudy(source, curves, law, law_min, forecasts, noise)
    if study.answering_law.fitted:
        study.answers, study.frontier = answer_all(study.answering_law, noise)
    return study


@by_content()
def _scratch_dynamics(scratch: CurveTable, resamples: int, seed: int) -> tuple[LearningCurveFit, ForecastResult]:
    """L(N, S) and the forecasts: functions of the from-scratch curves alone, remembered (core/memo.py), since
    the committed reports share a few from-scratch tables among many (v4's under six; a fifth of such a
    report's analysis, by cProfile)."""
    return fit_learning_curve(scratch, resamples, seed), forecast_runs(scratch)
