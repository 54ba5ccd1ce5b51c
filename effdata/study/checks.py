"""Planning checks: a study's runs against the corpora they read, before anything runs. No torch.

* A data fraction (a scratch or fine-tuning run's `data_chars` / `data_tokens`) larger than the train
  split it is cut from can never run (`effdata.data.tokens.train_prefix` raises `DataError` inside the
  run): it is a `StudyError`, one line naming every such fraction, and nothing is written.
* A pretraining budget is stated in epochs of its corpus's train split; above `EPOCHS_WARNING` epochs it
  is a warning, not an error (a small study may repeat its data on purpose).
* Fine-tunes without a from-scratch run in the plan (`[scratch] data_chars = []`) are a warning: their D_T
  needs another table's from-scratch runs (`analyze --scratch-from`), which the study's own analysis lacks.

Why 4 epochs: Muennighoff et al. 2023 ("Scaling Data-Constrained Language Models", arXiv 2305.16264)
found that up to about 4 epochs of repeated data are worth almost as much as new data, and that the
value of further repetitions decays quickly (their fitted half-life is about 15 epochs; beyond ~40
epochs more compute bought nearly nothing). Above 4 epochs a pretraining run spends compute on
repetitions the transfer measurement does not get much from.
"""
from __future__ import annotations

from effdata.data.tokens import TokenizedCorpus
from effdata.fmt import compact
from effdata.spec import StudyRun
from effdata.study.study import StudyError

EPOCHS_WARNING = 4.0


def check_plan(runs: list[StudyRun], data: dict[str, TokenizedCorpus]) -> list[str]:
    """StudyError (one line) if a fraction exceeds its corpus; else the plan's warnings, one line each.

    `data` holds every corpus the runs read, by name (what `run.prepare_data` returns)."""
    errors = fraction_errors(runs, data)
    if errors:
        raise StudyError("; ".join(errors))
    return budget_warnings(runs, data) + scratch_warnings(runs)


def scratch_warnings(runs: list[StudyRun]) -> list[str]:
    """One line where the plan fine-tunes but trains nothing from scratch (a fine-tune-only study)."""
    if any(r.mode == "scratch" for r in runs) or not any(r.mode == "finetune" for r in runs):
        return []
    return ["no from-scratch runs (a fine-tune-only study): D_T needs another table's (python -m effdata.analyze "
            "RESULTS --scratch-from OTHER); the analysis at the end of this study has none"]


def fraction_errors(runs: list[StudyRun], data: dict[str, TokenizedCorpus]) -> list[str]:
    """One message per distinct fraction larger than the train split it is cut from."""
    too_large: dict[tuple[str, str, int], list[str]] = {}
    for run in runs:
        spec = run.spec
        unit, size = ("chars", spec.data_chars) if spec.data_chars is not None else ("tokens", spec.data_tokens)
        if spec.mode == "pretrain" or size is None:
            continue
        split = data[spec.corpus].splits["train"]
        held = split.n_chars if unit == "chars" else split.n_tokens
        if size > held:
            modes = too_large.setdefault((spec.corpus, unit, size), [])
            if spec.mode not in modes:
                modes.append(spec.mode)
    out = []
    for (corpus, unit, size), modes in sorted(too_large.items()):
        split = data[corpus].splits["train"]
        held = split.n_chars if unit == "chars" else split.n_tokens
        tables = " and ".join(f"[{mode}]" for mode in modes)
        noun = "characters" if unit == "chars" else "tokens"
        out.append(f"{tables} data_{unit} {compact(size)} is more than the {held:,} {noun} of {corpus}'s "
                   f"train split; use at most {compact(_two_digits_down(held))}, or a larger target corpus")
    return out


def _two_digits_down(n: int) -> int:
    """n rounded down to two significant digits (224,506,595 -> 220,000,000): a size that fits."""
    step = 10 ** max(0, len(str(n)) - 2)
    return n // step * step


def pretrain_epochs(run: StudyRun, data: dict[str, TokenizedCorpus]) -> float:
    """Epochs of its corpus's train split a pretraining run's token budget amounts to."""
    return run.spec.token_budget / max(1, data[run.spec.corpus].splits["train"].n_tokens)


def budget_warnings(runs: list[StudyRun], data: dict[str, TokenizedCorpus]) -> list[str]:
    """A line per pretraining run whose budget is more than EPOCHS_WARNING epochs of its corpus."""
    out = []
    for run in runs:
        if run.mode != "pretrain":
            continue
        epochs = pretrain_epochs(run, data)
        if epochs > EPOCHS_WARNING:
            tokens = data[run.spec.corpus].splits["train"].n_tokens
            out.append(f"{run.label}: token budget {compact(run.spec.token_budget)} is {epochs:.1f} epochs of "
                       f"{run.spec.corpus} ({tokens:,} train tokens); beyond {EPOCHS_WARNING:g} epochs repeated "
                       f"data is worth less than new data (Muennighoff et al. 2023)")
    return out
