"""Studies: a declarative TOML file in jobs/ -> a typed `Study` -> its runs (`StudyRun`) and their dependencies.

A study file looks like this (every key is checked; an unknown key or a wrong type is an error):

    name = "quick"                 # also the default output directory runs/<name>
    target = "python"              # the target corpus (held-out valid/test splits are fixed)
    sizes = ["n25k", "n100k"]     # names from effdata.model's ladders
    seeds = [0]
    vocab_size = 4096              # optional: the shared tokenizer's vocabulary
    tokenizer_corpora = ["python", "text", "code"]   # optional: what the tokenizer is trained on
    device = "cuda"                # optional: "auto" (default: CUDA when present), "cpu" or "cuda"

    [scratch]                      # from-scratch runs on nested target fractions
    data_chars = [1e5, 3e5, 1e6]   # or data_tokens = [...]; [] none: a fine-tune-only study
    max_steps = 20000              # optional: lr_scale / max_steps for these runs alone (FINETUNE_TRAIN_KEYS too)

    [finetune]                     # fine-tunes of each pretrained checkpoint
    data_chars = [1e5, 3e5]
    sizes = ["n100k"]              # optional: fine-tune (and pretrain) these sizes only (default: every size;
                                   #   [] none: a from-scratch-only study)

    [extra_seeds]                  # optional: more seeds for part of the grid (to measure the noise)
    seeds = [1, 2]                 # seeds beyond `seeds`, for these data sizes only:
    scratch_data_chars = [1e5]     # from-scratch sizes (in [scratch]'s unit; may be empty)
    finetune_data_chars = [1e5]    # fine-tuning sizes; each extra seed pretrains its own model for them
    pretraining = "own"            # optional: "shared" fine-tunes the study's own pretraining runs (the first
                                   # seed's) with the extra seeds instead: a fine-tune's own seed noise alone

    [pretrain]
    corpora = ["text"]             # used when --pretrain is not given
    token_budget = 2_000_000       # or a table: token_budget = { n20k = 1e6, n60k = 3e6 }
    # or a budget that grows with N: tokens_per_param = 100, min_tokens = 1e6, max_tokens = 5e7
    schedule = "wsd"               # optional: [train] schedule / decay_frac / warmup_frac / batch_size for pretraining only
    lr_scale = { w50k = 1, w100k = 2 }   # optional: [train] lr_scale for pretraining only, one value or one per size
    checkpoint_tokens_per_param = [10, 30]   # optional (wsd): also fine-tune the model a run of c·N tokens
                                   # ends with, branched off mid-run; pretraining name "text@10tpp"
    checkpoint_tokens = [5_016_960]   # optional (wsd): the same at a token count for every size, named
                                   # by its tokens per parameter at each size ("text@22.4099tpp" at w200k)
    # or, instead of every key above but corpora: fine-tune the pretraining runs of other study files
    # studies = ["cpu-a.toml", "cpu-b.toml"]   # paths from this file's folder; each size and seed from the one
                                   # file that pretrains it (their final models; their mid-run checkpoints are not fine-tuned)

    [train]                        # any field of effdata.spec.TrainSettings
    batch_size = 16

    [sweep]                        # optional: scratch and fine-tune runs for each value (each combination)
    lr_scale = [0.5, 1, 2, 4, 8]   # of these TrainSettings fields; the value is in the run's label (-lr2)
"""
from __future__ import annotations

import dataclasses
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effdata.fmt import short_number
from effdata.spec import (RunSpec, SpecError, StudyRun, TrainSettings, checkpoint_name, checkpoint_tag, get_shape,
                          pretrain_name)
from effdata.training.schedule import schedule_for


class StudyError(ValueError):
    """A study file or a study request that cannot be run; the message says what to fix."""


# Where a study's runs execute. Not part of a run's identity: the same run on another device is the
# same run (same spec, same id), so a study may move between machines and keep its finished runs.
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class DataSizes:
    """Target training-set sizes: exactly one of the two lists is given."""

    data_chars: tuple[int, ...] = ()
    data_tokens: tuple[int, ...] = ()

    @property
    def unit(self) -> str:
        return "chars" if self.data_chars else "tokens"

    @property
    def values(self) -> tuple[int, ...]:
        return self.data_chars or self.data_tokens


@dataclass(frozen=True)
class ExtraSeeds:
    """More seeds for part of the grid: `seeds` (none of the study's own) for the from-scratch sizes
    `scratch` and the fine-tuning sizes `finetune` (each a subset of the study's sizes). A fine-tune of
    an extra seed starts from a pretraining run of that seed (`pretraining` "own"), so its noise includes the
    pretraining's; with "shared" it starts from the study's own pretraining run (of its first seed), so the
    spread of a point's fine-tunes is their own seed's alone (data order and dropout: METHOD §4)."""

    seeds: tuple[int, ...] = ()
    scratch: tuple[int, ...] = ()
    finetune: tuple[int, ...] = ()
    pretraining: str = "own"       # EXTRA_SEED_PRETRAININGS


EXTRA_SEED_PRETRAININGS = ("own", "shared")


@dataclass(frozen=True)
class PretrainSettings:
    """How long each size pretrains: a fixed `token_budget` (one for all sizes, or one per size), or
    `tokens_per_param` × N, clamped to [min_tokens, max_tokens] (docs/METHOD.md §5: with one budget for
    every size the bigger models are the less pretrained ones)."""

    corpora: tuple[str, ...] = ("text",)
    token_budget: int | dict[str, int] | None = 1_000_000
    tokens_per_param: float | None = None
    min_tokens: int | None = None
    max_tokens: int | None = None
    checkpoint_tokens_per_param: tuple[float, ...] = ()   # mid-run checkpoints (spec.RunSpec), fine-tuned too
    checkpoint_tokens: tuple[int, ...] = ()               # the same at one token count for every size
    train: dict[str, Any] = field(default_factory=dict)    # PRETRAIN_TRAIN_KEYS: [train] for pretraining only
    lr_scale_by_size: dict[str, float] = field(default_factory=dict)   # lr_scale = { w7k = 1.0, w100k = 2.0 }

    def checkpoints_for(self, size: str) -> tuple[float, ...]:
        """A size's mid-run checkpoints in tokens per parameter: `checkpoint_tokens_per_param`, and each of
        `checkpoint_tokens` over its N (the same tokens, since round(t / N · N) = t; one that equals a value of
        the first, as 10 M tokens at 1 M parameters would, is one checkpoint)."""
        n = get_shape(size).n_params
        return tuple(sorted({*self.checkpoint_tokens_per_param, *(t / n for t in self.checkpoint_tokens)}))

    def train_for(self, size: str) -> dict[str, Any]:
        """The [train] settings `size`'s pretraining sets: `train`, with its own lr_scale where one is given
        per size (the same run, the same id, as a study giving that lr_scale to every size)."""
        if not self.lr_scale_by_size:
            return self.train
        if size not in self.lr_scale_by_size:
            raise StudyError(f"[pretrain] lr_scale has no entry for size {size!r}")
        return {**self.train, "lr_scale": self.lr_scale_by_size[size]}

    def budget_for(self, size: str) -> int:
        if self.tokens_per_param is not None:
            budget = round(self.tokens_per_param * get_shape(size).n_params)
            return min(max(budget, self.min_tokens or 1), self.max_tokens or budget)
        if isinstance(self.token_budget, int):
            return self.token_budget
        if size not in self.token_budget:
            raise StudyError(f"[pretrain] token_budget has no entry for size {size!r}")
        return self.token_budget[size]


@dataclass(frozen=True)
class Study:
    name: str
    sizes: tuple[str, ...]
    scratch: DataSizes
    finetune: DataSizes
    pretrain: PretrainSettings = PretrainSettings()
    target: str = "python"
    seeds: tuple[int, ...] = (0,)
    vocab_size: int | None = None
    tokenizer_corpora: tuple[str, ...] | None = None   # None: effdata.data.tokenizer's balanced default
    train: TrainSettings = field(default_factory=TrainSettings)
    train_keys: tuple[str, ...] = ()    # the [train] keys the file sets (they name the runs: spec.StudyRun)
    device: str = "auto"                # where runs execute (DEVICES); `--device` overrides it
    sweep: tuple[tuple[str, tuple[Any, ...]], ...] = ()   # [sweep]: (TrainSettings key, its values), in file order
    finetune_sizes: tuple[str, ...] | None = None   # [finetune] sizes: the sizes pretrained and fine-tuned
    finetune_train: dict[str, Any] = field(default_factory=dict)   # FINETUNE_TRAIN_KEYS: [train] for fine-tunes only
    scratch_train: dict[str, Any] = field(default_factory=dict)    # SCRATCH_TRAIN_KEYS: [train] for scratch runs only
    extra_seeds: ExtraSeeds = ExtraSeeds()
    pretrain_sources: tuple["Study", ...] = ()   # [pretrain] studies: whose pretraining runs this one fine-tunes

    def train_given(self) -> dict[str, Any]:
        """The [train] settings as the file gives them (validated and typed)."""
        return {key: getattr(self.train, key) for key in self.train_keys}

    def sweep_points(self) -> list[dict[str, Any]]:
        """Every combination of the [sweep] values ([{}] without a sweep): a scratch or fine-tune run each."""
        keys = [key for key, _ in self.sweep]
        return [dict(zip(keys, values)) for values in itertools.product(*(values for _, values in self.sweep))]

    @property
    def pretrained_sizes(self) -> tuple[str, ...]:
        return self.finetune_sizes if self.finetune_sizes is not None else self.sizes

    def identity(self) -> dict[str, Any]:
        """What must not change between two invocations on one output directory.

        Sizes, fractions, seeds and pretraining corpora may grow (runs are added); the target,
        tokenizer and training settings define what every existing run means.
        """
        data: dict[str, Any] = {}
        if self.vocab_size:
            data["vocab_size"] = self.vocab_size
        if self.tokenizer_corpora:
            data["tokenizer_corpora"] = list(self.tokenizer_corpora)
        return {"name": self.name, "target": self.target, "data": data, "train": self.train_given()}


# ----------------------------------------------------------------------------------------------
# Reading and checking a study file

def _number(value: Any, where: str) -> int:
    """TOML has no 1e5 integers: accept floats that are whole numbers (1e5) as sizes."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StudyError(f"{where}: expected a number, got {value!r}")
    if float(value) != int(value) or value <= 0:
        raise StudyError(f"{where}: expected a positive whole number, got {value!r}")
    return int(value)


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise StudyError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise StudyError(f"{where}: expected a non-empty list of strings, got {value!r}")
    return tuple(value)


def _data_sizes(table: Any, where: str, more_keys: frozenset[str] = frozenset(),
                may_be_empty: bool = False) -> DataSizes:
    if not isinstance(table, dict):
        raise StudyError(f"[{where}] must be a table")
    _check_keys(table, {"data_chars", "data_tokens", *more_keys}, f"[{where}]")
    if ("data_chars" in table) == ("data_tokens" in table):
        raise StudyError(f"[{where}] needs exactly one of data_chars or data_tokens")
    key = "data_chars" if "data_chars" in table else "data_tokens"
    values = table[key]
    if not isinstance(values, list) or not (values or may_be_empty):
        raise StudyError(f"[{where}] {key}: expected a non-empty list of sizes")
    sizes = tuple(sorted({_number(v, f"[{where}] {key}") for v in values}))
    return DataSizes(**{key: sizes})


# [train] keys that [pretrain] may set for the pretraining runs alone: mid-run checkpoints need the wsd
# schedule, which an early-stopped from-scratch run or fine-tune should not be forced to use; a GPU study
# pretrains on larger batches than its small-data runs can use (jobs/gpu-h200.toml: 16 sequences for the
# runs on 1e4 characters, whose 3,300 tokens are one batch of 32; 128 for pretraining). lr_scale: a study never
# sweeps its pretraining, so the pretraining LR is checked by studies that differ in this key alone
# (jobs/lr-pretrain-*.toml; their from-scratch runs keep the reference study's ids). warmup_max: a pretraining's
# warm-up is warmup_frac of its shortest checkpoint's steps, or of its own without checkpoints (368 steps for v4's
# w200k on 15 M tokens against the 16 its checkpoints gave it: analysis/cpu-w200k-tokens varied both), so a study
# that compares runs with and without checkpoints holds the warm-up fixed with a cap both reach.
PRETRAIN_TRAIN_KEYS = ("schedule", "decay_frac", "warmup_frac", "warmup_max", "batch_size", "lr_scale")
PRETRAIN_KEYS = {"corpora", "studies", "token_budget", "tokens_per_param", "min_tokens", "max_tokens",
                 "checkpoint_tokens_per_param", "checkpoint_tokens", *PRETRAIN_TRAIN_KEYS}


def _pretrain(table: Any) -> PretrainSettings:
    if not isinstance(table, dict):
        raise StudyError("[pretrain] must be a table")
    _check_keys(table, PRETRAIN_KEYS, "[pretrain]")
    corpora = _string_list(table.get("corpora", ["text"]), "[pretrain] corpora")
    extra = {"checkpoint_tokens_per_param": _checkpoints(table.get("checkpoint_tokens_per_param", []),
                                                         "checkpoint_tokens_per_param"),
             "checkpoint_tokens": tuple(_number(v, "[pretrain] checkpoint_tokens")
                                        for v in _checkpoints(table.get("checkpoint_tokens", []), "checkpoint_tokens")),
             "train": {key: table[key] for key in PRETRAIN_TRAIN_KEYS if key in table}}
    if isinstance(table.get("lr_scale"), dict):
        extra["lr_scale_by_size"] = _lr_scale_by_size(extra["train"].pop("lr_scale"))
    if "tokens_per_param" in table:
        return dataclasses.replace(_pretrain_per_param(table, corpora), **extra)
    for key in ("min_tokens", "max_tokens"):
        if key in table:
            raise StudyError(f"[pretrain] {key} goes with tokens_per_param")
    budget = table.get("token_budget", PretrainSettings.token_budget)
    if isinstance(budget, dict):
        budget = {str(k): _number(v, f"[pretrain] token_budget.{k}") for k, v in budget.items()}
    else:
        budget = _number(budget, "[pretrain] token_budget")
    return PretrainSettings(corpora=corpora, token_budget=budget, **extra)


def _lr_scale_by_size(table: dict) -> dict[str, float]:
    """[pretrain] lr_scale given per size: each a positive number (the best multiple of the rule differs by size,
    and by warm-up: analysis/cpu-fixed-tokens/four-layer/NOTES.md; a study with each size at its best gives each its
    own). Sizes the study does not pretrain may be listed, as in token_budget's table."""
    out = {}
    for size, value in table.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise StudyError(f"[pretrain] lr_scale.{size}: expected a positive number, got {value!r}")
        out[str(size)] = float(value)
    return out


def _checkpoints(values: Any, key: str) -> tuple[float, ...]:
    """[pretrain] checkpoint_tokens_per_param or checkpoint_tokens as increasing floats (the rest is checked per
    run: RunSpec)."""
    where = f"[pretrain] {key}"
    if not isinstance(values, list) or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0
                                           for v in values):
        raise StudyError(f"{where}: expected a list of positive numbers, got {values!r}")
    if len(set(values)) != len(values):
        raise StudyError(f"{where}: a value is repeated in {values!r}")
    return tuple(sorted(float(v) for v in values))


def _sweep(table: Any, train: dict) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """[sweep]: TrainSettings keys, each with a non-empty list of values, every value checked by building the
    settings a run would use; a key may not also be set in [train]."""
    if not isinstance(table, dict):
        raise StudyError("[sweep] must be a table")
    known = {f.name for f in dataclasses.fields(TrainSettings)}
    _check_keys(table, known, "[sweep] (the keys are [train] settings)")
    out = []
    for key, values in table.items():
        if key in train:
            raise StudyError(f"[sweep] {key} is also set in [train]: set it in one of them")
        if not isinstance(values, list) or not values:
            raise StudyError(f"[sweep] {key}: expected a non-empty list of values, got {values!r}")
        typed = []
        for value in values:
            try:
                typed.append(getattr(TrainSettings.from_dict({**train, key: value}), key))
            except SpecError as exc:
                raise StudyError(f"[sweep] {exc}") from None
        if len(set(typed)) != len(typed):
            raise StudyError(f"[sweep] {key}: a value is repeated in {values!r}")
        out.append((key, tuple(typed)))
    return tuple(out)


def _pretrain_per_param(table: dict, corpora: tuple[str, ...]) -> PretrainSettings:
    if "token_budget" in table:
        raise StudyError("[pretrain] give token_budget or tokens_per_param, not both")
    per_param = table["tokens_per_param"]
    if isinstance(per_param, bool) or not isinstance(per_param, (int, float)) or not per_param > 0:
        raise StudyError(f"[pretrain] tokens_per_param: expected a positive number, got {per_param!r}")
    low = _number(table["min_tokens"], "[pretrain] min_tokens") if "min_tokens" in table else None
    high = _number(table["max_tokens"], "[pretrain] max_tokens") if "max_tokens" in table else None
    if low is not None and high is not None and low > high:
        raise StudyError(f"[pretrain] min_tokens ({low:,}) is above max_tokens ({high:,})")
    return PretrainSettings(corpora=corpora, token_budget=None, tokens_per_param=float(per_param),
                            min_tokens=low, max_tokens=high)


def _seed_list(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           for s in value):
        raise StudyError(f"{where} must be a non-empty list of integers, got {value!r}")
    return tuple(value)


def _extra_seeds(table: Any, seeds: tuple[int, ...], scratch: DataSizes, finetune: DataSizes) -> ExtraSeeds:
    """[extra_seeds]: new seeds, and which of the study's data sizes get them (in each section's unit)."""
    if not isinstance(table, dict):
        raise StudyError("[extra_seeds] must be a table")
    keys = {f"{section}_data_{unit}" for section in ("scratch", "finetune") for unit in ("chars", "tokens")}
    _check_keys(table, keys | {"seeds", "pretraining"}, "[extra_seeds]")
    extra = _seed_list(table.get("seeds"), "[extra_seeds] seeds")
    pretraining = table.get("pretraining", "own")
    if pretraining not in EXTRA_SEED_PRETRAININGS:
        raise StudyError(f"[extra_seeds] pretraining must be one of {', '.join(map(repr, EXTRA_SEED_PRETRAININGS))}, "
                         f"got {pretraining!r}")
    if set(extra) & set(seeds):
        raise StudyError(f"[extra_seeds] seeds {sorted(set(extra) & set(seeds))} are already in `seeds`")
    chosen = {}
    for section, sizes in (("scratch", scratch), ("finetune", finetune)):
        key = f"{section}_data_{sizes.unit}"
        other = f"{section}_data_{'tokens' if sizes.unit == 'chars' else 'chars'}"
        if other in table:
            raise StudyError(f"[extra_seeds] {other}: [{section}] gives data_{sizes.unit}; use {key}")
        values = table.get(key, [])
        if not isinstance(values, list):
            raise StudyError(f"[extra_seeds] {key}: expected a list of sizes")
        chosen[section] = tuple(sorted({_number(v, f"[extra_seeds] {key}") for v in values}))
        missing = sorted(set(chosen[section]) - set(sizes.values))
        if missing:
            raise StudyError(f"[extra_seeds] {key}: {missing} not among [{section}]'s sizes {list(sizes.values)}")
    if not chosen["scratch"] and not chosen["finetune"]:
        raise StudyError("[extra_seeds] names no data size: give scratch_data_* or finetune_data_*")
    if pretraining == "shared" and not chosen["finetune"]:
        raise StudyError('[extra_seeds] pretraining = "shared" is about fine-tunes: give finetune_data_*')
    return ExtraSeeds(seeds=extra, scratch=chosen["scratch"], finetune=chosen["finetune"], pretraining=pretraining)


def _train_settings(table: Any) -> TrainSettings:
    """[train] checked once, by building the TrainSettings every run will use."""
    if not isinstance(table, dict):
        raise StudyError("[train] must be a table")
    try:
        return TrainSettings.from_dict(table)
    except SpecError as exc:
        raise StudyError(f"[train] {exc}") from None


def load_study(path: Path | str) -> Study:
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"study file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{path}: not valid TOML: {exc}") from None
    return study_from_dict(raw, where=str(path), base=path.parent)


STUDY_KEYS = {"name", "target", "sizes", "seeds", "vocab_size", "tokenizer_corpora", "scratch", "finetune",
              "pretrain", "train", "description", "device", "sweep", "extra_seeds"}


def study_from_dict(raw: dict[str, Any], where: str = "study", base: Path | None = None) -> Study:
    """A study from a parsed file; `base` is the folder [pretrain] studies' paths start from (default: the
    current directory)."""
    try:
        study = _study(raw, where)
        if isinstance(raw.get("pretrain"), dict) and "studies" in raw["pretrain"]:
            study = dataclasses.replace(study, **_sourced_pretraining(raw["pretrain"], study, base or Path.cwd()))
        _check_sizes(study)
        _check_pretraining(study)
        _check_stop_by_forecast(study)
    except StudyError as exc:
        if str(exc).startswith(where):
            raise
        raise StudyError(f"{where}: {exc}") from None
    return study


def _study(raw: dict[str, Any], where: str) -> Study:
    _check_keys(raw, STUDY_KEYS, where)
    for required in ("name", "sizes", "scratch", "finetune"):
        if required not in raw:
            raise StudyError(f"missing required key {required!r}")
    if not isinstance(raw["name"], str) or not raw["name"]:
        raise StudyError("name must be a non-empty string")
    seeds = _seed_list(raw.get("seeds", [0]), "seeds")
    # [scratch] data_* = [] is a fine-tune-only study, read on another study's from-scratch curves
    # (python -m effdata.analyze T --scratch-from S): jobs/cpu-fixed-tokens-*-text-seed1.toml.
    scratch = _data_sizes(raw["scratch"], "scratch", frozenset(SCRATCH_TRAIN_KEYS), may_be_empty=True)
    finetune = _data_sizes(raw["finetune"], "finetune", frozenset({"sizes", *FINETUNE_TRAIN_KEYS}))
    target = raw.get("target", "python")
    if not isinstance(target, str):
        raise StudyError(f"target must be a corpus name, got {target!r}")
    train = raw.get("train", {})
    device = raw.get("device", "auto")
    if device not in DEVICES:
        raise StudyError(f"device must be one of {', '.join(repr(d) for d in DEVICES)}, got {device!r}")
    settings = _train_settings(train)
    sizes = _string_list(raw["sizes"], "sizes")
    finetune_sizes = _finetune_sizes(raw["finetune"], sizes)
    if not scratch.values and finetune_sizes == ():
        raise StudyError("nothing to run: [scratch] has no data sizes and [finetune] sizes = []")
    return Study(
        name=raw["name"],
        target=target,
        sizes=sizes,
        seeds=seeds,
        vocab_size=_number(raw["vocab_size"], "vocab_size") if raw.get("vocab_size") is not None else None,
        tokenizer_corpora=(_string_list(raw["tokenizer_corpora"], "tokenizer_corpora")
                           if "tokenizer_corpora" in raw else None),
        scratch=scratch,
        finetune=finetune,
        pretrain=_pretrain(raw.get("pretrain", {})),
        train=settings,
        train_keys=tuple(train),
        device=device,
        sweep=_sweep(raw.get("sweep", {}), train),
        finetune_sizes=finetune_sizes,
        finetune_train=_mode_train(raw["finetune"], "finetune", FINETUNE_TRAIN_KEYS, train, raw.get("sweep", {})),
        scratch_train=_mode_train(raw["scratch"], "scratch", SCRATCH_TRAIN_KEYS, train, raw.get("sweep", {})),
        extra_seeds=(_extra_seeds(raw["extra_seeds"], seeds, scratch, finetune) if "extra_seeds" in raw
                     else ExtraSeeds()),
    )


# [train] keys that [finetune] or [scratch] may set for their runs alone; a study that sets one keeps the ids of
# the other modes' runs and of its pretraining. lr_scale: fine-tunes want a lower LR than the from-scratch rule
# gives them (analysis/lr/search: ×0.125 beat ×1 by 1.4–4.0 % at w100k; jobs/cpu-ft-lr*.toml). max_steps: a
# length search's compute limit (its branches do not depend on it, METHOD §5b), which larger data sizes need
# raised (v4's w7k on 3e5 characters kept its best at 2,335 of 3,000 steps; jobs/cpu-large-d.toml). [scratch]
# lr_scale: the tuned rule's LR is an extrapolation at 1e6 characters and too high at w100k on 3e5
# (analysis/lr/search); jobs/cpu-scratch-lr-*.toml check what that does to the from-scratch curves of large N.
# [finetune] min_steps: a length search's shortest length (and, through it, its warm-up), which holds half the
# fixed-token studies' fine-tunes on 1e4 characters (3,183 tokens; 8 steps are 5 epochs; analysis/cpu-fixed-tokens/
# min-steps checks what it does to β).
FINETUNE_TRAIN_KEYS = ("lr_scale", "max_steps", "min_steps")
SCRATCH_TRAIN_KEYS = ("max_steps", "lr_scale")


def _mode_train(table: dict, section: str, allowed: tuple[str, ...], train: dict, sweep: Any) -> dict[str, Any]:
    """[section]'s own [train] keys (`allowed`), each checked by building the settings its runs would use."""
    given = {key: table[key] for key in allowed if key in table}
    clash = sorted(set(given) & set(sweep if isinstance(sweep, dict) else {}))
    if clash:
        raise StudyError(f"[{section}] {clash[0]} is also swept in [sweep]: set it in one of them")
    try:
        settings = TrainSettings.from_dict({**train, **given})
    except SpecError as exc:
        raise StudyError(f"[{section}] {exc}") from None
    return {key: getattr(settings, key) for key in given}


def _finetune_sizes(table: dict, sizes: tuple[str, ...]) -> tuple[str, ...] | None:
    if "sizes" not in table:
        return None
    if table["sizes"] == []:
        return ()      # a from-scratch-only study (jobs/cpu-scratch-seeds.toml): no pretraining, no fine-tune
    chosen = _string_list(table["sizes"], "[finetune] sizes")
    unknown = [size for size in chosen if size not in sizes]
    if unknown:
        raise StudyError(f"[finetune] sizes: {', '.join(unknown)} not among the study's sizes ({', '.join(sizes)})")
    return chosen


def _check_sizes(study: Study) -> None:
    for size in study.sizes:
        try:
            get_shape(size)
        except SpecError as exc:
            raise StudyError(str(exc)) from None
        study.pretrain.budget_for(size)


def _check_stop_by_forecast(study: Study) -> None:
    """stop_by_forecast stops a run that cannot beat a sibling: only a [sweep] gives a run siblings."""
    if study.train.stop_by_forecast and not study.sweep:
        raise StudyError("[train] stop_by_forecast needs a [sweep]: it stops a sweep point forecast to lose to "
                         "another point of the same run, and this study has none")
    if any(key == "stop_by_forecast" for key, _ in study.sweep):
        raise StudyError("[sweep] stop_by_forecast cannot be swept: set it in [train]")


def _check_pretraining(study: Study) -> None:
    """Every size's pretraining run can be built and scheduled: the [pretrain] settings and mid-run checkpoints
    are valid for it (a SpecError of the run becomes a StudyError naming the [pretrain] key), or each size and
    seed a study fine-tunes is pretrained by exactly one of its [pretrain] studies."""
    pre = study.pretrain
    if study.pretrain_sources:
        for size, seed, corpus in itertools.product(study.pretrained_sizes, _pretrained_seeds(study), pre.corpora):
            _pretraining(study, size, seed, corpus)
        return
    if pre.checkpoint_tokens_per_param or pre.checkpoint_tokens:
        schedule = pre.train.get("schedule", study.train.schedule)
        key = "checkpoint_tokens_per_param" if pre.checkpoint_tokens_per_param else "checkpoint_tokens"
        if schedule != "wsd":
            raise StudyError(f'[pretrain] {key} needs schedule = "wsd" (in [pretrain] for the '
                             f"pretraining runs, or in [train] for every run), got {schedule!r}: a checkpoint taken "
                             "mid-way through a cosine decay is not what a run of that length would give")
    for size in study.pretrained_sizes:
        late = [t for t in pre.checkpoint_tokens if t >= pre.budget_for(size)]
        if late:
            raise StudyError(f"[pretrain] checkpoint_tokens {late[0]:,} at {size} is not below its budget of "
                             f"{pre.budget_for(size):,}: the run's own checkpoint is that model")
        try:
            run = _pretrain_run(study, size, study.seeds[0], pre.corpora[0])
            schedule_for(run.spec, 0, run.spec.shape.n_params)
        except SpecError as exc:
            raise StudyError(f"[pretrain] {exc}") from None


# [pretrain] studies: a study that fine-tunes other study files' pretraining runs, unchanged (the same runs, the
# same ids, so `--reuse` copies them in finished). Why: a question about the fine-tunes alone (another D_F) of
# pretrainings that several files made, each with its own mid-run checkpoints and so its own ids
# (jobs/cpu-fixed-tokens-ladder-lr-double-1e4.toml: seven files' pretrainings at ×2 the LR, fine-tuned on 1e4).
SOURCED_PRETRAIN_KEYS = {"studies", "corpora"}


def _sourced_pretraining(table: dict, study: Study, base: Path) -> dict[str, Any]:
    """The Study fields [pretrain] studies sets: the source studies, and the corpora (given, else theirs)."""
    other = sorted(set(table) - SOURCED_PRETRAIN_KEYS)
    if other:
        raise StudyError(f"[pretrain] studies takes the pretraining runs from those files: {other[0]} is theirs "
                         f"to set (allowed beside studies: corpora)")
    sources = tuple(_source_study(base / path, study) for path in _string_list(table["studies"], "[pretrain] studies"))
    corpora = (_string_list(table["corpora"], "[pretrain] corpora") if "corpora" in table
               else tuple(dict.fromkeys(c for source in sources for c in source.pretrain.corpora)))
    return {"pretrain_sources": sources, "pretrain": PretrainSettings(corpora=corpora)}


def _source_study(path: Path, study: Study) -> Study:
    """A [pretrain] studies file: it pretrains its own models, on this study's target and tokenizer (a
    checkpoint reads the tokens it was trained on)."""
    source = load_study(path)
    if source.pretrain_sources:
        raise StudyError(f"[pretrain] studies: {path} takes its pretraining from other files too; name those")
    for key in ("target", "vocab_size", "tokenizer_corpora"):
        if getattr(source, key) != getattr(study, key):
            raise StudyError(f"[pretrain] studies: {path} has {key} {getattr(source, key)!r}, this study "
                             f"{getattr(study, key)!r}: its checkpoints read other tokens")
    return source


def _pretrained_seeds(study: Study) -> tuple[int, ...]:
    """The seeds a study pretrains models at: its own, and extra seeds with their own pretraining."""
    extra = study.extra_seeds
    own_extra = extra.seeds if extra.finetune and extra.pretraining == "own" else ()
    return (*study.seeds, *own_extra)


def _pretraining(study: Study, size: str, seed: int, corpus: str) -> StudyRun:
    """The pretraining run `size`'s fine-tunes at `seed` start from: the study's own, or the run of the one
    [pretrain] studies file that pretrains that size at that seed (the same run: the same id)."""
    if not study.pretrain_sources:
        return _pretrain_run(study, size, seed, corpus)
    found: dict[str, tuple[str, StudyRun]] = {}
    for source in study.pretrain_sources:
        if size in source.pretrained_sizes and seed in _pretrained_seeds(source):
            run = _pretrain_run(source, size, seed, corpus)
            found.setdefault(run.run_id, (source.name, run))
    if not found:
        names = ", ".join(source.name for source in study.pretrain_sources)
        raise StudyError(f"[pretrain] studies: none of {names} pretrains {size} at seed {seed}")
    if len(found) > 1:
        names = " and ".join(name for name, _ in found.values())
        raise StudyError(f"[pretrain] studies: {names} pretrain {size} at seed {seed} differently: keep one of them")
    return next(iter(found.values()))[1]


# ----------------------------------------------------------------------------------------------
# A study's runs

def study_runs(study: Study, pretrain_corpora: tuple[str, ...] | list[str] | None = None) -> list[StudyRun]:
    """Every run of the study for the given pretraining corpora, dependencies before dependants.

    From-scratch runs do not depend on the pretraining choice, so two invocations with different
    --pretrain share them. Fine-tunes start from each pretraining run's own checkpoint and from each of
    its mid-run checkpoints; scratch runs and fine-tunes are repeated for every [sweep] point. An extra seed
    whose pretraining is "shared" fine-tunes the first seed's pretraining runs and pretrains nothing. With
    [pretrain] studies the pretraining runs are those files' and only their final models are fine-tuned.
    """
    pretrains = tuple(pretrain_corpora) if pretrain_corpora else study.pretrain.corpora
    points = study.sweep_points()
    extra = study.extra_seeds
    grids = [(seed, study.scratch.values, study.finetune.values) for seed in study.seeds]
    grids += [(seed, extra.scratch, extra.finetune) for seed in extra.seeds]
    shared = extra.pretraining == "shared"
    runs: list[StudyRun] = []
    for seed, scratch, finetune in grids:
        own = not shared or seed in study.seeds
        for size in study.sizes:
            runs += [_scratch_run(study, size, seed, d, point) for d in scratch for point in points]
            if not finetune or size not in study.pretrained_sizes:
                continue
            for corpus in pretrains:
                pre = _pretraining(study, size, seed if own else study.seeds[0], corpus)
                runs += [pre] if own else []
                mid_run = () if study.pretrain_sources else pre.spec.checkpoint_tokens_per_param
                runs += [_finetune_run(study, pre, tpp, d, point, seed)
                         for tpp in (None, *mid_run)
                         for d in finetune for point in points]
    return runs


def _spec(study: Study, settings: TrainSettings, **fields: Any) -> RunSpec:
    return RunSpec(target=study.target, vocab_size=study.vocab_size, tokenizer_corpora=study.tokenizer_corpora,
                   settings=settings, **fields)


def _swept(study: Study, point: dict[str, Any]) -> tuple[TrainSettings, tuple[str, ...]]:
    """The [train] settings at a [sweep] point, and the keys that name the run (the file's [train] keys and
    the swept ones: a study without a sweep keeps its run ids)."""
    return dataclasses.replace(study.train, **point), (*study.train_keys, *point)


def _sweep_label(point: dict[str, Any]) -> str:
    """The part of a run's label a [sweep] point adds: {"lr_scale": 2.0} -> '-lr2'."""
    return "".join(f"-{SWEEP_TAGS.get(key, key.replace('_', ''))}{value:g}" if isinstance(value, float)
                   else f"-{SWEEP_TAGS.get(key, key.replace('_', ''))}{value}" for key, value in point.items())


SWEEP_TAGS = {"lr_scale": "lr"}


def _scratch_run(study: Study, size: str, seed: int, d: int, point: dict[str, Any]) -> StudyRun:
    unit = study.scratch.unit
    settings, keys = _with_mode_train(*_swept(study, point), study.scratch_train)
    spec = _spec(study, settings, mode="scratch", size=size, seed=seed, corpus=study.target, **{f"data_{unit}": d})
    return StudyRun(label=f"scratch-{size}-{short_number(d)}{unit[0]}{_sweep_label(point)}-s{seed}", spec=spec,
                    pretrain="none", settings_keys=keys, sweep_keys=tuple(point))


def _pretrain_run(study: Study, size: str, seed: int, corpus: str) -> StudyRun:
    """A pretraining run: [train] with [pretrain]'s own settings (PRETRAIN_TRAIN_KEYS), never swept."""
    pre = study.pretrain
    own = pre.train_for(size)
    settings = dataclasses.replace(study.train, **own) if own else study.train
    spec = _spec(study, settings, mode="pretrain", size=size, seed=seed, corpus=corpus,
                 token_budget=pre.budget_for(size), checkpoint_tokens_per_param=pre.checkpoints_for(size))
    return StudyRun(label=f"pretrain-{_slug(corpus)}-{size}-s{seed}", spec=spec, pretrain=corpus,
                    settings_keys=tuple(dict.fromkeys((*study.train_keys, *own))))


def _finetune_run(study: Study, pre: StudyRun, tpp: float | None, d: int, point: dict[str, Any],
                  seed: int) -> StudyRun:
    """A fine-tune of `pre`'s own checkpoint (tpp None) or of its mid-run checkpoint at `tpp` tokens per
    parameter, whose pretraining is then named `<corpus>@<tpp>tpp`. Its seed is the pretraining's, except
    for an extra seed of a shared pretraining (its label then names both: `-s1-of-s0`)."""
    unit = study.finetune.unit
    s = pre.spec
    settings, keys = _with_mode_train(*_swept(study, point), study.finetune_train)
    spec = _spec(study, settings, mode="finetune", size=s.size, seed=seed, corpus=study.target,
                 **{f"data_{unit}": d})
    source = _slug(s.corpus) + ("" if tpp is None else f"@{checkpoint_tag(tpp)}")
    seeds = f"-s{seed}" if seed == s.seed else f"-s{seed}-of-s{s.seed}"
    return StudyRun(label=f"finetune-{source}-{s.size}-{short_number(d)}{unit[0]}{_sweep_label(point)}{seeds}",
                    spec=spec, pretrain=pretrain_name(s.corpus, tpp), depends_on=(pre.run_id,),
                    init_from_run=pre.run_id, init_from_checkpoint=None if tpp is None else checkpoint_name(tpp),
                    settings_keys=keys, sweep_keys=tuple(point))


def _with_mode_train(settings: TrainSettings, keys: tuple[str, ...],
                     own: dict[str, Any]) -> tuple[TrainSettings, tuple[str, ...]]:
    """A mode's own [train] keys ([scratch] or [finetune]) over the study's: they enter its runs' ids alone."""
    if not own:
        return settings, keys
    return dataclasses.replace(settings, **own), tuple(dict.fromkeys((*keys, *own)))


def _slug(corpus: str) -> str:
    return "".join(c if c.isalnum() or c in "+-." else "_" for c in corpus)
