"""A plan as Markdown: what the laws are, the predictions per size, the best size in the budget, notes."""
from __future__ import annotations

from effdata.analysis.core.markdown import markdown_table
from effdata.analysis.plan.allocation import Allocation, Allocator
from effdata.analysis.plan.planner import SCRATCH, Plan
from effdata.fmt import compact, sig


def _option(name: str) -> str:
    return "from scratch" if name == SCRATCH else f"fine-tuned from {name}"


def _laws_lines(plan: Plan) -> list[str]:
    laws, request = plan.laws, plan.request
    lines = [f"- Laws: {laws.label}.", f"- From-scratch law: {laws.scratch.describe()}."]
    for name, law in sorted(laws.transfer.items()):
        where = (f"fitted on N {compact(law.n_range.low)}–{compact(law.n_range.high)}, D_F "
                 f"{compact(law.d_f_range.low)}–{compact(law.d_f_range.high)} chars") if law.n_range and law.d_f_range \
            else "fitted range not recorded"
        pretrained = f"checkpoints pretrained on {law.pretraining.label}" if law.pretraining else \
            "pretraining budget not recorded"
        lines.append(f"- Transfer law `{name}`: D_T = {sig(law.k)} · D_F^{sig(law.alpha)} · N^{sig(law.beta)} "
                     f"(D in {law.units}; {where}; {pretrained}).")
    cpt = f"{sig(laws.chars_per_token)} ({laws.chars_per_token_source})" if laws.chars_per_token else \
        laws.chars_per_token_source
    lines.append(f"- Characters per token: {cpt}.")
    counted = "target-data training + pretraining of that size" if request.count_pretraining else \
        "training on the target data only (the pretrained checkpoint is taken as given)"
    pretraining = (f"{sig(request.pretrain_tokens)} tokens per pretraining run" if request.pretrain_tokens else
                   f"{sig(request.pretrain_tokens_per_param)} pretraining tokens per parameter"
                   if request.pretrain_tokens_per_param else "pretraining tokens not given")
    lines.append(f"- Compute: 6·N·tokens FLOPs; target data {sig(request.epochs)} epoch(s); {pretraining}; "
                 f"the budget counts {counted}.")
    return lines


def _prediction_rows(plan: Plan) -> list[list[str]]:
    rows = []
    for _, row in plan.rows.iterrows():
        scratch = row["pretrain"] == SCRATCH
        budget = "" if row["within_budget"] is None else ("yes" if row["within_budget"] else "no")
        rows.append([_option(row["pretrain"]), sig(row["n_params"]), "—" if scratch else sig(row["d_t"]),
                     sig(row["d_e"]), sig(row["multiplier"]),
                     f"refused: {row['refused']}" if row.get("refused") else sig(row["loss"], 4),
                     "—" if scratch or row.get("refused") else f"{row['gain']:+.3f}", sig(row["compute"]), budget,
                     _beyond(plan, row["d_opt"]), row["extrapolation"] or "—"])
    return rows


def _beyond(plan: Plan, d_opt: float) -> str:
    """The compute-optimal data, marked when it lies outside the D the from-scratch law was fitted on."""
    where = plan.laws.scratch.d_range
    outside = where is not None and where.outside(d_opt) is not None
    return sig(d_opt) + (" †" if outside else "")


def _best_lines(plan: Plan) -> list[str]:
    request = plan.request
    if request.budget is None:
        return ["No compute budget given (--budget FLOPs): no best size."]
    lines = [f"Within {sig(request.budget)} FLOPs, from the smallest candidate up to what the budget allows:", ""]
    for best in sorted(plan.best, key=lambda b: b.loss):
        lines.append(f"- {_option(best.pretrain)}: N = {sig(best.n_params)}, predicted loss {sig(best.loss, 4)} "
                     f"({sig(best.compute)} FLOPs; limited by {best.bound})"
                     + (f" — extrapolated: {best.extrapolation}" if best.extrapolation else ""))
    return lines


def render_plan(plan: Plan) -> str:
    request = plan.request
    lines = [f"# Plan for D_F = {sig(request.d_f)} characters of target data", ""]
    if plan.laws.is_paper:
        lines += ["**Built-in paper laws** (not measured by effdata; other tokenizers and data): use them for "
                  "orders of magnitude, not for absolute losses.", ""]
    lines += _laws_lines(plan) + ["", "## Predictions", ""]
    header = ["training", "N", "D_T (chars)", "D_E (chars)", "D_E/D_F", "predicted loss (nats/token)",
              "gain over scratch", "compute (FLOPs)", "in budget", "compute-optimal D for N (chars)", "extrapolated"]
    lines += [markdown_table(header, _prediction_rows(plan)), "",
              "Predicted loss: the from-scratch law at D_E (at D_F from scratch). Compute-optimal D: the data "
              "that minimises the from-scratch loss for this N at fixed 6·N·D (Chinchilla form; † beyond the D "
              "the law was fitted on). Every prediction outside a law's fitted range is listed under "
              "*extrapolated*, with the range.", ""]
    lines += ["## Best size for the budget", ""] + _best_lines(plan) + ["", "## Notes", ""]
    lines += [f"- {note}" for note in plan.notes]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- python -m effdata.plan --compute

def _exponent_rows(found: Allocator) -> list[list[str]]:
    rows = []
    for rule in found.rules:
        interval = f" [{sig(rule.interval[0], 2)}, {sig(rule.interval[1], 2)}]" if rule.interval else ""
        rows.append([rule.label, sig(rule.exponent, 3) + interval, rule.paper or "—"])
    return rows


def _allocation_rows(found: Allocator, allocations: list[Allocation]) -> list[list[str]]:
    return [[a.rule.label, sig(a.n), sig(a.tokens), sig(a.chars), sig(a.tokens / a.n),
             *(sig(a.losses[judge.key], 4) for judge in found.judges), "; ".join(a.flags) or "—"]
            for a in allocations]


def render_allocation(found: Allocator, allocations: list[Allocation]) -> str:
    """The exponents side by side, then a table per compute: each rule's N and D, its loss under every fitted law."""
    computes = list(dict.fromkeys(a.compute for a in allocations))
    lines = [f"# Compute allocation for C = {', '.join(sig(c) for c in computes)} FLOPs", "",
             "How big a model, on how much data, for C FLOPs (C = 6·N·D, D in tokens): the compute-optimal N of "
             "each fitted law beside the papers' rules, and the loss each allocation reaches under every fitted law.",
             "", f"- Laws fitted by effdata.analyze on `{found.source}`.",
             f"- Characters per token: {sig(found.chars_per_token)} ({found.cpt_source})."]
    lines += [f"- Not used: {why}." for why in found.missing]
    lines += ["", "## N_opt ∝ C^a", "", markdown_table(["allocation", "a [90% CI]", "paper"], _exponent_rows(found)),
              "", "Intervals: the bootstrap's percentiles of the exponent (fits.json keeps each parameter's, not the "
              "joint samples, so N_opt(C) itself has no interval); the learning-curve frontier has none.", ""]
    header = ["allocation", "N_opt", "D (tokens)", "D (chars)", "tokens per parameter",
              *(f"loss under {judge.label}" for judge in found.judges), "outside a fitted range"]
    for c in computes:
        at_c = [a for a in allocations if a.compute == c]
        lines += [f"## C = {sig(c)} FLOPs", "", markdown_table(header, _allocation_rows(found, at_c)), ""]
    lines += ["## Notes", "", "- Each fitted law's own allocation has the lowest loss in its column; the spread down "
              "a column is what choosing another allocation costs under that law. Losses in nats/token; the frontier's "
              "is the loss a run of that N reaches spending C at a batch well below B_crit (Kaplan's C_min).",
              "- Paper rules come from other tokenizers, data and sizes: compare their N, not their losses."]
    lines += [f"- {note[:1].upper() + note[1:]}." for rule in found.rules for note in rule.notes]
    return "\n".join(lines) + "\n"
