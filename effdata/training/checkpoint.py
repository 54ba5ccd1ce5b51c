"""Checkpoints: the pretrained model a fine-tune starts from, and the resume file of a running run.

A pretraining run saves its best model with the tokenizer under `run_dir/checkpoint` (and its mid-run
checkpoints under `run_dir/checkpoint@<c>tpp`) through `save_pretrained` (loadable with
`transformers.AutoModelForCausalLM.from_pretrained`). A fine-tune loads one and checks it against the
spec's shape and the data's vocabulary: a mismatch is a RunFailed, never a silently wrong number.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from effdata.paths import atomic_write
from effdata.spec import RunSpec
from effdata.training.model import shape_of
from effdata.training.rundata import RunFailed


def load_pretrained(spec: RunSpec, vocab_size: int):
    """The checkpoint at `spec.init_from` as an fp32 GPT-2, checked against the spec and vocabulary."""
    import transformers

    path = Path(spec.init_from)
    if not (path / "config.json").exists():
        raise RunFailed(f"checkpoint {path} not found (no config.json): run its pretraining first")
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa")
    except Exception as exc:  # noqa: BLE001
        raise RunFailed(f"checkpoint {path} could not be loaded: {type(exc).__name__}: {exc}") from exc
    model = model.float()
    want = spec.shape
    if not hasattr(model.config, "n_layer"):
        raise RunFailed(f"checkpoint {path} is a {type(model).__name__}, not a GPT-2 model")
    have = shape_of(model)
    expect = (want.n_layer, want.d_model, want.n_head, want.n_ctx, vocab_size)
    if have[4] != vocab_size:
        raise RunFailed(f"checkpoint {path} has vocabulary {have[4]}, the data has {vocab_size}: "
                        "pretrain with the same tokenizer")
    if have != expect:
        raise RunFailed(f"checkpoint {path} has shape (n_layer, d_model, n_head, n_ctx) = {have[:4]}, "
                        f"size {spec.size!r} needs {expect[:4]}")
    model.config.use_cache = False
    return model


def save_checkpoint(model, ckpt: Path, tokenizer_dir: Path | None) -> None:
    """save_pretrained the model (fp32 safetensors) and the tokenizer, atomically (tmp dir + rename). The
    model is left as it was: a run saving a mid-run checkpoint trains on with its own attention."""
    training_attention = model.config._attn_implementation
    model.config._attn_implementation = "sdpa"  # what a loader gets; training may have used "eager"
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
    finally:
        model.config._attn_implementation = training_attention
    if tokenizer_dir:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(tmp)
    shutil.rmtree(ckpt, ignore_errors=True)
    os.replace(tmp, ckpt)


def tokenizer_eos(tokenizer_dir: Path | None) -> int | None:
    """The tokenizer's end-of-text id (a generation default of the saved model), None if unknown."""
    if not tokenizer_dir:
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(tokenizer_dir)).eos_token_id
    except Exception:  # noqa: BLE001 - only used for generation defaults
        return None


def save_resume(path: Path, payload: dict[str, Any]) -> None:
    """torch.save atomically: a reader sees the old file or the whole new one."""
    atomic_write(path, lambda f: torch.save(payload, f))


def load_resume(path: Path, dev: torch.device) -> dict[str, Any]:
    """The saved payload (its tensors on `dev`); raises if the file cannot be read."""
    return torch.load(path, map_location=dev, weights_only=False)
