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
    data_chars = [1e5, 3e5, 1e6]   # or data_tokens = [...]

    [finetune]                     # fine-tunes of each pretrained checkpoint
    data_chars = [1e5, 3e5]

    [extra_seeds]                  # optional: more seeds for part of the grid (to measure the noise)
    seeds = [1, 2]                 # seeds beyond `seeds`, for these data sizes only:
    scratch_data_chars = [1e5]     # from-scratch sizes (in [scratch]'s unit; may be empty)
    finetune_data_chars = [1e5]    # fine-tuning sizes; each extra seed pretrains its own model for them

    [pretrain]
    corpora = ["text"]             # used when --pretrain is not given
    token_budget = 2_000_000       # or a table: token_budget = { n20k = 1e6, n60k = 3e6 }
    # or a budget that grows with N: tokens_per_param = 100, min_tokens = 1e6, max_tokens = 5e7

    [train]                        # any field of effdata.spec.TrainSettings
    batch_size = 16
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effdata.fmt import short_number
from effdata.spec import RunSpec, SpecError, StudyRun, TrainSettings, get_shape


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
    an extra seed starts from a pretraining run of that seed, so its noise includes the pretraining's."""

    seeds: tuple[int, ...] = ()
    scratch: tuple[int, ...] = ()
    finetune: tuple[int, ...] = ()


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
    extra_seeds: ExtraSeeds = ExtraSeeds()

    def train_given(self) -> dict[str, Any]:
        """The [train] settings as the file gives them (validated and typed)."""
        return {key: getattr(self.train, key) for key in self.train_keys}

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


def _data_sizes(table: Any, where: str) -> DataSizes:
    if not isinstance(table, dict):
        raise StudyError(f"[{where}] must be a table")
    _check_keys(table, {"data_chars", "data_tokens"}, f"[{where}]")
    if ("data_chars" in table) == ("data_tokens" in table):
        raise StudyError(f"[{where}] needs exactly one of data_chars or data_tokens")
    key = "data_chars" if "data_chars" in table else "data_tokens"
    values = table[key]
    if not isinstance(values, list) or not values:
        raise StudyError(f"[{where}] {key}: expected a non-empty list of sizes")
    sizes = tuple(sorted({_number(v, f"[{where}] {key}") for v in values}))
    return DataSizes(**{key: sizes})


def _pretrain(table: Any) -> PretrainSettings:
    if not isinstance(table, dict):
        raise StudyError("[pretrain] must be a table")
    _check_keys(table, {"corpora", "token_budget", "tokens_per_param", "min_tokens", "max_tokens"}, "[pretrain]")
    corpora = _string_list(table.get("corpora", ["text"]), "[pretrain] corpora")
    if "tokens_per_param" in table:
        return _pretrain_per_param(table, corpora)
    for key in ("min_tokens", "max_tokens"):
        if key in table:
            raise StudyError(f"[pretrain] {key} goes with tokens_per_param")
    budget = table.get("token_budget", PretrainSettings.token_budget)
    if isinstance(budget, dict):
        budget = {str(k): _number(v, f"[pretrain] token_budget.{k}") for k, v in budget.items()}
    else:
        budget = _number(budget, "[pretrain] token_budget")
    return PretrainSettings(corpora=corpora, token_budget=budget)


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
    _check_keys(table, keys | {"seeds"}, "[extra_seeds]")
    extra = _seed_list(table.get("seeds"), "[extra_seeds] seeds")
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
    return ExtraSeeds(seeds=extra, scratch=chosen["scratch"], finetune=chosen["finetune"])


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
    return study_from_dict(raw, where=str(path))


STUDY_KEYS = {"name", "target", "sizes", "seeds", "vocab_size", "tokenizer_corpora", "scratch", "finetune",
              "pretrain", "train", "description", "device", "extra_seeds"}


def study_from_dict(raw: dict[str, Any], where: str = "study") -> Study:
    try:
        study = _study(raw, where)
        _check_sizes(study)
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
    scratch, finetune = _data_sizes(raw["scratch"], "scratch"), _data_sizes(raw["finetune"], "finetune")
    target = raw.get("target", "python")
    if not isinstance(target, str):
        raise StudyError(f"target must be a corpus name, got {target!r}")
    train = raw.get("train", {})
    device = raw.get("device", "auto")
    if device not in DEVICES:
        raise StudyError(f"device must be one of {', '.join(repr(d) for d in DEVICES)}, got {device!r}")
    return Study(
        name=raw["name"],
        target=target,
        sizes=_string_list(raw["sizes"], "sizes"),
        seeds=seeds,
        vocab_size=_number(raw["vocab_size"], "vocab_size") if raw.get("vocab_size") is not None else None,
        tokenizer_corpora=(_string_list(raw["tokenizer_corpora"], "tokenizer_corpora")
                           if "tokenizer_corpora" in raw else None),
        scratch=scratch,
        finetune=finetune,
        pretrain=_pretrain(raw.get("pretrain", {})),
        train=_train_settings(train),
        train_keys=tuple(train) if isinstance(train, dict) else (),
        device=device,
        extra_seeds=(_extra_seeds(raw["extra_seeds"], seeds, scratch, finetune) if "extra_seeds" in raw
                     else ExtraSeeds()),
    )


def _check_sizes(study: Study) -> None:
    for size in study.sizes:
        try:
            get_shape(size)
        except SpecError as exc:
            raise StudyError(str(exc)) from None
        study.pretrain.budget_for(size)


# ----------------------------------------------------------------------------------------------
# A study's runs

def study_runs(study: Study, pretrain_corpora: tuple[str, ...] | list[str] | None = None) -> list[StudyRun]:
    """Every run of the study for the given pretraining corpora, dependencies before dependants.

    From-scratch runs do not depend on the pretraining choice, so two invocations with
    different --pretrain share them.
    """
    pretrains = tuple(pretrain_corpora) if pretrain_corpora else study.pretrain.corpora
    extra = study.extra_seeds
    grids = [(seed, study.scratch.values, study.finetune.values) for seed in study.seeds]
    grids += [(seed, extra.scratch, extra.finetune) for seed in extra.seeds]
    runs: list[StudyRun] = []
    for seed, scratch, finetune in grids:
        for size in study.sizes:
            runs += [_scratch_run(study, size, seed, d) for d in scratch]
            if not finetune:
                continue
            for corpus in pretrains:
                pre = _pretrain_run(study, size, seed, corpus)
                runs.append(pre)
                runs += [_finetune_run(study, pre, d) for d in finetune]
    return runs


def _spec(study: Study, **fields: Any) -> RunSpec:
    return RunSpec(target=study.target, vocab_size=study.vocab_size, tokenizer_corpora=study.tokenizer_corpora,
                   settings=study.train, **fields)


def _scratch_run(study: Study, size: str, seed: int, d: int) -> StudyRun:
    unit = study.scratch.unit
    spec = _spec(study, mode="scratch", size=size, seed=seed, corpus=study.target, **{f"data_{unit}": d})
    return StudyRun(label=f"scratch-{size}-{short_number(d)}{unit[0]}-s{seed}", spec=spec, pretrain="none",
                    settings_keys=study.train_keys)


def _pretrain_run(study: Study, size: str, seed: int, corpus: str) -> StudyRun:
    spec = _spec(study, mode="pretrain", size=size, seed=seed, corpus=corpus,
                 token_budget=study.pretrain.budget_for(size))
    return StudyRun(label=f"pretrain-{_slug(corpus)}-{size}-s{seed}", spec=spec, pretrain=corpus,
                    settings_keys=study.train_keys)


def _finetune_run(study: Study, pre: StudyRun, d: int) -> StudyRun:
    unit = study.finetune.unit
    s = pre.spec
    spec = _spec(study, mode="finetune", size=s.size, seed=s.seed, corpus=study.target, **{f"data_{unit}": d})
    return StudyRun(label=f"finetune-{_slug(s.corpus)}-{s.size}-{short_number(d)}{unit[0]}-s{s.seed}", spec=spec,
                    pretrain=s.corpus, depends_on=(pre.run_id,), init_from_run=pre.run_id,
                    settings_keys=study.train_keys)


def _slug(corpus: str) -> str:
    return "".join(c if c.isalnum() or c in "+-." else "_" for c in corpus)
