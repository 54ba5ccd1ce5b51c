"""Measurement (not a test): coverage and bias of the analysis on synthetic studies shaped like jobs/cpu.toml.

    .venv/bin/python benchmarks/coverage_analysis.py [--draws 200] [--resamples 500] [--scenario NAME ...]

Each draw makes a study with tests/synthetic.make_cpu_runs (five N from 25 K to 559 K, from-scratch runs at
1e4 ... 3e6 characters, fine-tunes at 1e4 ... 3e5, a known k, alpha, beta; a Kaplan-shaped from-scratch
curve), runs the analysis (bootstrap over runs, headline fit) and records whether each 90% interval holds
the truth: alpha, beta, log k of the headline law, and every per-point D_T interval. Prints one line per
scenario: coverage, bias and sd of the estimates, median interval widths, the lack of fit tau, and, for
the strong-transfer scenario, how often the headline was withheld and whether the suggested from-scratch
runs reach the true D_E.

Seeds "3/1": three seeds of the from-scratch points on <= 1e5 characters (three D per N), one of every other
run (as analysis/cpu-seeds): the
fine-tunes' noise is lent from the from-scratch seeds, per N where it is measured at two or more N (falling
noise: 2% at the smallest N to 0.5% at the largest, as cpu-seeds measured 1.1% to 0.24%); --pooled-noise
lends one pooled sigma instead, the model before per-N noise. "1seed": one seed of every run, the noise estimated from
the from-scratch grid's residuals; "inside-1seed-falling" with noise falling 1.1 % to 0.24 % over N (as cpu-seeds
measured it) against one sigma lent to every run: 300 draws, 500 resamples, β's median 90 % width 0.151 against an
sd of 0.042 over draws (1.09 times 2 × 1.645 sd; uniform 1 %: 1.16), α 1.29: the falling noise does not make β's
intervals much too wide here (docs/METHOD.md §6 has what did on v4's replicates). "inside-1seed-replicates": one
seed, the noise analysis/cpu-replicates measured (`REPLICATES_NOISE`: from scratch rising with D, fine-tunes
noisier); 200 draws, 500 resamples, --audit (6 December): α, β cover 0.920, 0.955; per-point D_T 0.735 at every N;
the transfer law's audit warns on 13.5 % of draws (value 8 %, estimator 5.5 %), Kaplan's on 4 % (METHOD §6).
"inside-1seed-replicates-shared": the same noise with its structure (`REPLICATES_SHARED_NOISE`): a fine-tune's noise
is mostly one shift per pretraining run, 0.97 %, shared by all its fine-tunes, and the rest per point; 200 draws,
500 resamples, --audit (6 December, 720 s each): with one σ from the grid's residuals β covers 0.845, α 0.940,
per-point D_T 0.762 (0.855 at D_F = 1e4 falling to 0.705 at 3e5), and the transfer law's audit warns on 22.5 % of
clean draws (one β 11.5 %: each N's own shift bends ln D_T in ln N); with `--noise-from analysis/cpu-replicates`
(what that table measured, which this scenario was built from: a check of the model, not of a misjudged noise)
β 0.940, α 0.985, per-point 0.887 (0.859–0.909 at every D_F), warnings on 9.0 % (one β 1.0 %), Kaplan's 9 % both.

Scenarios "pretraining": two seeds of every run, each fine-tune seed from its own pretraining run, whose seed
shifts all its fine-tuned losses by a shared relative sd (2 %, or 0 as the control), on top of 0.5 % per run;
--pretraining-redraw runs|points re-draws them by resampling each size's runs, or each point's seeds on their own,
instead of the default (pooled). Measured (200 draws, 200 resamples), β covered: pooled 0.910 / 0.930 (no shift),
runs 0.815 / 0.900, points 0.650 / 0.905; per-point D_T 0.854 / 0.878, 0.684 / 0.777, 0.684 / 0.772.

With --audit, also the false-alarm rate of the audit's warnings (effdata/analysis/audit/) where the truth is
clean: the share of draws in which the transfer law's leverage or estimator warnings fire, and the Kaplan
law's (its from-scratch curve is Kaplan's form, so a Kaplan fit is the right model; the Chinchilla form's E
is 0 in this truth, and flagging it is right, not a false alarm, so it is not counted).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from synthetic import (  # noqa: E402
    CPU_BEYOND,
    CPU_INSIDE,
    REPLICATES_NOISE,
    REPLICATES_RUN_SHIFT,
    REPLICATES_SHARED_NOISE,
    falling_noise,
    make_cpu_runs,
    transferred,
)
from threadpoolctl import threadpool_limits  # noqa: E402

from effdata.analysis.audit.laws import audit_kaplan  # noqa: E402
from effdata.analysis.audit.leverage import half_width  # noqa: E402
from effdata.analysis.audit.transfer import audit_transfer  # noqa: E402
from effdata.analysis.core.bootstrap import (  # noqa: E402
    PRETRAINING_REDRAWS,
    attach_intervals,
    estimate_noise,
    resample_effective,
)
from effdata.analysis.core.effective import compute_effective  # noqa: E402
from effdata.analysis.core.fit import fit_transfer  # noqa: E402
from effdata.analysis.core.given import read_given_noise  # noqa: E402
from effdata.analysis.core.runnoise import pretraining_noise  # noqa: E402
from effdata.analysis.core.table import load_results  # noqa: E402
from effdata.analysis.laws.scaling import fit_kaplan  # noqa: E402

SCENARIOS = {   # name: (law, seeds, loss noise per run, scatter of D_T about the law)
    "inside-3seeds-1%": (CPU_INSIDE, 3, 0.01, 0.0),
    "inside-3seeds-0.5%": (CPU_INSIDE, 3, 0.005, 0.0),
    "inside-3seeds-1%-scatter0.2": (CPU_INSIDE, 3, 0.01, 0.2),
    "inside-1seed-1%": (CPU_INSIDE, 1, 0.01, 0.0),
    "inside-1seed-falling": (CPU_INSIDE, 1, falling_noise(0.011, 0.0024), 0.0),
    "inside-1seed-replicates": (CPU_INSIDE, 1, REPLICATES_NOISE, 0.0),
    "inside-1seed-replicates-shared": (CPU_INSIDE, 1, REPLICATES_SHARED_NOISE, 0.0),
    "middle-3seeds-1%": ({**CPU_INSIDE, "k": 100.0}, 3, 0.01, 0.0),
    "beyond-3seeds-1%": (CPU_BEYOND, 3, 0.01, 0.0),
    "inside-3/1seeds-1%": (CPU_INSIDE, (3, 1, 1e5), 0.01, 0.0),
    "inside-3/1seeds-falling": (CPU_INSIDE, (3, 1, 1e5), falling_noise(0.02, 0.005), 0.0),
    "inside-2seeds-pretraining2%": (CPU_INSIDE, 2, 0.005, 0.0),
    "inside-2seeds-pretraining0": (CPU_INSIDE, 2, 0.005, 0.0),
    "checkpoints-3seeds-measured": (CPU_INSIDE, 3, 0.008, 0.0),
    "checkpoints-3seeds-checkpoint0": (CPU_INSIDE, 3, 0.008, 0.0),
    "checkpoints-3seeds-checkpoint2%": (CPU_INSIDE, 3, 0.008, 0.0),
}
# Scenarios whose fine-tune seeds each start from their own pretraining run, whose seed shifts all its
# fine-tuned losses together by this relative sd (analysis/cpu-pretrain-seeds measured it; tests/synthetic).
PRETRAINING_NOISE = {"inside-2seeds-pretraining2%": 0.02, "inside-2seeds-pretraining0": 0.0,
                     "inside-1seed-replicates-shared": REPLICATES_RUN_SHIFT,
                     "checkpoints-3seeds-measured": 0.008, "checkpoints-3seeds-checkpoint0": 0.008,
                     "checkpoints-3seeds-checkpoint2%": 0.008}
# Scenarios whose runs are also fine-tuned from a mid-run checkpoint (`text@10tpp`, D_T half the final model's),
# each checkpoint's fine-tunes shifted together by this sd beyond the run's (analysis/cpu-finetune-seeds measured
# 0.7 % for a run, 0.86 % for a checkpoint beyond it, 0.79 % per point).
CHECKPOINT_NOISE = {"checkpoints-3seeds-measured": 0.009, "checkpoints-3seeds-checkpoint0": 0.0,
                    "checkpoints-3seeds-checkpoint2%": 0.02}


def audit_draw(results, effective, fit, draw: int, d_t: np.ndarray) -> dict:
    """Which audit warnings fire on this draw: 'sign', 'value' (leverage), 'estimator', 'one α', 'one β' (the
    form checks, on the bootstrap's D_T `d_t` as the pipeline runs them), per law."""
    kinds = lambda warnings: sorted({"sign" if "sign rests" in w else "value" if "value rests" in w else  # noqa: E731
                                     "estimator" if "estimators differ" in w else "one α" if "one α does" in w else
                                     "one β" if "one β does" in w else "other" for w in warnings})
    transfer = audit_transfer(effective.table, fit, {}, {}, d_t, seed=draw)
    kaplan = audit_kaplan(results.scratch, fit_kaplan(results.scratch, seed=draw), {}, None)
    return {"shift_ratio": _largest_shift(transfer),
            "audit_transfer": kinds(transfer.warnings) if transfer else [],
            "audit_kaplan": kinds(kaplan.warnings) if kaplan else []}


def _largest_shift(audit) -> float:
    """The largest |refit without one N or D_F − headline| over the interval's half-width, either estimator."""
    if audit is None:
        return np.nan
    ratios = [abs(left_value - audit.estimates[name]) / half_width(audit.intervals[name])
              for left in audit.left_out for name in audit.estimates if name in audit.intervals
              for left_value in (left.estimates.get(name, np.nan),) if np.isfinite(left_value)]
    return max(ratios, default=np.nan)


def audit_summary(rows: list[dict]) -> str:
    shifts = np.array([r["shift_ratio"] for r in rows if np.isfinite(r.get("shift_ratio", np.nan))])
    parts = [("transfer law, a left-out refit (Huber) moves an exponent by more than k half-widths in: "
              + ", ".join(f"k={k:g}: {np.mean(shifts > k):.1%}" for k in (0.5, 1, 1.5, 2))) if len(shifts) else ""]
    for law in ("transfer", "kaplan"):
        fired = [r[f"audit_{law}"] for r in rows if f"audit_{law}" in r]
        if fired:
            share = {k: np.mean([k in f for f in fired]) for k in ("sign", "value", "estimator", "one α", "one β",
                                                                    "other")}
            parts.append(f"audit {law}: any warning in {np.mean([bool(f) for f in fired]):.1%} of draws ("
                         + ", ".join(f"{k} {v:.1%}" for k, v in share.items()) + ")")
    return "\n    ".join(parts)


def one_draw(law, seeds, loss_noise, scatter, draw, resamples, audit: bool = False, per_n: bool = True,
             pretraining_noise: float | None = None, pretraining_redraw: str = "pooled",
             checkpoint_noise: float | None = None, one_shift_per_run: bool = False, given=None) -> dict:
    scratch_seeds, finetune_seeds, seeded_d = seeds if isinstance(seeds, tuple) else (seeds, seeds, np.inf)
    laws = {"text": law, **({"text@10tpp": {**law, "k": law["k"] / 2}} if checkpoint_noise is not None else {})}
    df = make_cpu_runs(laws, seeds=scratch_seeds, loss_noise=loss_noise, log_noise=scatter, seed=10_000 + draw,
                       pretraining_noise=pretraining_noise, checkpoint_noise=checkpoint_noise)
    seeded = (df["mode"] == "scratch") & (df["data_chars"] <= seeded_d)
    results = load_results(df[seeded | (df["seed"] < finetune_seeds)])
    effective = compute_effective(results)
    noise = estimate_noise(results, effective, per_n=per_n, pretraining_redraw=pretraining_redraw,
                           **({} if given is None else _given_options(given)))
    if one_shift_per_run and noise.pooled is not None:
        _without_checkpoints(noise)
    draws = resample_effective(results, effective, noise, resamples, seed=draw)
    attach_intervals(effective.table, draws)
    fit = fit_transfer(effective.table, "text", "chars", seed=draw, draws=draws.d_t)
    table = effective.table
    # A point's true D_T is the law's only without scatter (the generator's scatter is not returned).
    true_d_t = pd.concat([pd.Series(transferred(rows["d_f"], rows["n_params"], **laws[name]), index=rows.index)
                          for name, rows in table.groupby("pretrain")]).reindex(table.index) if scatter == 0 else np.nan
    holds = (table["d_t_lo"] <= true_d_t) & (true_d_t <= table["d_t_hi"])
    out = {"fitted": fit.fitted, "tau": fit.lack_of_fit, "extrapolated": int(table["extrapolated"].sum()),
           "points_inside": holds[~table["extrapolated"]].tolist() if scatter == 0 else [],
           "points_inside_n": table["n_params"][~table["extrapolated"]].tolist() if scatter == 0 else [],
           "points_inside_d_f": table["d_f"][~table["extrapolated"]].tolist() if scatter == 0 else [],
           "points_extrapolated": holds[table["extrapolated"]].tolist() if scatter == 0 else []}
    if fit.fitted and fit.intervals:
        truth = {"alpha": law["alpha"], "beta": law["beta"], "k": law["k"]}
        out.update({f"covers_{p}": fit.intervals[p][0] <= truth[p] <= fit.intervals[p][1] for p in truth})
        out.update({"alpha": fit.alpha, "beta": fit.beta, "log_k": np.log(fit.k),
                    "width_alpha": np.diff(fit.intervals["alpha"])[0], "width_beta": np.diff(fit.intervals["beta"])[0]})
    if fit.including_extrapolated is not None and fit.including_extrapolated.fitted:
        out["alpha_including_extrapolated"] = fit.including_extrapolated.alpha
    reach = [need["suggested"] is not None and need["suggested"] >= _true_d_e(law, need) for need in fit.scratch_runs_needed]
    out["suggestions_reach"] = float(np.mean(reach)) if reach else np.nan
    if audit and fit.fitted:
        out.update(audit_draw(results, effective, fit, draw, draws.d_t))
    return out


def _given_options(given) -> dict:
    """estimate_noise's keywords for the noise another study measured (effdata/analysis/core/given.py)."""
    return {"loss_noise": given.loss_noise, "shared_noise": given.pretraining_noise,
            "checkpoint_noise": given.checkpoint_noise, "given_from": given.source}


def _without_checkpoints(noise) -> None:
    """The model before checkpoints had their own shift: a run's checkpoints as one, the rest per point."""
    for group in noise.pretraining:
        group.starts = np.full(len(group.starts), "")
    pooled = pretraining_noise(noise.pretraining).iloc[-1]
    noise.pooled = (float(pooled["shared"]), 0.0, float(pooled["per_point"]))


def _true_d_e(law: dict, need: dict) -> float:
    """The true D_E of the grid point named by a scratch-run suggestion (its lowest fine-tuned loss)."""
    return need["d_f"] + float(transferred(need["d_f"], need["n_params"], **law))


def summarize(name: str, law: dict, rows: list[dict], seconds: float) -> str:
    fitted = [r for r in rows if "covers_alpha" in r]
    parts = [f"{name}: {len(rows)} draws, {seconds:.0f} s; headline fitted in {len(fitted)}"]
    if fitted:
        cover = {p: np.mean([r[f"covers_{p}"] for r in fitted]) for p in ("alpha", "beta", "k")}
        estimates = np.array([[r["alpha"], r["beta"], r["log_k"]] for r in fitted])
        bias = estimates.mean(axis=0) - [law["alpha"], law["beta"], np.log(law["k"])]
        parts.append("coverage α {alpha:.3f} β {beta:.3f} log k {k:.3f}".format(**cover))
        parts.append(f"bias α {bias[0]:+.4f} β {bias[1]:+.4f} log k {bias[2]:+.3f}; "
                     f"sd α {estimates[:, 0].std():.4f} β {estimates[:, 1].std():.4f} log k {estimates[:, 2].std():.3f}")
        parts.append(f"median 90% width α {np.median([r['width_alpha'] for r in fitted]):.4f} "
                     f"β {np.median([r['width_beta'] for r in fitted]):.4f}")
    inside = [ok for r in rows for ok in r["points_inside"]]
    outside = [ok for r in rows for ok in r["points_extrapolated"]]
    if inside or outside:
        parts.append("per-point D_T coverage: " + (f"interpolated {np.mean(inside):.3f} ({len(inside)} intervals)" if inside else "")
                     + (f", extrapolated {np.mean(outside):.3f} ({len(outside)})" if outside else ""))
    if inside:
        n_of = np.array([n for r in rows for n in r["points_inside_n"]])
        parts.append("  by N: " + ", ".join(f"{n:.3g} {np.mean(np.array(inside)[n_of == n]):.3f}" for n in np.unique(n_of)))
        d_f_of = np.array([d for r in rows for d in r["points_inside_d_f"]])
        parts.append("  by D_F: " + ", ".join(f"{d:.3g} {np.mean(np.array(inside)[d_f_of == d]):.3f}"
                                              for d in np.unique(d_f_of)))
    parts.append(f"median τ {np.median([r['tau'] for r in rows if r['tau'] is not None] or [np.nan]):.3f}; "
                 f"median extrapolated points {np.median([r['extrapolated'] for r in rows]):.0f}")
    with_extrapolated = [r["alpha_including_extrapolated"] for r in rows if "alpha_including_extrapolated" in r]
    if with_extrapolated:
        parts.append(f"α including extrapolated: mean {np.mean(with_extrapolated):.3f} (truth {law['alpha']})")
    reach = [r["suggestions_reach"] for r in rows if np.isfinite(r["suggestions_reach"])]
    if reach:
        parts.append(f"suggested from-scratch runs reach the true D_E in {np.mean(reach):.0%} of cases")
    return "\n    ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--resamples", type=int, default=500)
    parser.add_argument("--scenario", nargs="+", choices=sorted(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--audit", action="store_true", help="also count the audit's warnings (false alarms)")
    parser.add_argument("--pooled-noise", action="store_true", help="one sigma per mode, not per N (the old model)")
    parser.add_argument("--pretraining-redraw", choices=PRETRAINING_REDRAWS, default="pooled",
                        help="how fine-tunes of a size pretrained twice are re-drawn (effdata/analysis/core/bootstrap.py)")
    parser.add_argument("--one-shift-per-run", action="store_true",
                        help="pooled, with a run's checkpoints as one (the model before checkpoints had their own shift)")
    parser.add_argument("--noise-from", metavar="ANALYSIS",
                        help="give every draw's analysis the noise that analysis measured, as `python -m "
                             "effdata.analyze --noise-from` does (e.g. analysis/cpu-replicates)")
    args = parser.parse_args()
    given = read_given_noise(args.noise_from) if args.noise_from else None
    with threadpool_limits(1, user_api="blas"):
        for name in args.scenario:
            law, seeds, loss_noise, scatter = SCENARIOS[name]
            start = time.perf_counter()
            rows = [one_draw(law, seeds, loss_noise, scatter, draw, args.resamples, args.audit, not args.pooled_noise,
                             PRETRAINING_NOISE.get(name), args.pretraining_redraw, CHECKPOINT_NOISE.get(name),
                             args.one_shift_per_run, given)
                    for draw in range(args.draws)]
            print(summarize(name, law, rows, time.perf_counter() - start), flush=True)
            if args.audit:
                print("    " + audit_summary(rows), flush=True)


if __name__ == "__main__":
    main()
