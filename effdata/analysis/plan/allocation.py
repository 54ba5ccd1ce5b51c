"""I have C FLOPs: how big a model, on how much data? Kaplan's allocation beside Chinchilla's. Never imports torch.

Each *rule* gives N_opt(C) in closed form; the data is then D = C/(6·N) tokens (characters through the fits'
characters per token):

* Kaplan, learning-curve frontier (fits.json's `dynamics`: L(N, S_min) and B_crit(L)): the N that reaches a loss
  with the least compute at a batch well below B_crit (Kaplan et al. 2020 §6; dynamics/answers.py). Paper: 0.73.
* Kaplan, L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D at C = 6·N·D: setting d/dN = 0 gives
  N_opt = (r·N_c^r·C / (6·D_c))^(1/(1+r)), r = α_N/α_D, so N_opt ∝ C^(α_D/(α_N+α_D)) (0.58 on his values: this
  is not how he allocated, which is why the output names the form).
* Chinchilla, E + A/N^α + B/D^β at C = 6·N·D (Hoffmann et al. 2022, approach 3): N_opt = G·(C/6)^(β/(α+β)),
  G = (αA/(βB))^(1/(α+β)), with B in tokens (a law in characters: B·cpt^−β).
* The papers' own: Kaplan's N = 1.3e9·(C/PF-day)^0.73 (his fig. 14) and Chinchilla's D = 20·N (N_opt ∝ C^0.5).

Each allocation's loss is then read off every fitted law (the frontier's law: the loss a run of that N reaches at
C_min = C), so the table shows how much the choice matters; every N or D outside a law's fitted range is flagged.
Intervals: fits.json keeps each parameter's bootstrap percentiles, not the joint samples, so the exponent has an
interval (Chinchilla's `n_opt_exponent`, Kaplan's from `ratio`) and N_opt(C) itself has none.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from effdata.analysis.dynamics.answers import (
    extrapolations,
    frontier_at_compute,
    frontier_exponent,
    law_steps,
    laws_from_fits,
    loss_at_compute,
    optimal_at_loss,
)
from effdata.analysis.plan.planner import (
    PAPER_RANGES,
    PlanError,
    Range,
    ScratchLaw,
    law_chars_per_token,
    scratch_law,
)
from effdata.fmt import compact

PF_DAY = 8.64e19                 # FLOPs in a petaflop/s-day, Kaplan's unit of compute
PAPER_KAPLAN_N_AT_PF_DAY = 1.3e9   # Kaplan et al. 2020, fig. 14: N_opt = 1.3e9·(C_min / PF-day)^0.73
PAPER_KAPLAN_EXPONENT = 0.73
PAPER_TOKENS_PER_PARAM = 20.0    # Hoffmann et al. 2022: D_opt ≈ 20·N_opt, N_opt ∝ C^0.50 (approaches 1 and 2)
PAPER_CHINCHILLA_EXPONENT = 0.5


def _inside(n: float, c: float) -> list[str]:
    return []


@dataclass(frozen=True)
class Rule:
    """One allocation: N_opt(C) and where it comes from. A fitted rule's extrapolations are its law's (a Judge's);
    a paper rule's `flags` say where N lies against the range its paper fitted."""

    key: str
    label: str
    exponent: float                                   # N_opt ∝ C^exponent
    interval: tuple[float, float] | None
    paper: str                                        # the paper's value beside it, in words
    n_opt: Callable[[float], float]
    notes: tuple[str, ...] = ()
    is_paper: bool = False
    flags: Callable[[float, float], list[str]] = _inside     # (N, compute) -> extrapolations


@dataclass(frozen=True)
class Judge:
    """A fitted law that scores any allocation: its loss at (N, C), and what of (N, C) lies outside its range."""

    key: str
    label: str
    loss: Callable[[float, float], float]
    flags: Callable[[float, float], list[str]]


@dataclass
class Allocator:
    source: str
    chars_per_token: float | None
    cpt_source: str
    rules: list[Rule] = field(default_factory=list)
    judges: list[Judge] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)      # what could not be used, and why
    fitted_compute: list[float] = field(default_factory=list)   # the compute the fitted laws span (a figure's band)


@dataclass(frozen=True)
class Allocation:
    rule: Rule
    compute: float
    n: float
    tokens: float                                     # C / (6 N)
    chars: float
    losses: dict[str, float]                          # judge key -> predicted loss
    flags: tuple[str, ...]


# --------------------------------------------------------------------------- the closed forms

def chinchilla_n_opt(params: dict, compute: float) -> float:
    """N_opt of E + A/N^α + B/D^β (D in tokens) at C = 6·N·D (module docstring)."""
    a, b, alpha, beta = params["A"], params["B"], params["alpha"], params["beta"]
    g = (alpha * a / (beta * b)) ** (1 / (alpha + beta))
    return g * (compute / 6) ** (beta / (alpha + beta))


def kaplan_n_opt(params: dict, compute: float) -> float:
    """N_opt of Kaplan's L(N, D) (D in tokens) at C = 6·N·D, in logs (N_c^r overflows)."""
    r = params["alpha_n"] / params["alpha_d"]
    log_n = (math.log(r) + r * math.log(params["n_c"]) + math.log(compute / 6) - math.log(params["d_c"])) / (1 + r)
    return math.exp(log_n)


def token_params(law: ScratchLaw) -> dict:
    """The law's parameters with D in tokens: a law in characters reads D·cpt."""
    p, cpt = dict(law.params), (1.0 if law.units == "tokens" else law.chars_per_token)
    if law.form == "chinchilla":
        p["B"] = p["B"] * cpt ** -p["beta"]
    else:
        p["d_c"] = p["d_c"] / cpt
    return p


# --------------------------------------------------------------------------- rules and judges from fits.json

def _range_flags(what: str, n_range: Range | None, d_range: Range | None, n: float, d_chars: float) -> list[str]:
    flags = []
    for symbol, value, where, unit in (("N", n, n_range, ""), ("D", d_chars, d_range, " chars")):
        side = where.outside(value) if where else None
        if side:
            flags.append(f"{symbol} = {compact(value)}{unit} {side} {what}'s {compact(where.low)}–{compact(where.high)}")
    return flags


def _interval(entry: dict, name: str, transform=lambda v: v) -> tuple[float, float] | None:
    values = (entry.get("intervals") or {}).get(name)
    return tuple(sorted(transform(float(v)) for v in values)) if values else None


def _scratch_rule(law: ScratchLaw, entry: dict, cpt: float) -> Rule:
    """Kaplan's L(N, D) or the Chinchilla form, minimised at C = 6·N·D."""
    p = token_params(law)
    notes = tuple(f"{law.form} fit is degenerate ({reason}): its allocation is not a finding"
                  for reason in entry.get("degenerate") or [])
    if law.form == "chinchilla":
        return Rule("chinchilla", "Chinchilla form E + A/N^α + B/D^β (fitted)", p["beta"] / (p["alpha"] + p["beta"]),
                    _interval(entry, "n_opt_exponent"), "0.46 (approach 3), ≈ 0.50 (approaches 1–2)",
                    lambda c: chinchilla_n_opt(p, c), notes)
    ratio = p["alpha_n"] / p["alpha_d"]
    return Rule("kaplan", "Kaplan's L(N, D) form at C = 6·N·D (fitted)", 1 / (1 + ratio),
                _interval(entry, "ratio", lambda r: 1 / (1 + r)), "0.58 (his L(N, D) values; he allocated by the frontier)",
                lambda c: kaplan_n_opt(p, c), notes)


def _scratch_judge(law: ScratchLaw, cpt: float) -> Judge:
    label, what = {"chinchilla": "Chinchilla form", "kaplan": "Kaplan's L(N, D)"}[law.form], f"the {law.form} law"
    return Judge(law.form, label, lambda n, c: float(law.loss(n, c / (6 * n) * cpt)),
                 lambda n, c: _range_flags(what, law.n_range, law.d_range, n, c / (6 * n) * cpt))


def _frontier_rule_and_judge(fits: dict) -> tuple[Rule, Judge, list[float]]:
    """From fits.json's `dynamics`; ValueError naming what is missing."""
    law, noise = laws_from_fits(fits)
    exponent = frontier_exponent(law, noise)        # raises without L(N, S_min) and B_crit(L)
    span = [optimal_at_loss(law, noise, loss).c_min for loss in law.loss_range]
    rule = Rule("frontier", "Kaplan's frontier: L(N, S_min) + B_crit(L) (fitted)", exponent, None,
                f"{PAPER_KAPLAN_EXPONENT} (§6; 0.68 from his α_N, α_S, α_B)",
                lambda c: frontier_at_compute(law, noise, c).n_opt)

    def flags(n, c):
        loss = loss_at_compute(law, noise, n, c)
        return [f"learning-curve law: {flag}" for flag in extrapolations(law, n, loss, float(law_steps(law, n, loss)))]
    return rule, Judge("frontier", "learning-curve frontier", lambda n, c: loss_at_compute(law, noise, n, c), flags), span


def paper_rules() -> list[Rule]:
    """Kaplan's and Chinchilla's published allocations, with the N ranges their papers fitted."""
    kaplan, hoffmann = Range(*PAPER_RANGES["kaplan"]["n_range"]), Range(*PAPER_RANGES["hoffmann"]["n_range"])
    def flags(where, name):
        return lambda n, c: [f"N = {compact(n)} {side} {name}'s {compact(where.low)}–{compact(where.high)}"
                             for side in [where.outside(n)] if side]
    return [Rule("paper-kaplan", "Kaplan et al. 2020: N = 1.3e9·(C/PF-day)^0.73 (paper)", PAPER_KAPLAN_EXPONENT, None,
                 "", lambda c: PAPER_KAPLAN_N_AT_PF_DAY * (c / PF_DAY) ** PAPER_KAPLAN_EXPONENT,
                 is_paper=True, flags=flags(kaplan, "Kaplan et al.")),
            Rule("paper-chinchilla", "Hoffmann et al. 2022: D = 20·N (paper)", PAPER_CHINCHILLA_EXPONENT, None, "",
                 lambda c: math.sqrt(c / (6 * PAPER_TOKENS_PER_PARAM)), is_paper=True,
                 flags=flags(hoffmann, "Hoffmann et al."))]


def allocator(fits: dict, chars_per_token: float | None = None) -> Allocator:
    """The rules and judges these fits allow; PlanError (one line) when they allow none."""
    cpt, cpt_source = _allocation_cpt(fits, chars_per_token)
    found = Allocator(str(fits.get("source", "?")), cpt, cpt_source)
    try:
        rule, judge, span = _frontier_rule_and_judge(fits)
        found.rules.append(rule)
        found.judges.append(judge)
        found.fitted_compute += span
    except ValueError as exc:
        found.missing.append(f"Kaplan's frontier: {exc}")
    for form in ("kaplan", "chinchilla"):
        entry = fits.get(form)
        if not (isinstance(entry, dict) and entry.get("fitted")):
            found.missing.append(f"{form} L(N, D): {(entry or {}).get('reason') or 'not in the fits'}")
            continue
        if cpt is None:    # C counts tokens; a law in characters, or its fitted D range, needs the conversion
            found.missing.append(f"{form} L(N, D): the fits give no characters per token (pass --chars-per-token)")
            continue
        law = scratch_law(form, entry, cpt)
        found.rules.append(_scratch_rule(law, entry, cpt))
        found.judges.append(_scratch_judge(law, cpt))
        if law.n_range and law.d_range:   # the corners of the fitted N × D: 6·N·D
            found.fitted_compute += [6 * law.n_range.low * law.d_range.low / cpt, 6 * law.n_range.high * law.d_range.high / cpt]
    if not found.rules:
        raise PlanError(f"these fits have no law to allocate compute with ({'; '.join(found.missing)})")
    found.rules += paper_rules()
    return found


def _allocation_cpt(fits: dict, given: float | None) -> tuple[float | None, str]:
    """Characters per token, from the first L(N, D) entry that has it (or --chars-per-token; the papers' 3.0)."""
    entries = [fits.get(f) for f in ("chinchilla", "kaplan")]
    entry = next((e for e in entries if isinstance(e, dict) and e.get("chars_per_token")), {})
    return law_chars_per_token(entry, given, bool(fits.get("built_in")))


# --------------------------------------------------------------------------- the answer

def own_flags(found: Allocator, rule: Rule, n: float, compute: float) -> list[str]:
    """What lies outside the range of the rule's own law (a paper rule: its paper's N range)."""
    judge = next((j for j in found.judges if j.key == rule.key), None)
    return [*rule.flags(n, compute), *(judge.flags(n, compute) if judge else [])]


def allocate(found: Allocator, computes) -> list[Allocation]:
    """Every rule's allocation at every compute, scored by every judge; PlanError for a compute that is not > 0."""
    for c in computes:
        if not (isinstance(c, (int, float)) and math.isfinite(c) and c > 0):
            raise PlanError(f"every compute C must be a positive number of FLOPs (got {c})")
    out = []
    for c in computes:
        for rule in found.rules:
            n = rule.n_opt(c)
            tokens = c / (6 * n)
            chars = tokens * found.chars_per_token if found.chars_per_token else math.nan
            flags = [*rule.flags(n, c), *(flag for judge in found.judges for flag in judge.flags(n, c))]
            out.append(Allocation(rule, c, n, tokens, chars, {judge.key: judge.loss(n, c) for judge in found.judges},
                                  tuple(dict.fromkeys(flags))))
    return out
