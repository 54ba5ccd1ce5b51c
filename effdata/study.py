"""Studies: a declarative TOML file in jobs/ -> a typed `Study` -> the planned runs and their dependencies.

A study file looks like this (every key is checked; an unknown key or a wrong type is an error):

    name = "quick"                 # also the default output directory runs/<name>
    target = "python"              # the target corpus (held-out valid/test splits are fixed)
    sizes = ["n25k", "n100k"]     # names from effdata.model's ladders
    seeds = [0]
    vocab_size = 4096              # optional: the shared tokenizer's vocabulary
    tokenizer_corpora = ["python", "text", "code"]   # optional: what the tokenizer is trained on

    [scratch]                      # from-scratch runs on nested target fractions
    data_chars = [1e5, 3e5, 1e6]   # or data_tokens = [...]

    [finetune]                     # fine-tunes of each pretrained checkpoint
    data_chars = [1e5, 3e5]

    [pretrain]
    corpora = ["text"]             # used when --pretrain is not given
    token_budget = 2_000_000       # or a table: token_budget = { n20k = 1e6, n60k = 3e6 }

    [train]                        # any field of effdata.train.TrainSettings
    batch_size = 16
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class StudyError(ValueError):
    """A study file or a study request that cannot be run; the message says what to fix."""


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
class PretrainSettings:
    corpora: tuple[str, ...] = ("text",)
    token_budget: int | dict[str, int] = 1_000_000

    def budget_for(self, size: str) -> int:
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
    tokenizer_corpora: tuple[str, ...] | None = None   # None: effdata.tokenizer's balanced default
    train: dict[str, Any] = field(default_factory=dict)

    def data_settings(self) -> dict[str, Any]:
        """Keyword arguments for effdata.tokens: which tokenizer every run of the study shares."""
        settings: dict[str, Any] = {}
        if self.vocab_size:
            settings["vocab_size"] = self.vocab_size
        if self.tokenizer_corpora:
            settings["tokenizer_corpora"] = list(self.tokenizer_corpora)
        return settings

    def identity(self) -> dict[str, Any]:
        """What must not change between two invocations on one output directory.

        Sizes, fractions, seeds and pretraining corpora may grow (runs are added); the target,
        tokenizer and training settings define what every existing run means.
        """
        return {"name": self.name, "target": self.target, "data": self.data_settings(), "train": self.train}


@dataclass(frozen=True)
class PlannedRun:
    run_id: str
    spec: dict[str, Any]          # RunSpec fields (settings as a dict), JSON-serialisable
    pretrain: str                 # "none" for from scratch
    depends_on: tuple[str, ...]   # run ids whose checkpoints this run starts from

    @property
    def mode(self) -> str:
        return self.spec["mode"]


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
    _check_keys(table, {"corpora", "token_budget"}, "[pretrain]")
    corpora = _string_list(table.get("corpora", ["text"]), "[pretrain] corpora")
    budget = table.get("token_budget", PretrainSettings.token_budget)
    if isinstance(budget, dict):
        budget = {str(k): _number(v, f"[pretrain] token_budget.{k}") for k, v in budget.items()}
    else:
        budget = _number(budget, "[pretrain] token_budget")
    return PretrainSettings(corpora=corpora, token_budget=budget)


def _train_settings(table: Any) -> dict[str, Any]:
    """Check [train] against TrainSettings' fields and their default values' types."""
    from effdata.train import TrainSettings  # noqa: PLC0415  (train imports torch: only when a study is read)

    if not isinstance(table, dict):
        raise StudyError("[train] must be a table")
    defaults = {f.name: f for f in dataclasses.fields(TrainSettings)}
    _check_keys(table, set(defaults), "[train]")
    checked = {}
    for key, value in table.items():
        default = _field_default(defaults[key])
        checked[key] = _coerce_like(value, default, f"[train] {key}")
    return checked


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _coerce_like(value: Any, default: Any, where: str) -> Any:
    if default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise StudyError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise StudyError(f"{where}: expected a whole number, got {value!r}")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise StudyError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise StudyError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(default, (tuple, list)):
        if not isinstance(value, list):
            raise StudyError(f"{where}: expected a list, got {value!r}")
        return tuple(value)
    return value


def load_study(path: Path | str) -> Study:
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"study file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{path}: not valid TOML: {exc}") from None
    return study_from_dict(raw, where=str(path))


def study_from_dict(raw: dict[str, Any], where: str = "study") -> Study:
    try:
        _check_keys(raw, {"name", "target", "sizes", "seeds", "vocab_size", "tokenizer_corpora", "scratch",
                          "finetune", "pretrain", "train", "description"}, where)
        for required in ("name", "sizes", "scratch", "finetune"):
            if required not in raw:
                raise StudyError(f"{where}: missing required key {required!r}")
        if not isinstance(raw["name"], str) or not raw["name"]:
            raise StudyError(f"{where}: name must be a non-empty string")
        seeds = raw.get("seeds", [0])
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                               for s in seeds):
            raise StudyError(f"{where}: seeds must be a non-empty list of integers, got {seeds!r}")
        vocab = raw.get("vocab_size")
        if vocab is not None:
            vocab = _number(vocab, "vocab_size")
        target = raw.get("target", "python")
        if not isinstance(target, str):
            raise StudyError(f"{where}: target must be a corpus name, got {target!r}")
        study = Study(
            name=raw["name"],
            target=target,
            sizes=_string_list(raw["sizes"], "sizes"),
            seeds=tuple(seeds),
            vocab_size=vocab,
            tokenizer_corpora=(_string_list(raw["tokenizer_corpora"], "tokenizer_corpora")
                               if "tokenizer_corpora" in raw else None),
            scratch=_data_sizes(raw["scratch"], "scratch"),
            finetune=_data_sizes(raw["finetune"], "finetune"),
            pretrain=_pretrain(raw.get("pretrain", {})),
            train=_train_settings(raw.get("train", {})),
        )
    except StudyError as exc:
        if str(exc).startswith(where):
            raise
        raise StudyError(f"{where}: {exc}") from None
    _check_sizes(study)
    return study


def _check_sizes(study: Study) -> None:
    from effdata.model import get_shape  # noqa: PLC0415

    for size in study.sizes:
        try:
            get_shape(size)
        except (KeyError, ValueError) as exc:
            raise StudyError(f"unknown model size {size!r}: {exc}") from None
        study.pretrain.budget_for(size)


# ----------------------------------------------------------------------------------------------
# Expanding a study into runs

def _short(n: int) -> str:
    """1000000 -> '1e6', 300000 -> '3e5', 123456 -> '123456': readable run ids."""
    text = f"{n:.0e}".replace("e+0", "e").replace("e+", "e")
    return text if int(float(text)) == n else str(n)


def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]


def _planned(spec: dict[str, Any], readable: str, pretrain: str, depends_on: tuple[str, ...]) -> PlannedRun:
    return PlannedRun(run_id=f"{readable}-{spec_hash(spec)}", spec=spec, pretrain=pretrain, depends_on=depends_on)


def plan_runs(study: Study, pretrain_corpora: tuple[str, ...] | list[str] | None = None) -> list[PlannedRun]:
    """Every run of the study for the given pretraining corpora, dependencies before dependants.

    From-scratch runs do not depend on the pretraining choice, so two invocations with
    different --pretrain share them.
    """
    pretrains = tuple(pretrain_corpora) if pretrain_corpora else study.pretrain.corpora
    base = {"target": study.target, **study.data_settings(), "settings": study.train}
    unit = {"scratch": study.scratch.unit, "finetune": study.finetune.unit}
    runs: list[PlannedRun] = []
    for seed in study.seeds:
        for size in study.sizes:
            for d in study.scratch.values:
                spec = {**base, "mode": "scratch", "size": size, "seed": seed, "corpus": study.target,
                        f"data_{unit['scratch']}": d}
                runs.append(_planned(spec, f"scratch-{size}-{_short(d)}{unit['scratch'][0]}-s{seed}", "none", ()))
            for corpus in pretrains:
                pre_spec = {**base, "mode": "pretrain", "size": size, "seed": seed, "corpus": corpus,
                            "token_budget": study.pretrain.budget_for(size)}
                pre = _planned(pre_spec, f"pretrain-{_slug(corpus)}-{size}-s{seed}", corpus, ())
                runs.append(pre)
                for d in study.finetune.values:
                    spec = {**base, "mode": "finetune", "size": size, "seed": seed, "corpus": study.target,
                            f"data_{unit['finetune']}": d, "init_from_run": pre.run_id}
                    runs.append(_planned(spec, f"finetune-{_slug(corpus)}-{size}-{_short(d)}{unit['finetune'][0]}"
                                         f"-s{seed}", corpus, (pre.run_id,)))
    return runs


def _slug(corpus: str) -> str:
    return "".join(c if c.isalnum() or c in "+-." else "_" for c in corpus)
