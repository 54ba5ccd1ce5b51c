"""The run contract: model shapes, training settings, one run's spec and a study's run. No torch.

Everything that describes a run lives here, typed, so that one description flows unchanged from the
study file (`effdata.study`) to the worker (`effdata.study.runner`, `effdata.training.train`) and into
the run's record. Reading and planning a study imports this module and never torch.

* `ModelShape` and the ladders: named GPT-2 shapes. N, the size every law uses, is the count of
  parameters excluding the token and position embeddings (the unembedding is tied to the token
  embedding, so it is excluded too): N = n_layer·(12·d² + 13·d) + 2·d exactly for a GPT-2 block stack
  (12·d² from the matrices, 13·d from biases and two layer norms per block, 2·d from the final norm),
  within 13/(12·d) of the paper's 12·n_layer·d² (3.4 % at d = 32, under 1 % from d = 128).
* `TrainSettings`: every knob of a run, validated once, here, whoever builds it (a study's `[train]`
  table, a test, the benchmark). A bad value is a `SpecError` naming the key.
* `RunSpec`: what one run is (mode, size, seed, data, settings).
* `StudyRun`: a run of a study: its spec, what it depends on, and its id.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import typing
from dataclasses import dataclass, field
from types import UnionType
from typing import Any, Literal

from effdata.forecast import FIRST_FRACTION


class SpecError(ValueError):
    """A shape, setting or run description that cannot be used; the message names the key."""


# ----------------------------------------------------------------------------------------------
# Model shapes

@dataclass(frozen=True)
class ModelShape:
    name: str
    n_layer: int
    d_model: int
    n_head: int
    n_ctx: int = 128

    def __post_init__(self) -> None:
        if min(self.n_layer, self.d_model, self.n_head, self.n_ctx) < 1:
            raise SpecError(f"model shape {self.name!r}: every dimension must be >= 1: {self}")
        if self.d_model % self.n_head:
            raise SpecError(f"model shape {self.name!r}: d_model {self.d_model} is not a multiple of "
                            f"n_head {self.n_head}")

    @property
    def n_params(self) -> int:
        """Exact non-embedding parameter count of the GPT-2 stack this shape builds."""
        d = self.d_model
        return self.n_layer * (12 * d * d + 13 * d) + 2 * d

    @property
    def n_params_approx(self) -> int:
        """12·n_layer·d_model², the paper's approximation of N."""
        return 12 * self.n_layer * self.d_model**2

    def flops_per_token(self, vocab_size: int) -> tuple[float, float]:
        """Training FLOPs per token: (full, 6N).

        full = 6·(N + d_model·V) + 6·n_layer·n_ctx·d_model: Kaplan's 6N plus the unembedding matmul
        (which dominates at the smallest sizes) plus attention (2·n_layer·n_ctx·d_model forward, ×3
        with backward). 6N uses non-embedding N only, the paper's convention. Evaluation is not counted.
        """
        n = self.n_params
        full = 6 * (n + self.d_model * vocab_size) + 6 * self.n_layer * self.n_ctx * self.d_model
        return float(full), float(6 * n)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _ladder(*rows: tuple[str, int, int, int, int]) -> dict[str, ModelShape]:
    return {name: ModelShape(name, l, d, h, c) for name, l, d, h, c in rows}


# CPU ladder: about 25K to 1.2M non-embedding parameters (1.7 decades), head dim 16, context 128
# (the paper's 2048 is not affordable on a CPU).
CPU_LADDER: dict[str, ModelShape] = _ladder(
    ("n25k", 2, 32, 2, 128),     # N = 25,472
    ("n50k", 2, 48, 3, 128),     # N = 56,640
    ("n100k", 2, 64, 4, 128),    # N = 100,096
    ("n200k", 4, 64, 4, 128),    # N = 200,064
    ("n500k", 5, 96, 6, 128),    # N = 559,392
    ("n1m", 6, 128, 8, 128),     # N = 1,189,888
)

# The width ladder (v3 and v4, issue 23): one depth, only the width changes, so β is not mixed with the depth effect
# the shape study measured (D_T ×1.5–1.8 per doubling of depth at 50 K and 200 K). Two layers because the
# three smallest CPU_LADDER sizes already are (v2 and v3 share those shapes), the shape study's best
# fine-tuned loss was at 1–2 layers at both N, and 2 layers is the cheapest depth per parameter on this CPU
# (s200k-l2 trained fastest of the 200 K shapes). Head dim 16, context 128; 25 K to 1.04 M, 1.61 decades.
# w7k (one head of 16, the narrowest at this head width) extends it downward: w1m's pretraining alone is
# 10,427 estimated seconds for two corpora on this CPU, w7k's 30; v4 spans w7k–w500k, 1.88 decades.
WIDTH_LADDER: dict[str, ModelShape] = _ladder(
    ("w7k", 2, 16, 1, 128),      # N = 6,592 (token embeddings 2048 × 16 = 32,768: five times N)
    ("w25k", 2, 32, 2, 128),     # N = 25,472 (the shape of n25k)
    ("w50k", 2, 48, 3, 128),     # N = 56,640 (n50k)
    ("w100k", 2, 64, 4, 128),    # N = 100,096 (n100k)
    ("w200k", 2, 96, 6, 128),    # N = 223,872
    ("w500k", 2, 144, 9, 128),   # N = 501,696
    ("w1m", 2, 208, 13, 128),    # N = 1,044,160
)

# GPU ladder toward the paper's sizes: head dim 64, context 1024 (GPT-2 small and medium at the top).
GPU_LADDER: dict[str, ModelShape] = _ladder(
    ("g5m", 6, 256, 4, 1024),     # N ≈ 4.7M
    ("g20m", 6, 512, 8, 1024),    # N ≈ 18.9M
    ("g50m", 12, 576, 9, 1024),   # N ≈ 47.8M
    ("g85m", 12, 768, 12, 1024),  # N ≈ 85M  (GPT-2 small's stack)
    ("g300m", 24, 1024, 16, 1024),  # N ≈ 302M (GPT-2 medium's stack)
)

# Shape variants at about equal N for shape studies (Tay et al. 2021), from wide-shallow (1 layer) to
# deep-narrow (16 layers): `s<N>-l<layers>`, each within 5.1 % of its nominal N (tests/test_model.py).
# ≈ 200K (the size of n200k): 1 layer of width 128 to 16 layers of width 32.
# ≈ 50K: 1 layer of width 64 to 16 layers of width 16 (one head of 16; no CPU-ladder size has N ≈ 50K
# exactly: n50k is 2 × 48, N = 56,640).
SHAPES: dict[str, ModelShape] = _ladder(
    ("s200k-l1", 1, 128, 8, 128),   # N = 198,528
    ("s200k-l2", 2, 92, 4, 128),    # N = 205,712
    ("s200k-l4", 4, 64, 4, 128),    # N = 200,064 (the shape of n200k)
    ("s200k-l8", 8, 44, 4, 128),    # N = 190,520
    ("s200k-l16", 16, 32, 2, 128),  # N = 203,328
    ("s50k-l1", 1, 64, 4, 128),     # N = 50,112
    ("s50k-l2", 2, 45, 3, 128),     # N = 49,860
    ("s50k-l4", 4, 32, 2, 128),     # N = 50,880
    ("s50k-l8", 8, 22, 2, 128),     # N = 48,796
    ("s50k-l16", 16, 16, 1, 128),   # N = 52,512
)

ALL_SHAPES: dict[str, ModelShape] = {**CPU_LADDER, **WIDTH_LADDER, **GPU_LADDER, **SHAPES}

_CUSTOM = re.compile(r"^l(\d+)d(\d+)h(\d+)(?:c(\d+))?$")


def get_shape(name: str | ModelShape) -> ModelShape:
    """A ladder or shape-variant name, or a custom shape written `l<n_layer>d<d_model>h<n_head>[c<n_ctx>]`
    (e.g. `l3d48h3c64`; context 128 when omitted). SpecError if unknown."""
    if isinstance(name, ModelShape):
        return name
    if name in ALL_SHAPES:
        return ALL_SHAPES[name]
    m = _CUSTOM.match(name)
    if m:
        l, d, h, c = (int(g) if g else None for g in m.groups())
        return ModelShape(name, l, d, h, c or 128)
    raise SpecError(f"unknown model size {name!r}: use one of {', '.join(ALL_SHAPES)} "
                    "or a custom shape like 'l4d64h4' / 'l4d64h4c256'")


def ladder_table(ladder: dict[str, ModelShape] | None = None) -> str:
    """Markdown table of a ladder (CPU ladder and shape variants by default)."""
    ladder = ladder if ladder is not None else {**CPU_LADDER, **SHAPES}
    rows = ["| name | n_layer | d_model | n_head | n_ctx | N (non-embedding) | 12·L·d² |",
            "|---|---|---|---|---|---|---|"]
    for s in ladder.values():
        rows.append(f"| {s.name} | {s.n_layer} | {s.d_model} | {s.n_head} | {s.n_ctx} | {s.n_params:,} | "
                    f"{s.n_params_approx:,} |")
    return "\n".join(rows)


# ----------------------------------------------------------------------------------------------
# Training settings

@dataclass(frozen=True)
class TrainSettings:
    batch_size: int = 32               # sequences per step
    n_ctx: int | None = None           # context; None = the size's (128 on the CPU ladder)
    lr: float | None = None            # peak LR; None = Kaplan's rule by N, times lr_scale
    lr_scale: float = 1.0
    lr_rule: Literal["kaplan", "tuned"] = "kaplan"  # tuned: also × the data-size rule of analysis/lr (training.schedule.tuned_lr_factor)
    min_lr_ratio: float = 0.1          # the schedule decays to this fraction of the peak
    schedule: Literal["cosine", "wsd"] = "cosine"  # cosine over the run, or warm-up, stable, decay (training.schedule)
    decay_frac: float = 0.2            # wsd: the final decay's share of the run's expected steps
    warmup_frac: float = 0.05          # warm-up steps = this fraction of the expected steps ...
    warmup_max: int = 3000             # ... capped here (the paper's 3000)
    weight_decay: float = 0.1          # on matrices only
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0             # 0 = off
    max_epochs: float = 20.0           # scratch/fine-tune: epochs over the fraction ...
    min_steps: int = 200               # ... clamped to [min_steps, max_steps]
    max_steps: int = 5000
    evals_per_run: int = 20            # evaluation interval = expected steps / this
    patience: int = 4                  # evaluations without improvement before stopping
    eval_tokens: int = 65536           # leading tokens of valid used for early stopping
    test_tokens: int = 131072          # leading tokens of test used for the reported loss
    eval_batch_size: int = 64          # windows per evaluation forward (speed only: 64 was 4-13 % faster than 16)
    pretrain_stop_on: Literal["target", "budget"] = "target"  # early-stop pretraining on target valid?
    diverge_factor: float = 1.5
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: Literal["auto", "on", "off"] = "auto"
    compile_min_steps: int = 200       # "auto" considers compiling runs at least this long (training.step.should_compile)
    resume_every_s: float = 60.0       # write resume.pt at an evaluation at most this often (0: every one)
    noise_scale: int = 0               # batches measured for the gradient noise scale at each evaluation (0: off; training.noise)
    # How a from-scratch run or fine-tune finds its training length (docs/METHOD.md §5e; pretraining is not
    # affected): "off", early stopping within the [min_steps, max_steps] schedule; "branches", a wsd trunk with a
    # decay branched off at min_steps·branch_ratio^k steps, evaluated at the branches' ends only, until
    # `branch_patience` branches in a row are worse than the best, or the trunk's own end at max_steps.
    length_search: Literal["off", "branches"] = "off"
    branch_ratio: float = 1.5          # each length tried is this many times the last
    branch_patience: int = 2           # lengths worse than the best, in a row, that end the search
    # A [sweep] point (scratch or fine-tune) seen to this fraction of its planned steps stops when its forecast best
    # loss, less the forecast's measured error, is above its best finished sibling's (effdata.forecast; 0: off)
    stop_by_forecast: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name)))
        checks = [
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("n_ctx", self.n_ctx is None or self.n_ctx >= 2, ">= 2"),
            ("lr", self.lr is None or self.lr > 0, "> 0"),
            ("lr_scale", self.lr_scale > 0, "> 0"),
            ("min_lr_ratio", 0 <= self.min_lr_ratio <= 1, "in [0, 1]"),
            ("decay_frac", 0 < self.decay_frac <= 1, "in (0, 1]"),
            ("warmup_frac", 0 <= self.warmup_frac < 1, "in [0, 1)"),
            ("warmup_max", self.warmup_max >= 1, ">= 1"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("beta1", 0 <= self.beta1 < 1, "in [0, 1)"),
            ("beta2", 0 <= self.beta2 < 1, "in [0, 1)"),
            ("grad_clip", self.grad_clip >= 0, ">= 0 (0 = off)"),
            ("max_epochs", self.max_epochs > 0, "> 0"),
            ("min_steps", self.min_steps >= 1, ">= 1"),
            ("max_steps", self.max_steps >= self.min_steps, f">= min_steps ({self.min_steps})"),
            ("evals_per_run", self.evals_per_run >= 1, ">= 1"),
            ("patience", self.patience >= 1, ">= 1"),
            ("eval_tokens", self.eval_tokens >= 2, ">= 2"),
            ("test_tokens", self.test_tokens >= 2, ">= 2"),
            ("eval_batch_size", self.eval_batch_size >= 1, ">= 1"),
            ("diverge_factor", self.diverge_factor > 1, "> 1"),
            ("compile_min_steps", self.compile_min_steps >= 0, ">= 0"),
            ("resume_every_s", self.resume_every_s >= 0, ">= 0"),
            ("noise_scale", self.noise_scale >= 0, ">= 0 (0 = off)"),
            ("noise_scale", self.noise_scale == 0 or self.batch_size >= 2, "0 with batch_size 1 (it splits a batch)"),
            ("branch_ratio", self.branch_ratio > 1, "> 1"),
            ("branch_patience", self.branch_patience >= 1, ">= 1"),
            ("stop_by_forecast", self.stop_by_forecast == 0 or FIRST_FRACTION <= self.stop_by_forecast < 1,
             f"0 (off) or in [{FIRST_FRACTION}, 1) (its forecast's error is measured from there)"),
            ("stop_by_forecast", self.stop_by_forecast == 0 or self.length_search == "off",
             '0 with length_search = "branches" (it forecasts a run of planned length from its periodic evaluations)'),
            ("length_search", self.length_search == "off" or self.schedule == "wsd",
             '"off" unless schedule = "wsd" (a branch is the run of its length only when the LR does not depend '
             'on the length before its decay)'),
        ]
        for key, ok, rule in checks:
            if not ok:
                raise SpecError(f"{key} must be {rule}, got {getattr(self, key)!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainSettings":
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SpecError(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**d)


def _coerce(key: str, value: Any) -> Any:
    """`value` as the type TrainSettings declares for `key`, or SpecError naming the key.

    TOML has no 1e5 integers: whole-number floats are accepted where an int is declared."""
    hint = _HINTS[key]
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    kind = next(o for o in options if o is not type(None))
    if typing.get_origin(kind) is Literal:
        allowed = typing.get_args(kind)
        if value not in allowed:
            raise SpecError(f"{key} must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{key}: expected a number, got {value!r}")
    if kind is int:
        if not math.isfinite(value) or float(value) != int(value):
            raise SpecError(f"{key}: expected a whole number, got {value!r}")
        return int(value)
    if not math.isfinite(value):
        raise SpecError(f"{key}: expected a finite number, got {value!r}")
    return float(value)


_HINTS = typing.get_type_hints(TrainSettings)


# ----------------------------------------------------------------------------------------------
# One run

MODES = ("pretrain", "scratch", "finetune")


@dataclass(frozen=True)
class RunSpec:
    mode: Literal["pretrain", "scratch", "finetune"]
    size: str                          # ladder name (get_shape)
    seed: int
    corpus: str                        # pretrain: pretraining corpus/mixture; scratch/finetune: the target
    target: str = "python"             # held-out target for early stopping and the test loss
    data_chars: int | None = None      # scratch/finetune: target fraction in characters
    data_tokens: int | None = None     # ... or in tokens (neither: the whole train split)
    token_budget: int | None = None    # pretrain: tokens to train on at most
    init_from: str | None = None       # finetune: checkpoint directory (checked by train_run)
    vocab_size: int | None = None      # the shared tokenizer's vocabulary (None: effdata.data's default)
    tokenizer_corpora: tuple[str, ...] | None = None   # what that tokenizer is trained on (None: default)
    settings: TrainSettings = field(default_factory=TrainSettings)
    # pretrain with the wsd schedule: also save the model a run of c·N tokens would end with, for each c
    checkpoint_tokens_per_param: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SpecError(f"mode must be pretrain, scratch or finetune, got {self.mode!r}")
        get_shape(self.size)
        if self.mode == "pretrain" and not (self.token_budget and self.token_budget > 0):
            raise SpecError("a pretrain run needs token_budget > 0")
        if self.data_chars is not None and self.data_tokens is not None:
            raise SpecError("give data_chars or data_tokens, not both")
        for name in ("data_chars", "data_tokens", "vocab_size"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise SpecError(f"{name} must be > 0, got {v}")
        if self.tokenizer_corpora is not None:
            object.__setattr__(self, "tokenizer_corpora", tuple(self.tokenizer_corpora))
        if isinstance(self.settings, dict):  # from JSON
            object.__setattr__(self, "settings", TrainSettings.from_dict(self.settings))
        object.__setattr__(self, "checkpoint_tokens_per_param", self._checked_checkpoints())

    def _checked_checkpoints(self) -> tuple[float, ...]:
        """`checkpoint_tokens_per_param` as increasing floats, or SpecError naming the key: mid-run checkpoints
        are for pretraining runs trained to their budget under the wsd schedule (docs/METHOD.md §5b), each
        below the run's own budget."""
        key, values = "checkpoint_tokens_per_param", self.checkpoint_tokens_per_param
        if not values:
            return ()
        if any(isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 < c < math.inf for c in values):
            raise SpecError(f"{key}: expected positive numbers, got {list(values)!r}")
        if len(set(values)) != len(values):
            raise SpecError(f"{key}: a value is repeated in {list(values)!r}")
        if self.mode != "pretrain":
            raise SpecError(f"{key} is for pretraining runs, not {self.mode}")
        if self.settings.schedule != "wsd":
            raise SpecError(f"{key} needs schedule = \"wsd\", got {self.settings.schedule!r}: a checkpoint taken "
                            "mid-way through a cosine decay is not what a run of that length would give")
        if self.settings.pretrain_stop_on != "budget":
            raise SpecError(f"{key} needs pretrain_stop_on = \"budget\": a run early-stopped on the target "
                            "may end before its checkpoints, and its final model is not its last")
        n = get_shape(self.size).n_params
        for c in values:
            if round(c * n) >= self.token_budget:
                raise SpecError(f"{key} {c:g} at {self.size} is {round(c * n):,} tokens, not below the run's "
                                f"budget of {self.token_budget:,}: the run's own checkpoint is that model")
        return tuple(sorted(float(c) for c in values))

    @property
    def shape(self) -> ModelShape:
        s = get_shape(self.size)
        if self.settings.n_ctx is not None and self.settings.n_ctx != s.n_ctx:
            s = dataclasses.replace(s, n_ctx=self.settings.n_ctx)
        return s

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["settings"] = self.settings.to_dict()
        if self.tokenizer_corpora is not None:
            d["tokenizer_corpora"] = list(self.tokenizer_corpora)
        d["checkpoint_tokens_per_param"] = list(self.checkpoint_tokens_per_param)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        d = dict(d)
        d["settings"] = TrainSettings.from_dict(d.get("settings"))
        return cls(**d)


# ----------------------------------------------------------------------------------------------
# Mid-run checkpoints: one name for each, shared by the trainer (directories), the study (labels and
# pretraining names) and the results table

FINAL_CHECKPOINT = "checkpoint"        # a pretraining run's own model, in <run dir>/checkpoint


def checkpoint_tag(tokens_per_param: float) -> str:
    """10.0 -> '10tpp', 2.5 -> '2.5tpp'."""
    return f"{tokens_per_param:g}tpp"


def checkpoint_name(tokens_per_param: float) -> str:
    """The directory of a mid-run checkpoint in its pretraining run's directory: 'checkpoint@10tpp'."""
    return f"{FINAL_CHECKPOINT}@{checkpoint_tag(tokens_per_param)}"


def pretrain_name(corpus: str, tokens_per_param: float | None = None) -> str:
    """The pretraining a model had, as the results table names it: 'text', or 'text@10tpp' for the mid-run
    checkpoint at 10 tokens per parameter (its own pretraining distribution in the analysis)."""
    return corpus if tokens_per_param is None else f"{corpus}@{checkpoint_tag(tokens_per_param)}"


# ----------------------------------------------------------------------------------------------
# A run of a study

def identity_hash(identity: dict[str, Any]) -> str:
    """The 8 hex digits that end a run id: sha256 of the run's identity as sorted JSON."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class StudyRun:
    """One run of a study: its spec, the runs it depends on, and its id.

    `spec.init_from` is empty here: a fine-tune names the pretraining run it starts from
    (`init_from_run`) and which of its checkpoints (`init_from_checkpoint`: None for the run's own,
    `checkpoint@10tpp` for a mid-run one), and the runner resolves them to a directory.

    The id is `<label>-<hash of identity>`. The identity holds the [train] keys the study file set
    (`settings_keys`, the [sweep] keys among them), not the whole of TrainSettings: that is how ids were
    made from the start, and existing run directories and committed results tables must keep matching.
    Keys added later (mid-run checkpoints) enter the identity only when set, for the same reason.
    """

    label: str                         # readable part of the id, e.g. "scratch-n25k-1e4c-s0"
    spec: RunSpec
    pretrain: str                      # "none" from scratch; else the pretraining of the model (pretrain_name)
    depends_on: tuple[str, ...] = ()   # run ids whose results this run needs first
    init_from_run: str | None = None   # finetune: the pretraining run whose checkpoint it starts from
    settings_keys: tuple[str, ...] = ()
    init_from_checkpoint: str | None = None   # finetune: a mid-run checkpoint of that run (checkpoint_name)
    sweep_keys: tuple[str, ...] = ()   # the settings a study's [sweep] varies (a column each in results.csv)

    @property
    def mode(self) -> str:
        return self.spec.mode

    def identity(self) -> dict[str, Any]:
        s = self.spec
        out: dict[str, Any] = {"target": s.target, "mode": s.mode, "size": s.size, "seed": s.seed,
                               "corpus": s.corpus,
                               "settings": {k: getattr(s.settings, k) for k in self.settings_keys}}
        if s.vocab_size:
            out["vocab_size"] = s.vocab_size
        if s.tokenizer_corpora:
            out["tokenizer_corpora"] = list(s.tokenizer_corpora)
        for key in ("data_chars", "data_tokens", "token_budget"):
            if getattr(s, key) is not None:
                out[key] = getattr(s, key)
        if self.init_from_run is not None:
            out["init_from_run"] = self.init_from_run
        if self.init_from_checkpoint is not None:
            out["init_from_checkpoint"] = self.init_from_checkpoint
        if s.checkpoint_tokens_per_param:
            out["checkpoint_tokens_per_param"] = list(s.checkpoint_tokens_per_param)
        return out

    @property
    def run_id(self) -> str:
        return f"{self.label}-{identity_hash(self.identity())}"

    def sweep_group(self) -> str | None:
        """What a [sweep] point shares with its siblings, the other points of the same run (its identity less
        the swept settings), as text; None for a run that is not a sweep point."""
        if not self.sweep_keys:
            return None
        identity = self.identity()
        identity["settings"] = {k: v for k, v in identity["settings"].items() if k not in self.sweep_keys}
        return json.dumps(identity, sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        out = {"run_id": self.run_id, "label": self.label, "spec": self.spec.to_dict(), "pretrain": self.pretrain,
               "depends_on": list(self.depends_on), "init_from_run": self.init_from_run,
               "settings_keys": list(self.settings_keys)}
        if self.init_from_checkpoint is not None:
            out["init_from_checkpoint"] = self.init_from_checkpoint
        if self.sweep_keys:
            out["sweep_keys"] = list(self.sweep_keys)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StudyRun":
        run = cls(label=d["label"], spec=RunSpec.from_dict(d["spec"]), pretrain=d["pretrain"],
                  depends_on=tuple(d["depends_on"]), init_from_run=d.get("init_from_run"),
                  settings_keys=tuple(d.get("settings_keys", ())),
                  init_from_checkpoint=d.get("init_from_checkpoint"), sweep_keys=tuple(d.get("sweep_keys", ())))
        if "run_id" in d and d["run_id"] != run.run_id:
            raise SpecError(f"run {d['run_id']}: its spec gives the id {run.run_id}; the file was changed")
        return run


if __name__ == "__main__":  # python -m effdata.spec: the ladders as Markdown tables
    print(ladder_table())
    print()
    print(ladder_table(GPU_LADDER))
