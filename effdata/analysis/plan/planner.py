"""The planner: fitted laws in, a practitioner's answers out. Never imports torch.

It composes three laws read from a `fits.json` (a study's, or the papers' built-in ones):

* a from-scratch law L(N, D): the Chinchilla form E + A/N^alpha + B/D^beta, or Kaplan's;
* the transfer law D_T = k D_F^alpha N^beta per pretraining distribution (Hernandez et al. 2021);
* optionally a `shape` block, or a list of them (which shape a shape study favours; the plan uses the one
  nearest its D_F and sizes).

For a target data set of D_F characters it predicts, per candidate size N: the from-scratch loss
L(N, D_F), the effective data D_E = D_F + D_T, the fine-tuned loss L(N, D_E), the multiplier D_E/D_F,
the training compute, and which size gives the lowest predicted loss within a compute budget.

Units: the planner works in characters (the transfer law's unit). A law in tokens is read through
characters per token: the table's (stored with the law by effdata.analyze), `--chars-per-token`, or for
the papers' laws an assumed 3.0 (said in the output).

Compute: one training run of N parameters over T tokens costs 6 N T FLOPs (Kaplan et al.'s 6N per
token; attention and the unembedding are left out). Training on the target data costs
C_target = 6 N (D_F / chars_per_token) epochs, the same from scratch and fine-tuned. A pretrained model
also costs C_pre = 6 N T_pre to pretrain (T_pre from --pretrain-tokens or --pretrain-tokens-per-param).
The budget is C_target, or with --count-pretraining C_target + C_pre.

Extrapolation: every prediction whose N, D_F or D_E lies outside the range a law was fitted on says so,
with the range. Paper laws carry the ranges their papers state (the transfer laws' ranges are not
recorded, which is said too).

Why one module of ~590 lines: reading the laws (a study's or the papers'), predicting and searching the
budget are one path the held-out check must share exactly; the report and the figure are apart.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from effdata.analysis.core.fit import PAPER_TRANSFER, law_points
from effdata.analysis.laws.scaling import (
    PAPER_CHINCHILLA,
    PAPER_KAPLAN,
    chinchilla_loss,
    kaplan_loss,
)
from effdata.analysis.plan.pretraining import PretrainingBudget, pretraining_mismatch, read_budgets, requested_tokens
from effdata.fmt import compact

PAPER_CHARS_PER_TOKEN = 3.0      # assumed for the papers' laws: a BPE on Python code (ours: 3.02)
PAPER_SOURCES = ("paper", "paper:besiroglu", "paper:hoffmann")
PAPER_VOCAB = 50257               # GPT-2's BPE, which Kaplan et al. and Hernandez et al. used
# Where the papers' laws were fitted, D in tokens: as Kaplan et al. and Hoffmann et al. state it; for
# Besiroglu et al.'s refit, the range of the 240 points it was fitted on (D = C/(6N), measured here).
PAPER_RANGES = {"kaplan": {"n_range": [768.0, 1.5e9], "d_range": [2.2e7, 2.3e10]},
                "hoffmann": {"n_range": [7e7, 1.6e10], "d_range": [5e9, 5e11]},
                "besiroglu": {"n_range": [5.7e7, 1.6e10], "d_range": [8.2e8, 3.2e11]}}
LAW_FORMS = ("auto", "chinchilla", "kaplan")
SHAPE_QUANTITIES = {"loss": "lower", "d_t": "higher", "multiplier": "higher"}   # which way is better


class PlanError(ValueError):
    """Input the planner cannot use; the message is one line, the CLI exits 2."""


# --------------------------------------------------------------------------- the laws

@dataclass(frozen=True)
class Range:
    """Where a law was fitted: N in parameters, D in characters."""

    low: float
    high: float

    def outside(self, value: float) -> str | None:
        if value < self.low * (1 - 1e-9):
            return "below"
        if value > self.high * (1 + 1e-9):
            return "above"
        return None


@dataclass(frozen=True)
class ScratchLaw:
    """A from-scratch L(N, D), D in the law's own unit; `loss` takes characters."""

    form: str                              # "chinchilla" or "kaplan"
    params: dict[str, float]
    units: str                             # D's unit in the law
    chars_per_token: float | None          # needed only when units is "tokens"
    n_range: Range | None
    d_range: Range | None                  # in characters

    def to_law_units(self, d_chars):
        d_chars = np.asarray(d_chars, float)
        return d_chars if self.units == "chars" else d_chars / self.chars_per_token

    def loss(self, n_params, d_chars) -> np.ndarray:
        n, d = np.asarray(n_params, float), self.to_law_units(d_chars)
        p = self.params
        if self.form == "chinchilla":
            return chinchilla_loss(n, d, p["E"], p["A"], p["B"], p["alpha"], p["beta"])
        return kaplan_loss(np.log(n), np.log(d), p["alpha_n"], p["alpha_d"], math.log(p["n_c"]), math.log(p["d_c"]))

    def compute_optimal_data(self, n_params) -> np.ndarray | None:
        """Chinchilla form: the D (characters) that minimises L at fixed 6ND for this N, from
        alpha A / N^alpha = beta B / D^beta (None for Kaplan's form)."""
        if self.form != "chinchilla":
            return None
        p = self.params
        d = (p["beta"] * p["B"] * np.asarray(n_params, float) ** p["alpha"] / (p["alpha"] * p["A"])) ** (1 / p["beta"])
        return d if self.units == "chars" else d * self.chars_per_token

    def describe(self) -> str:
        name = {"chinchilla": "Chinchilla form E + A/N^α + B/D^β", "kaplan": "Kaplan form"}[self.form]
        fitted = f"fitted on N {_span(self.n_range)}, D {_span(self.d_range)} chars" if self.n_range else "fitted range not recorded"
        return f"{name} (D in {self.units}; {fitted})"


@dataclass(frozen=True)
class TransferLaw:
    """D_T = k D_F^alpha N^beta for one pretraining distribution; `transferred` takes and gives characters."""

    name: str
    k: float
    alpha: float
    beta: float
    units: str
    chars_per_token: float | None          # needed only when units is "tokens"
    n_range: Range | None
    d_f_range: Range | None                # in characters
    caveats: tuple[str, ...] = ()          # the analysis's audit warnings on this law (fits.json `audit`)
    pretraining: PretrainingBudget | None = None   # the budget its checkpoints were pretrained on (None: not recorded)

    def transferred(self, d_f_chars, n_params) -> np.ndarray:
        scale = 1.0 if self.units == "chars" else self.chars_per_token
        d_f = np.asarray(d_f_chars, float) / scale
        return scale * self.k * d_f ** self.alpha * np.asarray(n_params, float) ** self.beta


@dataclass(frozen=True)
class ShapeOption:
    name: str
    value: float
    interval: tuple[float, float] | None = None
    n_layer: int | None = None
    d_model: int | None = None


@dataclass(frozen=True)
class ShapeComparison:
    """The optional `shape` block of fits.json (written by a shape study; see docs/planning.md, 'The `shape` block')."""

    quantity: str                          # a key of SHAPE_QUANTITIES
    options: tuple[ShapeOption, ...]
    n_params: float | None = None
    pretrain: str | None = None
    d_f: float | None = None
    units: str = "chars"                   # of d_f (a shape study analysed in tokens writes "tokens")

    def verdict(self) -> str:
        lower = SHAPE_QUANTITIES[self.quantity] == "lower"
        ranked = sorted(self.options, key=lambda o: o.value if lower else -o.value)
        best, runner_up = ranked[0], ranked[1]
        where = ", ".join(part for part in (
            f"N ≈ {self.n_params:.3g}" if self.n_params else "",
            f"pretrained on {self.pretrain}" if self.pretrain else "",
            f"D_F = {self.d_f:.3g} {self.units}" if self.d_f else "") if part)
        text = (f"the shape comparison{f' ({where})' if where else ''} favours {_shape_label(best)}: "
                f"{self.quantity} {_with_interval(best)} against {_with_interval(runner_up)} for {_shape_label(runner_up)}")
        if best.interval and runner_up.interval and _overlap(best.interval, runner_up.interval):
            text += "; the intervals overlap, so the preference is not clear"
        return text


@dataclass(frozen=True)
class Laws:
    """What the planner composes, read from one fits.json or built in."""

    source: str
    label: str                             # where the laws come from, in words
    is_paper: bool
    scratch: ScratchLaw
    transfer: dict[str, TransferLaw]
    not_fitted: dict[str, str]             # pretraining name -> why it has no law
    shapes: tuple[ShapeComparison, ...]    # a shape study's comparisons (none: no shape comparison)
    chars_per_token: float | None          # None: compute cannot be given in FLOPs
    chars_per_token_source: str
    uniform_loss: float | None = None      # log(vocabulary): a uniform guess's loss; no prediction may exceed it
    other_scratch: "ScratchLaw | None" = None   # the other fitted form, in case this one is not sane for a request
    scratch_choice: str = ""               # which form, and why (auto)


def _span(r: Range | None) -> str:
    return "—" if r is None else f"{compact(r.low)}–{compact(r.high)}"


def _shape_label(option: ShapeOption) -> str:
    if option.n_layer and option.d_model:
        return f"{option.name} ({option.n_layer} layer{'s' if option.n_layer != 1 else ''} × {option.d_model})"
    return option.name


def _with_interval(option: ShapeOption) -> str:
    if option.interval:
        return f"{option.value:.4g} [{option.interval[0]:.4g}, {option.interval[1]:.4g}]"
    return f"{option.value:.4g}"


def _overlap(a, b) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


# --------------------------------------------------------------------------- reading fits.json

def read_fits(spec: str | Path) -> dict:
    """A fits.json (path, or a directory holding one) or a built-in paper source ("paper", "paper:hoffmann")."""
    if str(spec) in PAPER_SOURCES:
        return paper_fits(str(spec))
    path = Path(spec)
    if path.is_dir():
        path = path / "fits.json"
    if not path.exists():
        raise PlanError(f"fits file not found: {path} (give a fits.json written by effdata.analyze, or 'paper')")
    try:
        fits = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(fits, dict):
        raise PlanError(f"{path} is not a fits.json: expected a JSON object")
    fits.setdefault("source", str(path))
    return fits


def paper_fits(source: str = "paper") -> dict:
    """The papers' laws in fits.json's shape, so that they take exactly the planner's path."""
    key = "hoffmann" if source == "paper:hoffmann" else "besiroglu"
    chinchilla = PAPER_CHINCHILLA[key]
    label = (f"built-in PAPER laws, not measured by effdata: {chinchilla['label']} (from scratch, D in tokens), "
             "Kaplan et al. 2020 (--law kaplan), Hernandez et al. 2021 transfer laws (D in characters); other "
             "tokenizers and data, so their absolute losses do not compare with effdata's studies")
    return {
        "source": source, "label": label, "built_in": True, "units": "chars", "vocab_size": PAPER_VOCAB,
        "transfer": {name: {"fitted": True, "k": law["k"], "alpha": law["alpha"], "beta": law["beta"], "intervals": {}}
                     for name, law in PAPER_TRANSFER.items()},
        "chinchilla": {"fitted": True, "units": "tokens", "chars_per_token": None, **PAPER_RANGES[key],
                       **{name: chinchilla[name] for name in ("E", "A", "B", "alpha", "beta")}},
        "kaplan": {"fitted": True, "units": "tokens", "chars_per_token": None, **PAPER_RANGES["kaplan"],
                   **{name: PAPER_KAPLAN[name] for name in ("alpha_n", "alpha_d", "n_c", "d_c")}},
    }


def load_laws(fits: dict, law: str = "auto", chars_per_token: float | None = None) -> Laws:
    """The laws the planner composes; PlanError (one line) for anything it cannot use."""
    if law not in LAW_FORMS:
        raise PlanError(f"unknown law form {law!r}: use one of {', '.join(LAW_FORMS)}")
    try:
        return _load_laws(fits, law, chars_per_token)
    except PlanError:
        raise
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:   # a hand-edited file
        raise PlanError(f"the fits file is malformed ({type(exc).__name__}: {exc})") from exc


def _load_laws(fits: dict, law: str, chars_per_token: float | None) -> Laws:
    built_in = bool(fits.get("built_in"))
    form, entry, choice = _choose_scratch_entry(fits, law)
    cpt, cpt_source = law_chars_per_token(entry, chars_per_token, built_in)
    scratch = scratch_law(form, entry, cpt)
    other_form = {"chinchilla": "kaplan", "kaplan": "chinchilla"}[form]
    other = fits.get(other_form)
    other_law = (scratch_law(other_form, other, cpt) if law == "auto" and isinstance(other, dict) and other.get("fitted")
                 and not other.get("degenerate") else None)
    transfer, not_fitted = _transfer_laws(fits, cpt)
    label = fits.get("label") or f"fitted by effdata.analyze on {fits.get('source', 'an unnamed table')}"
    vocab = fits.get("vocab_size")
    return Laws(source=str(fits.get("source", "?")), label=label, is_paper=built_in, scratch=scratch,
                transfer=transfer, not_fitted=not_fitted, shapes=parse_shapes(fits.get("shape")),
                chars_per_token=cpt, chars_per_token_source=cpt_source,
                uniform_loss=math.log(vocab) if isinstance(vocab, (int, float)) and vocab > 1 else None,
                other_scratch=other_law, scratch_choice=choice)


def _heldout_error(entry: dict) -> float:
    """Leave-one-N-out RMSE of log loss (effdata.analyze's goodness), inf where not measured."""
    value = (entry.get("goodness") or {}).get("heldout_rmse_log")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.inf


def _choose_scratch_entry(fits: dict, law: str) -> tuple[str, dict, str]:
    """(form, its fits.json entry, why). `auto`: of the fitted forms, not a degenerate one when the other is not,
    then the lower held-out error (leave one N out); with neither measured, the Chinchilla form."""
    forms = ("chinchilla", "kaplan") if law == "auto" else (law,)
    fitted, reasons = {}, []
    for form in forms:
        entry = fits.get(form)
        if isinstance(entry, dict) and entry.get("fitted"):
            fitted[form] = entry
        else:
            reasons.append(f"{form}: {entry.get('reason') or 'not fitted'}" if isinstance(entry, dict) else f"{form}: absent")
    if not fitted:
        raise PlanError(f"the fits have no fitted from-scratch law to predict losses with ({'; '.join(reasons)})")
    if law != "auto" or len(fitted) == 1:
        form = next(iter(fitted))
        sane = fitted[form].get("degenerate")
        return form, fitted[form], (f"the {form} form, the only one fitted" if law == "auto" else f"the {form} form, asked for") + (
            f"; it is degenerate ({'; '.join(sane)}): its allocation is not a finding" if sane else "")
    clean = {f: e for f, e in fitted.items() if not e.get("degenerate")} or fitted
    form = min(clean, key=lambda f: (_heldout_error(clean[f]), forms.index(f)))
    why = [f"{f} is degenerate ({'; '.join(fitted[f]['degenerate'])})" for f in fitted if f not in clean]
    errors = {f: _heldout_error(e) for f, e in fitted.items()}
    if all(math.isfinite(v) for v in errors.values()):
        why.append("held-out error (leave one N out, RMSE of log loss) " +
                   ", ".join(f"{f} {errors[f]:.3g}" for f in fitted))
    return form, fitted[form], f"the {form} form (auto: {'; '.join(why) or 'neither held-out error measured'})"


def law_chars_per_token(entry: dict, given: float | None, built_in: bool) -> tuple[float | None, str]:
    if given is not None:
        if not (math.isfinite(given) and given > 0):
            raise PlanError(f"--chars-per-token must be a positive number (got {given})")
        return float(given), "given (--chars-per-token)"
    if entry.get("chars_per_token"):
        return float(entry["chars_per_token"]), "median data_chars / data_tokens of the table's from-scratch runs"
    if built_in:
        return PAPER_CHARS_PER_TOKEN, "assumed for the paper laws (pass --chars-per-token for your tokenizer)"
    return None, "unknown (the table has one data column; pass --chars-per-token)"


def _number(entry: dict, name: str, where: str) -> float:
    value = entry.get(name)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PlanError(f"{where} has no finite `{name}` (got {value!r}): the fits file is malformed")
    return float(value)


def _range(entry: dict, key: str, scale: float | None = 1.0) -> Range | None:
    value = entry.get(key)
    if not value or scale is None:
        return None
    return Range(float(value[0]) * scale, float(value[1]) * scale)


def scratch_law(form: str, entry: dict, cpt: float | None) -> ScratchLaw:
    units = entry.get("units") or "tokens"
    if units == "tokens" and cpt is None:
        raise PlanError(f"the {form} law is in tokens and the fits give no characters per token: "
                        "pass --chars-per-token")
    names = ("E", "A", "B", "alpha", "beta") if form == "chinchilla" else ("alpha_n", "alpha_d", "n_c", "d_c")
    params = {name: _number(entry, name, f"the {form} law") for name in names}
    to_chars = 1.0 if units == "chars" else cpt
    return ScratchLaw(form=form, params=params, units=units, chars_per_token=cpt,
                      n_range=_range(entry, "n_range"), d_range=_range(entry, "d_range", to_chars))


def _transfer_laws(fits: dict, cpt: float | None) -> tuple[dict[str, TransferLaw], dict[str, str]]:
    units = fits.get("units") or "chars"
    ranges = fits.get("transfer_ranges") or {}
    audited = {a.get("law"): tuple(a.get("warnings") or ()) for a in (fits.get("audit") or {}).get("laws") or []}
    budgets = read_budgets(fits)
    laws, not_fitted = {}, {}
    for name, entry in (fits.get("transfer") or {}).items():
        if not entry.get("fitted"):
            not_fitted[name] = entry.get("reason") or "not fitted"
            continue
        if units == "tokens" and cpt is None:
            raise PlanError("the transfer laws are in tokens and the fits give no characters per token: "
                            "pass --chars-per-token")
        where = ranges.get(name) or {}
        laws[name] = TransferLaw(name=name, k=_number(entry, "k", f"transfer law '{name}'"),
                                 alpha=_number(entry, "alpha", f"transfer law '{name}'"),
                                 beta=_number(entry, "beta", f"transfer law '{name}'"), units=units,
                                 chars_per_token=cpt, n_range=_range(where, "n_range"),
                                 d_f_range=_range(where, "d_f_range", 1.0 if units == "chars" else cpt),
                                 caveats=audited.get(f"transfer law '{name}'", ()), pretraining=budgets.get(name))
    return laws, not_fitted


def parse_shapes(value) -> tuple[ShapeComparison, ...]:
    """fits.json's optional `shape`: one block (`parse_shape`), or a list of them (a shape study writes one
    per N, pretraining name, D_F and quantity)."""
    if value is None:
        return ()
    blocks = value if isinstance(value, list) else [value]
    if not blocks:
        raise PlanError("fits.json `shape` is an empty list")
    return tuple(parse_shape(block) for block in blocks)


def parse_shape(block) -> ShapeComparison | None:
    """One `shape` block: {"quantity": "loss" | "d_t" | "multiplier", "shapes": [{"name", "value",
    "interval"?, "n_layer"?, "d_model"?}, ...], "n_params"?, "pretrain"?, "d_f"?, "units"?}."""
    if block is None:
        return None
    if not isinstance(block, dict) or block.get("quantity") not in SHAPE_QUANTITIES:
        raise PlanError(f"fits.json `shape` block needs a `quantity` in {sorted(SHAPE_QUANTITIES)}")
    shapes = block.get("shapes")
    if not isinstance(shapes, list) or len(shapes) < 2:
        raise PlanError("fits.json `shape` block needs a `shapes` list of at least two shapes")
    options = []
    for item in shapes:
        if not isinstance(item, dict) or "name" not in item:
            raise PlanError("every entry of fits.json `shape.shapes` needs a `name` and a `value`")
        interval = item.get("interval")
        options.append(ShapeOption(name=str(item["name"]), value=_number(item, "value", f"shape '{item['name']}'"),
                                   interval=tuple(map(float, interval)) if interval else None,
                                   n_layer=item.get("n_layer"), d_model=item.get("d_model")))
    units = block.get("units", "chars")
    if units not in ("chars", "tokens"):
        raise PlanError(f"fits.json `shape` block: units must be chars or tokens, got {units!r}")
    return ShapeComparison(quantity=block["quantity"], options=tuple(options), n_params=block.get("n_params"),
                           pretrain=block.get("pretrain"), d_f=block.get("d_f"), units=units)


def choose_shape(laws: Laws, request: PlanRequest, sizes) -> ShapeComparison | None:
    """The comparison nearest the request: a loss comparison first, of a pretraining name asked for, at the
    N nearest the candidate sizes (geometric mean) and the D_F nearest the request's, both in log."""
    if not laws.shapes:
        return None
    n_wanted = float(np.exp(np.mean(np.log(sizes)))) if len(sizes) else None
    cpt = laws.chars_per_token
    def distance(c: ShapeComparison):
        d_f = c.d_f * (cpt or math.nan) if c.d_f and c.units == "tokens" else c.d_f
        return (list(SHAPE_QUANTITIES).index(c.quantity),
                bool(request.pretrain) and c.pretrain not in request.pretrain,
                abs(math.log(c.n_params / n_wanted)) if c.n_params and n_wanted else math.inf,
                abs(math.log(d_f / request.d_f)) if d_f and math.isfinite(d_f) else math.inf)
    return min(laws.shapes, key=distance)


def with_shapes(laws: Laws, fits: dict, where: str) -> Laws:
    """The laws with another fits.json's shape comparisons (`python -m effdata.plan --shape FITS`)."""
    shapes = parse_shapes(fits.get("shape"))
    if not shapes:
        raise PlanError(f"{where} has no `shape` block (a shape study's fits.json has one)")
    return dataclasses.replace(laws, shapes=shapes)


# --------------------------------------------------------------------------- predictions

SCRATCH = "none"                 # the `pretrain` value of a from-scratch run, as in results tables
DEFAULT_SIZES = 5                # candidate sizes spread over the from-scratch law's fitted N range
SEARCH_POINTS = 400              # sizes tried, log-spaced, when looking for the best size in a budget


@dataclass(frozen=True)
class PlanRequest:
    """What the practitioner asks; sizes and data in parameters and characters, compute in FLOPs."""

    d_f: float                                  # target (fine-tuning) data, characters
    sizes: tuple[float, ...] = ()               # candidate N; empty: spread over the law's fitted range
    pretrain: tuple[str, ...] = ()              # pretraining names; empty: every fitted one
    budget: float | None = None                 # FLOPs, see the module docstring
    count_pretraining: bool = False
    epochs: float = 1.0                         # passes over the target data
    pretrain_tokens: float | None = None        # tokens of one pretraining run, whatever N
    pretrain_tokens_per_param: float | None = None


@dataclass(frozen=True)
class BestSize:
    """The size with the lowest predicted loss within the budget, for one way of training."""

    pretrain: str
    n_params: float
    loss: float
    compute: float
    bound: str                                  # what stopped the search there
    extrapolation: str


@dataclass
class Plan:
    laws: Laws
    request: PlanRequest
    options: tuple[str, ...]                    # SCRATCH, then the pretraining names
    sizes: tuple[float, ...]
    rows: pd.DataFrame                          # one row per (option, size)
    best: list[BestSize] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _positive(value, what: str) -> None:
    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise PlanError(f"{what} must be a positive number (got {value})")


def check_request(request: PlanRequest, laws: Laws) -> tuple[str, ...]:
    """The pretraining names to plan for; PlanError for a request the laws cannot answer."""
    _positive(request.d_f, "D_F (target data, characters)")
    for size in request.sizes:
        _positive(size, "every candidate size N")
    _positive(request.budget, "the compute budget (FLOPs)")
    _positive(request.epochs, "epochs")
    _positive(request.pretrain_tokens, "pretraining tokens")
    _positive(request.pretrain_tokens_per_param, "pretraining tokens per parameter")
    for name in request.pretrain:
        if name in laws.not_fitted:
            raise PlanError(f"pretraining '{name}' has no fitted transfer law in these fits ({laws.not_fitted[name]})")
        if name not in laws.transfer:
            known = ", ".join(sorted(laws.transfer)) or "none"
            raise PlanError(f"unknown pretraining name '{name}': these fits have transfer laws for {known}")
    if request.budget is not None and laws.chars_per_token is None:
        raise PlanError("a compute budget needs characters per token to count tokens: pass --chars-per-token")
    if request.count_pretraining and not (request.pretrain_tokens or request.pretrain_tokens_per_param):
        raise PlanError("--count-pretraining needs --pretrain-tokens or --pretrain-tokens-per-param")
    if not request.sizes and laws.scratch.n_range is None:
        raise PlanError("the from-scratch law has no recorded N range: give the candidate sizes (--sizes)")
    return tuple(request.pretrain) or tuple(sorted(laws.transfer))


def predict(laws: Laws, pretrain: str, n_params, d_f) -> dict[str, np.ndarray]:
    """The one prediction path (the plan and the held-out check use it): D_T, D_E, D_E/D_F, and the
    from-scratch law read at D_E (the fine-tuned loss) and at D_F (the from-scratch loss)."""
    n, d_f = np.broadcast_arrays(np.asarray(n_params, float), np.asarray(d_f, float))
    d_t = np.zeros_like(d_f) if pretrain == SCRATCH else laws.transfer[pretrain].transferred(d_f, n)
    d_e = d_f + d_t
    return {"d_t": d_t, "d_e": d_e, "multiplier": d_e / d_f, "loss": laws.scratch.loss(n, d_e),
            "loss_scratch": laws.scratch.loss(n, d_f)}


def refusal(laws: Laws, loss: float) -> str:
    """'' for a loss the law can mean, else why the prediction is refused: above a uniform guess over the
    vocabulary (no trained model is worse than that), negative, or not a number."""
    if not math.isfinite(loss):
        return "the law gives no finite loss here"
    if loss < 0:
        return f"the law gives a negative loss ({loss:.3g})"
    if laws.uniform_loss is not None and loss > laws.uniform_loss:
        return (f"the law gives {loss:.3g} nats/token, above a uniform guess over the vocabulary "
                f"({laws.uniform_loss:.3g}): outside what it can mean here")
    return ""


def _is_sane(laws: Laws, request: PlanRequest, options, sizes) -> bool:
    n = np.array(sizes, float)
    return all(not refusal(laws, float(v)) for option in options
               for key in ("loss", "loss_scratch") for v in predict(laws, option, n, request.d_f)[key])


def sane_laws(laws: Laws, request: PlanRequest, options, sizes) -> tuple[Laws, str | None]:
    """The laws to plan with: where the chosen from-scratch form predicts what it cannot mean for this request
    (above a uniform guess, negative) and the other fitted form does not, the other one, said in a note."""
    if laws.other_scratch is None or _is_sane(laws, request, options, sizes):
        return laws, None
    other = dataclasses.replace(laws, scratch=laws.other_scratch, other_scratch=laws.scratch)
    if not _is_sane(other, request, options, sizes):
        return laws, None
    return other, (f"the {laws.scratch.form} form predicts losses it cannot mean for this request (above a uniform "
                   f"guess, or negative); the {other.scratch.form} form stays sane, so the plan uses it")


def extrapolation(laws: Laws, pretrain: str, n: float, d_f: float, d_e: float, request: PlanRequest | None = None) -> str:
    """'' inside every range the laws were fitted on, else what lies outside which range; with a request that gives
    pretraining tokens, also where they are not the transfer law's pretraining (`pretraining_mismatch`)."""
    scratch_law = "from-scratch law's"
    checks = [("N", n, laws.scratch.n_range, scratch_law, ""),
              ("D" if pretrain == SCRATCH else "D_E", d_e, laws.scratch.d_range, scratch_law, " chars")]
    if pretrain != SCRATCH:
        law = laws.transfer[pretrain]
        checks += [("N", n, law.n_range, f"'{pretrain}' transfer law's", ""),
                   ("D_F", d_f, law.d_f_range, f"'{pretrain}' transfer law's", " chars")]
    notes = []
    for symbol, value, where, whose, unit in checks:
        if where is None:
            note = f"{whose} range not recorded"
        else:
            side = where.outside(value)
            note = side and f"{symbol} = {compact(value)}{unit} {side} the {whose} {compact(where.low)}–{compact(where.high)}"
        if note and note not in notes:
            notes.append(note)
    if pretrain != SCRATCH and request is not None:
        asked = requested_tokens(n, request.pretrain_tokens, request.pretrain_tokens_per_param)
        notes.append(pretraining_mismatch(pretrain, laws.transfer[pretrain].pretraining, n, asked))
    return "; ".join(note for note in notes if note)


def training_compute(laws: Laws, request: PlanRequest, pretrain: str, n) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target-data compute, pretraining compute, compute the budget counts), FLOPs = 6 N tokens."""
    n = np.asarray(n, float)
    if laws.chars_per_token is None:
        nan = np.full(n.shape, np.nan)
        return nan, nan, nan
    target = 6 * n * (request.d_f / laws.chars_per_token) * request.epochs
    asked = requested_tokens(n, request.pretrain_tokens, request.pretrain_tokens_per_param)
    if pretrain == SCRATCH:
        pretraining = np.zeros(n.shape)
    elif asked is None:
        pretraining = np.full(n.shape, np.nan)
    else:
        pretraining = 6 * n * asked
    return target, pretraining, target + pretraining if request.count_pretraining else target


def candidate_sizes(laws: Laws, request: PlanRequest) -> tuple[float, ...]:
    """The sizes asked for, else DEFAULT_SIZES log-spaced over the from-scratch law's fitted N."""
    if request.sizes:
        return tuple(sorted(float(n) for n in request.sizes))
    spread = np.geomspace(laws.scratch.n_range.low, laws.scratch.n_range.high, DEFAULT_SIZES)
    # The ends stay exact (rounded, they would fall just outside the fitted range); the others read better rounded.
    return (float(spread[0]), *(float(f"{n:.2g}") for n in spread[1:-1]), float(spread[-1]))


def _rows(laws: Laws, request: PlanRequest, options, sizes) -> pd.DataFrame:
    rows = []
    for option in options:
        n = np.array(sizes)
        predicted = predict(laws, option, n, request.d_f)
        target, pretraining, counted = training_compute(laws, request, option, n)
        d_opt = laws.scratch.compute_optimal_data(n)
        for i, size in enumerate(sizes):
            refused = refusal(laws, float(predicted["loss"][i])) or refusal(laws, float(predicted["loss_scratch"][i]))
            values = {key: float(value[i]) for key, value in predicted.items()}
            if refused:   # a number the law cannot mean is not a prediction: no loss, no gain
                values.update(loss=np.nan, loss_scratch=np.nan)
            rows.append({"pretrain": option, "n_params": size, "d_f": request.d_f, **values, "refused": refused,
                         "gain": float(values["loss_scratch"] - values["loss"]),
                         "compute_target": float(target[i]), "compute_pretrain": float(pretraining[i]),
                         "compute": float(counted[i]),
                         "within_budget": None if request.budget is None else bool(counted[i] <= request.budget),
                         "d_opt": float(d_opt[i]) if d_opt is not None else np.nan,
                         "extrapolation": extrapolation(laws, option, size, request.d_f, float(predicted["d_e"][i]),
                                                       request)})
    return pd.DataFrame(rows)


def best_within_budget(laws: Laws, request: PlanRequest, option: str, sizes) -> BestSize | str:
    """The size from the smallest candidate up to what the budget allows with the lowest predicted loss,
    or why there is none. Searched on SEARCH_POINTS log-spaced sizes."""
    tokens = request.d_f / laws.chars_per_token * request.epochs
    largest = max(max(sizes), request.budget / (6 * tokens))      # what the budget allows from scratch
    grid = np.geomspace(min(sizes), largest, SEARCH_POINTS)
    counted = training_compute(laws, request, option, grid)[2]
    affordable = counted <= request.budget * (1 + 1e-9)
    if not affordable.any():
        return (f"{_option_words(option)}: even N = {min(sizes):.3g} needs {counted[0]:.3g} FLOPs, "
                f"over the budget of {request.budget:.3g}")
    predicted = predict(laws, option, grid, request.d_f)["loss"]
    sane = np.array([not refusal(laws, float(v)) for v in predicted])
    if not (affordable & sane).any():
        return f"{_option_words(option)}: the law predicts no loss it can mean at any affordable size"
    loss = np.where(affordable & sane, predicted, np.inf)
    best = int(np.argmin(loss))
    # The grid reaches at least the largest size the budget allows, so the last affordable size is at the budget.
    at_budget = best == int(np.flatnonzero(affordable)[-1])
    n = _largest_affordable(laws, request, option, grid[best], grid[best + 1]) \
        if at_budget and best + 1 < len(grid) else float(grid[best])
    predicted = predict(laws, option, n, request.d_f)
    return BestSize(pretrain=option, n_params=n, loss=float(predicted["loss"]),
                    compute=float(training_compute(laws, request, option, n)[2]),
                    bound="the budget" if at_budget else "the predicted loss (an optimum below the budget)",
                    extrapolation=extrapolation(laws, option, n, request.d_f, float(predicted["d_e"]), request))


def _largest_affordable(laws: Laws, request: PlanRequest, option: str, low: float, high: float) -> float:
    """The N in [low, high] whose counted compute equals the budget (compute grows with N)."""
    def over(log_n):
        return float(training_compute(laws, request, option, math.exp(log_n))[2]) / request.budget - 1
    return math.exp(brentq(over, math.log(low), math.log(high), xtol=1e-12)) if over(math.log(high)) > 0 else high


def _option_words(option: str) -> str:
    return "from scratch" if option == SCRATCH else f"fine-tuned from {option}"


def make_plan(laws: Laws, request: PlanRequest) -> Plan:
    """Predictions for every candidate size and way of training, the best size in the budget, notes."""
    names = check_request(request, laws)
    options, sizes = (SCRATCH, *names), candidate_sizes(laws, request)
    laws, switched = sane_laws(laws, request, options, sizes)
    plan = Plan(laws=laws, request=request, options=options, sizes=sizes, rows=_rows(laws, request, options, sizes))
    if laws.scratch_choice:
        plan.notes.append(f"From-scratch law: {laws.scratch_choice}.")
    if switched:
        plan.notes.append(f"From-scratch law switched: {switched}.")
    if plan.rows["refused"].astype(bool).any():
        plan.notes.append(f"{int(plan.rows['refused'].astype(bool).sum())} prediction(s) refused: the law gives a loss "
                          "it cannot mean there (the reason is in the table).")
    if request.budget is not None:
        for option in options:
            found = best_within_budget(laws, request, option, sizes)
            if isinstance(found, BestSize):
                plan.best.append(found)
            else:
                plan.notes.append(found)
    plan.notes += _notes(laws, request)
    return plan


def _notes(laws: Laws, request: PlanRequest) -> list[str]:
    notes = []
    if not laws.transfer:
        notes.append("no transfer law in these fits (no fine-tuned runs, or none fitted): from-scratch predictions only")
    for name, reason in sorted(laws.not_fitted.items()):
        if name not in request.pretrain:
            notes.append(f"pretraining '{name}' left out: its transfer law was not fitted ({reason})")
    # What a planned law rests on, as the analysis's audit said it (docs/METHOD.md §6): a plan is a claim too.
    notes += [f"The analysis's audit: {caveat}" for name, law in sorted(laws.transfer.items())
              if not request.pretrain or name in request.pretrain for caveat in law.caveats]
    notes += _pretraining_notes(laws, request)
    shape = choose_shape(laws, request, candidate_sizes(laws, request))
    if shape is None:
        notes.append("No shape comparison in these fits.")
    else:
        among = f" (the nearest to this request of {len(laws.shapes)} in the fits)" if len(laws.shapes) > 1 else ""
        verdict = shape.verdict()
        notes.append(verdict[:1].upper() + verdict[1:] + among)
    if laws.scratch.form != "chinchilla":
        notes.append("The compute-optimal data for a size needs the Chinchilla form (--law chinchilla).")
    return notes


def _pretraining_notes(laws: Laws, request: PlanRequest) -> list[str]:
    """What a transfer law's D_T stands for: the pretraining its checkpoints had, which a plan that names its own
    pretraining tokens is checked against (`pretraining_mismatch`)."""
    planned = [law for name, law in sorted(laws.transfer.items()) if not request.pretrain or name in request.pretrain]
    if not planned or request.pretrain_tokens or request.pretrain_tokens_per_param:
        return []
    return ["A transfer law's D_T is that of the pretraining its checkpoints had (listed with each law above): a "
            "checkpoint pretrained on other tokens transfers differently. Give --pretrain-tokens or "
            "--pretrain-tokens-per-param and every prediction whose pretraining is not the law's is marked "
            "extrapolated (docs/planning.md, 'Pretraining budget')."]


# --------------------------------------------------------------------------- what effdata.analyze writes for it

def transfer_ranges(effective_table: pd.DataFrame, transfer_fits: dict) -> dict[str, dict]:
    """Per fitted pretraining name, the N and D_F range of the points its law was fitted on (the headline's
    interpolated D_E, else every D_T > 0: `core.fit.law_points`), in the table's units. A headline that leaves
    out the largest size's extrapolated D_E was fitted on a smaller N: a plan at that size is an extrapolation."""
    ranges = {}
    for name, fit in transfer_fits.items():
        found = law_points(effective_table, fit) if not effective_table.empty else None
        if found is None or found[0].empty:
            continue
        rows = found[0]
        ranges[str(name)] = {"n_range": [float(rows["n_params"].min()), float(rows["n_params"].max())],
                             "d_f_range": [float(rows["d_f"].min()), float(rows["d_f"].max())]}
    return ranges


def planning_fits(source: str, units: str, transfer_fits: dict, effective_table: pd.DataFrame,
                  kaplan, chinchilla) -> dict:
    """The keys of fits.json the planner reads, from the fit objects, as effdata.analyze writes them."""
    return {"source": source, "units": units,
            "transfer": {name: fit.to_dict() for name, fit in transfer_fits.items()},
            "transfer_ranges": transfer_ranges(effective_table, transfer_fits),
            "kaplan": kaplan.to_dict(), "chinchilla": chinchilla.to_dict()}
