"""A swept setting (a study's [sweep], e.g. the learning rate): the loss against it, its best value per model
size and data size, and a rule for that best value. No torch.

`python -m effdata.analyze` hands a results table whose rows name a swept setting (the `sweep` column that
`effdata.study.store` writes, with the setting's value in a column of its own) to `analyze_sweep` instead
of the transfer analysis: the transfer analysis averages every run of one (pretraining, N, data size),
which would mix the swept values. docs/METHOD.md §5c has the method; in short:

* **Losses**: test loss per (mode, pretraining, N, data size, value), seeds averaged (their spread kept).
* **Stopped by forecast** (`stop_reason = forecast`, a study's `stop_by_forecast`): such a value's loss is where
  it was stopped, an upper bound; it is shown (marked) but is never the best, and no parabola goes through it.
* **Best value** per (mode, pretraining, N, data size): the grid's lowest loss, refined by the parabola in
  log2(value) through it and its two neighbours (its vertex, kept inside those neighbours). A best at the
  edge of the grid is flagged `edge`: the optimum may lie beyond it, so no refinement and no rule use it.
* **Rule**: log2(best) = a + b·log10(N) + c·log10(D), fitted by least squares on the from-scratch
  points (not at an edge), beside the rules with fewer terms (a constant; N alone; D alone). The chosen
  rule is the one with the fewest terms whose leave-one-out error is within `LOO_TIE` of the smallest:
  with a handful of points a term has to predict a left-out point better to be kept. Fine-tuned points are set against the from-scratch rule's
  prediction at their N and D, not fitted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from effdata.analysis.core.table import DATA_COLUMNS, TableError, read_table, stopped_by_forecast
from effdata.fmt import compact, sig

SWEEP_COLUMN = "sweep"     # which setting(s) a run's [sweep] varied (effdata.study.store)
GROUP = ["mode", "pretrain", "n_params"]
PREDICTORS = {"constant": (), "N": ("log10_n",), "D": ("log10_d",), "N and D": ("log10_n", "log10_d")}


def is_sweep_table(df: pd.DataFrame) -> bool:
    return SWEEP_COLUMN in df.columns and df[SWEEP_COLUMN].notna().any()


@dataclass
class SweepRule:
    """log2(best value) = intercept + Σ slope · predictor (log10 N, log10 D): one candidate rule."""

    name: str                               # a key of PREDICTORS
    coefficients: dict[str, float]          # "intercept", and "log10_n" / "log10_d" when used
    rms: float                              # of log2(best) about the rule, on the points it was fitted on
    loo_rms: float | None                   # leave-one-out, log2 units (None: too few points)
    n_points: int

    def predict(self, n_params, data) -> np.ndarray:
        x = {"log10_n": np.log10(np.asarray(n_params, float)), "log10_d": np.log10(np.asarray(data, float))}
        return 2.0 ** (self.coefficients["intercept"] + sum(self.coefficients[k] * x[k] for k in x
                                                            if k in self.coefficients))


@dataclass
class SweepResult:
    key: str                                # the swept setting, e.g. lr_scale
    units: str                              # chars or tokens
    data_column: str
    losses: pd.DataFrame                    # one row per (mode, pretrain, N, D, value)
    best: pd.DataFrame                      # one row per (mode, pretrain, N, D)
    rules: list[SweepRule] = field(default_factory=list)
    chosen: SweepRule | None = None
    warnings: list[str] = field(default_factory=list)


def sweep_rows(source, units: str = "chars", warnings: list[str] | None = None) -> tuple[pd.DataFrame, str, str]:
    """The ok scratch and fine-tune rows of a sweep table, its swept key and its data column."""
    warnings = [] if warnings is None else warnings
    df = read_table(source)
    if not is_sweep_table(df):
        raise TableError(f"no `{SWEEP_COLUMN}` column: not a table of a study with a [sweep]")
    keys = set(df[SWEEP_COLUMN].dropna().astype(str))
    if len(keys) != 1 or "," in next(iter(keys)):
        raise TableError(f"the sweep analysis takes one swept setting; this table sweeps {sorted(keys)}")
    key = next(iter(keys))
    column = DATA_COLUMNS[units] if DATA_COLUMNS[units] in df else DATA_COLUMNS["tokens" if units == "chars" else "chars"]
    for needed in (key, column, "loss", "n_params", "mode"):
        if needed not in df:
            raise TableError(f"sweep table lacks the column {needed!r}")
    if "status" in df:
        bad = df["status"].fillna("ok").astype(str) != "ok"
        if bad.any():
            warnings.append(f"{int(bad.sum())} run(s) not ok: left out")
        df = df[~bad]
    df = df[df["mode"].isin(["scratch", "finetune"]) & df[SWEEP_COLUMN].notna()].copy()
    for name in (key, column, "loss", "n_params"):
        df[name] = pd.to_numeric(df[name], errors="coerce")
    usable = np.isfinite(df[[key, column, "loss", "n_params"]].to_numpy(float)).all(axis=1) & (df[key] > 0)
    if not usable.all():
        warnings.append(f"{int((~usable).sum())} row(s) with a missing or non-positive {key}, {column} or loss: left out")
    df = df[usable]
    if "pretrain" not in df:
        df["pretrain"] = "none"
    df["by_forecast"] = stopped_by_forecast(df)
    if df["by_forecast"].any():
        warnings.append(f"{int(df['by_forecast'].sum())} run(s) stopped by forecast (a losing point, its loss an "
                        "upper bound): shown, never a best value")
    return df, key, column


def sweep_losses(df: pd.DataFrame, key: str, column: str) -> pd.DataFrame:
    """Seeds averaged: loss, its standard deviation over seeds and their count, per grid point and value."""
    grouped = df.groupby([*GROUP, column, key], sort=True)
    out = grouped["loss"].agg(loss="mean", loss_std="std", n_seeds="size").reset_index()
    out["loss_std"] = out["loss_std"].fillna(0.0)
    if "by_forecast" in df and df["by_forecast"].any():   # the column only then: tables without it are unchanged
        out["by_forecast"] = grouped["by_forecast"].any().to_numpy()
    if "size" in df:
        out = out.merge(df.groupby("n_params")["size"].first().reset_index(), on="n_params", how="left")
    return out


def refined_best(values: np.ndarray, losses: np.ndarray, stopped: np.ndarray | None = None) -> tuple[float, float, bool]:
    """(best value, the loss there, at the grid's edge): the parabola in log2(value) through the lowest loss
    and its neighbours, its vertex kept between them; the grid's best as it is at an edge. A value `stopped` by
    forecast is never the best, and next to one the grid's best is kept unrefined."""
    order = np.argsort(values)
    x, y = np.log2(values[order]), losses[order]
    out = np.zeros(len(x), bool) if stopped is None else np.asarray(stopped, bool)[order]
    i = int(np.argmin(np.where(out, np.inf, y)))
    if i == 0 or i == len(x) - 1:
        return float(values[order][i]), float(y[i]), True
    if out[i - 1] or out[i + 1]:
        return float(values[order][i]), float(y[i]), False
    a, b, c = np.polyfit(x[i - 1:i + 2], y[i - 1:i + 2], 2)
    vertex = float(np.clip(-b / (2 * a), x[i - 1], x[i + 1])) if a > 0 else float(x[i])
    return float(2.0 ** vertex), float(np.polyval([a, b, c], vertex)), False


def best_values(losses: pd.DataFrame, key: str, column: str) -> pd.DataFrame:
    rows = []
    for (mode, pretrain, n, d), group in losses.groupby([*GROUP, column], sort=True):
        values, loss = group[key].to_numpy(float), group["loss"].to_numpy(float)
        stopped = group["by_forecast"].to_numpy(bool) if "by_forecast" in group else np.zeros(len(values), bool)
        i = int(np.argmin(np.where(stopped, np.inf, loss)))
        best, at_best, edge = refined_best(values, loss, stopped) if len(values) >= 3 else (
            float(values[i]), float(loss[i]), True)
        rows.append({"mode": mode, "pretrain": pretrain, "n_params": n, column: d,
                     "size": group["size"].iloc[0] if "size" in group else None,
                     "grid_best": float(values[i]), "grid_loss": float(loss[i]),
                     "best": best, "loss_at_best": at_best, "edge": edge, "values": len(values)})
    return pd.DataFrame(rows)


def fit_rules(best: pd.DataFrame, column: str) -> list[SweepRule]:
    """Every candidate rule (PREDICTORS) fitted on the from-scratch points whose best is not at an edge."""
    points = best[(best["mode"] == "scratch") & ~best["edge"]]
    x = pd.DataFrame({"log10_n": np.log10(points["n_params"].to_numpy(float)),
                      "log10_d": np.log10(points[column].to_numpy(float))})
    y = np.log2(points["best"].to_numpy(float))
    rules = []
    for name, terms in PREDICTORS.items():
        if len(y) < len(terms) + 1 or any(x[t].nunique() < 2 for t in terms):
            continue
        design = np.column_stack([np.ones(len(y)), *(x[t].to_numpy() for t in terms)])
        coef = np.linalg.lstsq(design, y, rcond=None)[0]
        rms = float(np.sqrt(np.mean((design @ coef - y) ** 2)))
        rules.append(SweepRule(name, dict(zip(("intercept", *terms), map(float, coef))), rms,
                               _leave_one_out(design, y), len(y)))
    return rules


def _leave_one_out(design: np.ndarray, y: np.ndarray) -> float | None:
    if len(y) <= design.shape[1]:
        return None
    errors = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        coef = np.linalg.lstsq(design[keep], y[keep], rcond=None)[0]
        errors.append(float(design[i] @ coef - y[i]))
    return float(np.sqrt(np.mean(np.square(errors))))


# Leave-one-out errors closer than this (log2 units: a factor 1.035 on the value) are a tie, won by the
# rule with fewer terms: far below the grid's resolution (a factor 2) and what the loss can tell apart.
LOO_TIE = 0.05


def choose_rule(rules: list[SweepRule]) -> SweepRule | None:
    """The rule with the fewest terms whose leave-one-out error is within LOO_TIE of the smallest."""
    scored = [r for r in rules if r.loo_rms is not None]
    if not scored:
        return None
    low = min(r.loo_rms for r in scored)
    return min((r for r in scored if r.loo_rms <= low + LOO_TIE),
               key=lambda r: (len(r.coefficients), r.loo_rms))


def analyze_sweep_table(source, units: str = "chars") -> SweepResult:
    """Everything the sweep report shows, from a results table (path or DataFrame)."""
    warnings: list[str] = []
    df, key, column = sweep_rows(source, units, warnings)
    losses = sweep_losses(df, key, column)
    best = best_values(losses, key, column)
    edges = best[best["edge"]]
    if len(edges):
        warnings.append(f"{len(edges)} of {len(best)} points have their lowest loss at the edge of the {key} grid "
                        "(the best may lie beyond it): left out of the rule")
    rules = fit_rules(best, column)
    chosen = choose_rule(rules)
    if chosen is not None:
        best["rule"] = chosen.predict(best["n_params"], best[column])
    return SweepResult(key, "chars" if column == "data_chars" else "tokens", column, losses, best, rules, chosen,
                       warnings)


# ----------------------------------------------------------------------------------------------
# The report

def _rule_text(rule: SweepRule, key: str) -> str:
    c = rule.coefficients
    text = f"log2({key}) = {c['intercept']:.3f}"
    for term, name in (("log10_n", "log10 N"), ("log10_d", "log10 D")):
        if term in c:
            text += f" {'−' if c[term] < 0 else '+'} {abs(c[term]):.3f}·{name}"
    return text


def sweep_report(result: SweepResult, figures: list[str]) -> str:
    key = result.key
    lines = [f"# Sweep of `{key}`", "",
             f"Test loss (nats/token) of every run against `{key}`, the best value per model size and data size "
             f"(D in {result.units}), and a rule for it (docs/METHOD.md §5c).", ""]
    lines += [f"![loss against {key}]({name}.png)" for name in figures] + [""]
    lines += _loss_table(result) + [""] + _best_table(result) + [""] + _rules_table(result)
    if result.warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in result.warnings]
    return "\n".join(lines) + "\n"


def _loss_table(result: SweepResult) -> list[str]:
    key, column = result.key, result.data_column
    values = sorted(result.losses[key].unique())
    lines = ["## Test loss", "", "| mode | pretraining | size | N | D | " + " | ".join(f"{key} {v:g}" for v in values) + " |",
             "|---|---|---|---|---|" + "---|" * len(values)]
    best = result.best.set_index([*GROUP, column])
    for point, group in result.losses.groupby([*GROUP, column], sort=True):
        by_value = dict(zip(group[key], group["loss"]))
        stopped = set(group.loc[group["by_forecast"], key]) if "by_forecast" in group else set()
        grid_best = best.loc[point, "grid_best"]
        cells = [("**" + sig(by_value[v], 4) + "**" if v == grid_best else sig(by_value[v], 4) + "†" * (v in stopped))
                 if v in by_value else "—" for v in values]
        size = group["size"].iloc[0] if "size" in group else ""
        lines.append(f"| {point[0]} | {point[1]} | {size} | {compact(point[2])} | {compact(point[3])} | "
                     + " | ".join(cells) + " |")
    stopped = "by_forecast" in result.losses and result.losses["by_forecast"].any()
    note = "; †: stopped by forecast (its loss where it stopped)" if stopped else ""
    return lines + ["", f"Bold: the lowest loss of the row{note}."]


def _best_table(result: SweepResult) -> list[str]:
    column = result.data_column
    rule = "rule" in result.best
    header = ["mode", "pretraining", "size", "N", "D", "grid best", "refined best", "loss there",
              *(["chosen rule"] if rule else []), "note"]
    lines = ["## Best value", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for row in result.best.itertuples(index=False):
        r = row._asdict()
        note = ("fewer than 3 values" if r["values"] < 3 else "at the grid's edge") if r["edge"] else ""
        lines.append(f"| {r['mode']} | {r['pretrain']} | {r['size'] or ''} | {compact(r['n_params'])} | "
                     f"{compact(r[column])} | {r['grid_best']:g} | {sig(r['best'])} | {sig(r['loss_at_best'], 4)} | "
                     + (f"{sig(r['rule'])} | " if rule else "") + f"{note} |")
    return lines


def _rules_table(result: SweepResult) -> list[str]:
    lines = ["## Rule", ""]
    if not result.rules:
        return lines + ["Too few from-scratch points away from the grid's edges to fit a rule."]
    lines += ["| depends on | rule | RMS (log2) | leave-one-out RMS (log2) | points |", "|---|---|---|---|---|"]
    for rule in result.rules:
        mark = " **(chosen)**" if rule is result.chosen else ""
        lines.append(f"| {rule.name}{mark} | {_rule_text(rule, result.key)} | {rule.rms:.3f} | {sig(rule.loo_rms)} | "
                     f"{rule.n_points} |")
    if result.chosen is not None:
        lines += ["", f"Chosen (the fewest terms within {LOO_TIE} of the smallest leave-one-out error): "
                      f"{_rule_text(result.chosen, result.key)} "
                      f"(N non-embedding parameters, D in {result.units}); a leave-one-out RMS of "
                      f"{result.chosen.loo_rms:.2f} in log2 is a factor {2 ** result.chosen.loo_rms:.2f} on {result.key}."]
    return lines


def sweep_json(result: SweepResult) -> dict:
    def rule_dict(rule: SweepRule) -> dict:
        return {"name": rule.name, "coefficients": rule.coefficients, "rms_log2": rule.rms,
                "loo_rms_log2": rule.loo_rms, "points": rule.n_points}

    best = result.best.replace({np.nan: None}).to_dict(orient="records")
    return {"key": result.key, "units": result.units, "best": best, "rules": [rule_dict(r) for r in result.rules],
            "chosen": rule_dict(result.chosen) if result.chosen else None, "warnings": result.warnings,
            "rule_form": f"log2({result.key}) = intercept + log10_n·log10(N) + log10_d·log10(D in {result.units})"}


def summary_lines(result: SweepResult) -> list[str]:
    lines = [f"sweep of {result.key}: {len(result.best)} points, "
             f"{int(result.best['edge'].sum())} with the best at the grid's edge"]
    if result.chosen is not None:
        lines.append(f"chosen rule ({result.chosen.name}): {_rule_text(result.chosen, result.key)}, "
                     f"leave-one-out RMS {result.chosen.loo_rms:.2f} (log2)")
    return lines
